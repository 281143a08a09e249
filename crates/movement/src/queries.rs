//! Reading movements: one by id, and filtered pages — a customer sees the movements they are
//! a party to, `<kind>.read` sees everyone's.

use chrono::{DateTime, Utc};
use platform::auth::Principal;
use platform::pagination::Page;
use uuid::Uuid;

use crate::lifecycle::{self, Recorded, Status};
use crate::{Movement, MovementError, Movements};

/// Filters of a list.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub status: Option<Status>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub card_id: Option<Uuid>,
    /// Admins: one user's; customers: ignored unless it is themselves.
    pub user_id: Option<Uuid>,
    /// Transfers with `card_id`: `Some(true)` outgoing only, `Some(false)` incoming only.
    pub outgoing: Option<bool>,
    /// Topups and withdraws: one method.
    pub method: Option<String>,
}

impl Movements {
    pub(crate) async fn load(&self, id: Uuid) -> Result<Movement, MovementError> {
        lifecycle::load(&self.pool, id)
            .await?
            .ok_or(MovementError::NotFound(self.kind.name()))
    }

    fn visible(&self, caller: &Principal, m: &Movement) -> bool {
        let me = caller.user_id();
        me.is_some() && (me == Some(m.user_id) || me == m.to_user_id)
            || caller.has(self.kind.read_permission())
    }

    /// One movement, if the caller is a party to it or may read all.
    pub async fn get(&self, caller: &Principal, id: Uuid) -> Result<Movement, MovementError> {
        let movement = self.load(id).await?;
        if self.visible(caller, &movement) {
            Ok(movement)
        } else {
            Err(MovementError::NotFound(self.kind.name()))
        }
    }

    /// A page of movements, newest first. Customers see the ones they are a party to.
    pub async fn list(
        &self,
        caller: &Principal,
        filter: Filter,
        page: Page,
    ) -> Result<(Vec<Movement>, i64), MovementError> {
        let party = if caller.has(self.kind.read_permission()) {
            filter.user_id
        } else {
            match (caller.user_id(), filter.user_id) {
                (Some(me), None) => Some(me),
                (Some(me), Some(other)) if me == other => Some(me),
                _ => {
                    return Err(platform::auth::AuthError::MissingPermission(
                        self.kind.read_permission().to_owned(),
                    )
                    .into());
                }
            }
        };
        let direction = match filter.outgoing {
            None => "both",
            Some(true) => "out",
            Some(false) => "in",
        };
        let mut conn = self.pool.acquire().await?;
        Ok(platform::count_and_page!(
            &mut conn,
            select = format!("SELECT {}", Movement::COLUMNS),
            from_where = "FROM movements t
              WHERE ($1::uuid IS NULL OR t.user_id = $1 OR t.to_user_id = $1)
              AND ($2::uuid IS NULL OR (t.card_id = $2 AND $3 <> 'in')
                   OR (t.to_card_id = $2 AND $3 <> 'out'))
              AND ($4::text IS NULL OR t.status = $4)
              AND ($5::timestamptz IS NULL OR t.created_at >= $5)
              AND ($6::timestamptz IS NULL OR t.created_at < $6)
              AND ($7::text IS NULL OR t.method = $7)",
            order = "ORDER BY t.created_at DESC, t.id DESC",
            page = page,
            binds = [
                party,
                filter.card_id,
                direction,
                filter.status,
                filter.from,
                filter.to,
                filter.method,
            ],
        ))
    }
}
