//! Bounded pagination shared by every list RPC: 1-based pages, page size 1..=100 (default 20).

use proto::common::v1::{Lifecycle, PageInfo, PageRequest};

/// Largest page a list returns.
pub const MAX_PAGE_SIZE: u32 = 100;
/// Page size when the caller gives none.
pub const DEFAULT_PAGE_SIZE: u32 = 20;

/// A validated page request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    /// 1-based page number.
    pub page: u32,
    /// Items per page.
    pub size: u32,
}

impl Page {
    /// Normalises a request: missing or zero values take defaults; sizes above the maximum
    /// are an error (the caller asked for something we will not do).
    pub fn from_proto(request: Option<&PageRequest>) -> Result<Self, crate::FieldViolation> {
        let (page, size) = request.map_or((0, 0), |p| (p.page, p.page_size));
        if size > MAX_PAGE_SIZE {
            return Err(crate::FieldViolation::new(
                "page_size",
                format!("must be between 1 and {MAX_PAGE_SIZE}"),
            ));
        }
        Ok(Self {
            page: page.max(1),
            size: if size == 0 { DEFAULT_PAGE_SIZE } else { size },
        })
    }

    /// SQL `LIMIT`.
    pub fn limit(&self) -> i64 {
        i64::from(self.size)
    }

    /// SQL `OFFSET`.
    pub fn offset(&self) -> i64 {
        i64::from(self.page - 1) * i64::from(self.size)
    }

    /// The page description returned with the items.
    pub fn info(&self, total_items: i64) -> PageInfo {
        let total = u64::try_from(total_items).unwrap_or(0);
        let pages = total.div_ceil(u64::from(self.size));
        PageInfo {
            page: self.page,
            page_size: self.size,
            total_items: total,
            total_pages: u32::try_from(pages).unwrap_or(u32::MAX),
        }
    }
}

/// Which rows a list shows, by soft-delete state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LifecycleFilter {
    /// Rows that are not deleted.
    Active,
    /// Soft-deleted rows.
    Trashed,
    /// Both.
    All,
}

impl LifecycleFilter {
    /// From the proto enum value (unknown values count as active).
    pub fn from_proto(value: i32) -> Self {
        match Lifecycle::try_from(value) {
            Ok(Lifecycle::Trashed) => Self::Trashed,
            Ok(Lifecycle::All) => Self::All,
            _ => Self::Active,
        }
    }

    /// A SQL predicate on a `deleted_at` column.
    pub fn sql_predicate(&self) -> &'static str {
        match self {
            Self::Active => "deleted_at IS NULL",
            Self::Trashed => "deleted_at IS NOT NULL",
            Self::All => "TRUE",
        }
    }
}

/// One page of a filtered list and how many rows match the filter, from two statements that
/// share the filter's binds: `count(*)` over `from_where`, then `select` over it with
/// `order`, `LIMIT` and `OFFSET` (their placeholders numbered after the binds).
///
/// ```ignore
/// let (rows, total): (Vec<CardRow>, i64) = platform::count_and_page!(
///     &mut *conn,
///     select = "SELECT id, brand",
///     from_where = "FROM cards WHERE user_id = $1",
///     order = "ORDER BY created_at DESC",
///     page = page,
///     binds = [owner],
/// );
/// ```
#[macro_export]
macro_rules! count_and_page {
    (
        $conn:expr,
        select = $select:expr,
        from_where = $from_where:expr,
        order = $order:expr,
        page = $page:expr,
        binds = [$($bind:expr),* $(,)?] $(,)?
    ) => {{
        let conn: &mut $crate::__private::sqlx::PgConnection = $conn;
        let from_where: &str = &$from_where;
        let binds: usize = 0 $(+ { let _ = stringify!($bind); 1 })*;
        let total: i64 = $crate::__private::sqlx::query_scalar(
            &format!("SELECT count(*) {from_where}"),
        )
        $(.bind(&$bind))*
        .fetch_one(&mut *conn)
        .await?;
        let rows = $crate::__private::sqlx::query_as(&format!(
            "{} {from_where} {} LIMIT ${} OFFSET ${}",
            $select,
            $order,
            binds + 1,
            binds + 2
        ))
        $(.bind(&$bind))*
        .bind($page.limit())
        .bind($page.offset())
        .fetch_all(&mut *conn)
        .await?;
        (rows, total)
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_bounds_apply() {
        let page = Page::from_proto(None).unwrap();
        assert_eq!((page.page, page.size), (1, DEFAULT_PAGE_SIZE));
        let too_big = PageRequest {
            page: 1,
            page_size: 101,
        };
        assert!(Page::from_proto(Some(&too_big)).is_err());
        let p = Page::from_proto(Some(&PageRequest {
            page: 3,
            page_size: 10,
        }))
        .unwrap();
        assert_eq!(p.offset(), 20);
        assert_eq!(p.info(21).total_pages, 3);
        assert_eq!(p.info(0).total_pages, 0);
    }
}
