//! Statistics from events, not table scans. A service that owns a statistic keeps a monthly
//! rollup (`stats_monthly`) in its own schema, fed by a consumer of its own completion events:
//! each completed movement adds its count and amount to the buckets of its calendar month (in
//! the configured time zone) for every scope it belongs to — everything, its card, the
//! receiving card, its merchant, its API key. A month is then one row per status and method,
//! a five-year report at most 60 of them, whatever the size of the source tables.
//!
//! * Calendar: a movement's month is that of its local date in `STATS_TIMEZONE` (PostgreSQL
//!   does the conversion); years are half-open ranges of months, so the last second of a
//!   month and February 29th land where they belong.
//! * Idempotent: a movement counts once (`stats_counted` keyed by the movement id, in the same
//!   transaction as the increments), so redelivered and out-of-order events change nothing.
//! * Rebuild: [`rebuild`] recomputes everything from the source rows in one transaction and
//!   must give the same numbers.
//!
//! Every owning schema has the tables of [`TABLES`] (`crates/stats/schema/rollup.sql`),
//! applied as a shared table of the schema (`platform::db::Schema::shared`).
//!
//! Longer than most files on purpose: the rollup's update and its queries must agree column
//! for column.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// `stats_monthly` and `stats_counted`, as idempotent DDL: for every schema that keeps a
/// rollup.
pub const TABLES: &str = include_str!("../schema/rollup.sql");

/// What a bucket belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every movement of the kind.
    All,
    /// The (sending) card.
    Card(Uuid),
    /// The receiving card of a transfer.
    ToCard(Uuid),
    /// The merchant paid.
    Merchant(Uuid),
    /// The API key used.
    ApiKey(Uuid),
}

impl Scope {
    pub fn parts(self) -> (&'static str, Uuid) {
        match self {
            Self::All => ("all", Uuid::nil()),
            Self::Card(id) => ("card", id),
            Self::ToCard(id) => ("to_card", id),
            Self::Merchant(id) => ("merchant", id),
            Self::ApiKey(id) => ("api_key", id),
        }
    }
}

/// One completed movement, as the statistics see it.
#[derive(Clone, Debug)]
pub struct Contribution {
    /// The movement (counted once).
    pub id: Uuid,
    /// When it happened (its request time; bucketed in the configured zone).
    pub at: DateTime<Utc>,
    /// succeeded or failed.
    pub status: String,
    /// Top-up/withdraw/payment method, or empty.
    pub method: String,
    pub amount: i64,
    /// Every scope it counts in (`All` is added automatically).
    pub scopes: Vec<Scope>,
}

/// Adds `c` to the rollup unless it was counted before; true when it was added now. Run it in
/// the consumer's transaction.
pub async fn record(
    conn: &mut PgConnection,
    time_zone: &str,
    c: &Contribution,
) -> Result<bool, sqlx::Error> {
    let fresh = sqlx::query("INSERT INTO stats_counted (id) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(c.id)
        .execute(&mut *conn)
        .await?
        .rows_affected()
        == 1;
    if !fresh {
        return Ok(false);
    }
    let mut scopes = vec![Scope::All];
    scopes.extend(c.scopes.iter().copied());
    let (names, ids): (Vec<&str>, Vec<Uuid>) = scopes.into_iter().map(Scope::parts).unzip();
    sqlx::query(
        "INSERT INTO stats_monthly (scope, scope_id, month, status, method, count, amount)
         SELECT s.scope, s.scope_id, date_trunc('month', $3::timestamptz AT TIME ZONE $4)::date,
                $5, $6, 1, $7
         FROM unnest($1::text[], $2::uuid[]) AS s (scope, scope_id)
         ON CONFLICT (scope, scope_id, month, status, method) DO UPDATE
             SET count = stats_monthly.count + 1, amount = stats_monthly.amount + EXCLUDED.amount",
    )
    .bind(&names)
    .bind(&ids)
    .bind(c.at)
    .bind(time_zone)
    .bind(&c.status)
    .bind(&c.method)
    .bind(c.amount)
    .execute(&mut *conn)
    .await?;
    Ok(true)
}

/// Checks that PostgreSQL knows `time_zone` (e.g. `UTC`, `Asia/Jakarta`).
pub async fn check_time_zone(pool: &PgPool, time_zone: &str) -> anyhow::Result<()> {
    sqlx::query("SELECT now() AT TIME ZONE $1")
        .bind(time_zone)
        .execute(pool)
        .await
        .map_err(|e| {
            anyhow::anyhow!("STATS_TIMEZONE {time_zone:?} is not a time zone PostgreSQL knows: {e}")
        })?;
    Ok(())
}

/// How a rebuild reads the source table: a SELECT returning `id, at, status, method, amount`
/// and the scope columns (`card`, `to_card`, `merchant`, `api_key`, NULL when absent) of every
/// completed movement.
pub struct Source<'a> {
    pub select: &'a str,
}

/// Recomputes the rollup from the source rows (one transaction; readers see the old or the new
/// numbers, never a mix). Returns how many movements were counted.
pub async fn rebuild(pool: &PgPool, time_zone: &str, source: Source<'_>) -> anyhow::Result<u64> {
    let mut tx = pool.begin().await?;
    sqlx::query("LOCK TABLE stats_monthly, stats_counted IN EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM stats_monthly")
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM stats_counted")
        .execute(&mut *tx)
        .await?;
    let counted = sqlx::query(&format!(
        "INSERT INTO stats_counted (id) SELECT id FROM ({}) src",
        source.select
    ))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    sqlx::query(&format!(
        "INSERT INTO stats_monthly (scope, scope_id, month, status, method, count, amount)
         SELECT s.scope, s.scope_id, date_trunc('month', src.at AT TIME ZONE $1)::date,
                src.status, src.method, count(*), sum(src.amount)
         FROM ({}) src
         CROSS JOIN LATERAL (VALUES ('all', '00000000-0000-0000-0000-000000000000'::uuid),
                                    ('card', src.card), ('to_card', src.to_card),
                                    ('merchant', src.merchant), ('api_key', src.api_key))
             AS s (scope, scope_id)
         WHERE s.scope_id IS NOT NULL
         GROUP BY 1, 2, 3, 4, 5",
        source.select
    ))
    .bind(time_zone)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(counted)
}

/// Count and amount of one bucket of a report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Total {
    pub count: i64,
    pub amount: i64,
}

/// Succeeded and failed totals of one period.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatusTotals {
    pub succeeded: Total,
    pub failed: Total,
}

/// Queries over one schema's rollup.
#[derive(Clone)]
pub struct Reports {
    pool: PgPool,
}

/// The first day of `year-month`: where a calendar month (and, for January, a year) starts.
pub fn first_of_month(year: i32, month: u32) -> anyhow::Result<chrono::NaiveDate> {
    chrono::NaiveDate::from_ymd_opt(year, month, 1)
        .ok_or_else(|| anyhow::anyhow!("no month {year}-{month}"))
}

fn next_month(year: i32, month: u32) -> anyhow::Result<chrono::NaiveDate> {
    if month == 12 {
        first_of_month(year + 1, 1)
    } else {
        first_of_month(year, month + 1)
    }
}

impl Reports {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Sums per (bucket, status, method) of `scope` and `status` over the months in
    /// `[from, to)` (first days of months); the bucket is the month (1..=12) or the year.
    async fn sums(
        &self,
        scope: Scope,
        status: Option<&str>,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
        by_year: bool,
    ) -> anyhow::Result<Vec<(i32, String, String, i64, i64)>> {
        let (name, id) = scope.parts();
        let bucket = if by_year { "year" } else { "month" };
        Ok(sqlx::query_as(&format!(
            "SELECT extract({bucket} FROM month)::int, status, method,
                    sum(count)::bigint, sum(amount)::bigint
             FROM stats_monthly
             WHERE scope = $1 AND scope_id = $2 AND month >= $3 AND month < $4
               AND ($5::text IS NULL OR status = $5)
             GROUP BY 1, 2, 3"
        ))
        .bind(name)
        .bind(id)
        .bind(from)
        .bind(to)
        .bind(status)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The 12 months of `year` (zero-filled), succeeded movements unless `status` says otherwise.
    pub async fn monthly(
        &self,
        scope: Scope,
        year: i32,
        status: &str,
    ) -> anyhow::Result<Vec<Total>> {
        let rows = self
            .sums(
                scope,
                Some(status),
                first_of_month(year, 1)?,
                first_of_month(year + 1, 1)?,
                false,
            )
            .await?;
        let mut out = vec![Total::default(); 12];
        for (month, _, _, count, amount) in rows {
            if let Some(t) = usize::try_from(month - 1).ok().and_then(|i| out.get_mut(i)) {
                t.count += count;
                t.amount += amount;
            }
        }
        Ok(out)
    }

    /// `year - 4 ..= year` (zero-filled).
    pub async fn yearly(
        &self,
        scope: Scope,
        year: i32,
        status: &str,
    ) -> anyhow::Result<Vec<(i32, Total)>> {
        let rows = self
            .sums(
                scope,
                Some(status),
                first_of_month(year - 4, 1)?,
                first_of_month(year + 1, 1)?,
                true,
            )
            .await?;
        let mut out: Vec<(i32, Total)> = (year - 4..=year).map(|y| (y, Total::default())).collect();
        for (y, _, _, count, amount) in rows {
            if let Some((_, t)) = out.iter_mut().find(|(yy, _)| *yy == y) {
                t.count += count;
                t.amount += amount;
            }
        }
        Ok(out)
    }

    /// Per month of `year` and method: (month, method, total), months with movements only.
    pub async fn monthly_methods(
        &self,
        scope: Scope,
        year: i32,
        status: &str,
    ) -> anyhow::Result<Vec<(u32, String, Total)>> {
        let rows = self
            .sums(
                scope,
                Some(status),
                first_of_month(year, 1)?,
                first_of_month(year + 1, 1)?,
                false,
            )
            .await?;
        let mut out: Vec<(u32, String, Total)> = rows
            .into_iter()
            .map(|(m, _, method, count, amount)| {
                (
                    u32::try_from(m).unwrap_or(0),
                    method,
                    Total { count, amount },
                )
            })
            .collect();
        out.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        Ok(out)
    }

    /// Per year (`year - 4 ..= year`) and method.
    pub async fn yearly_methods(
        &self,
        scope: Scope,
        year: i32,
        status: &str,
    ) -> anyhow::Result<Vec<(i32, String, Total)>> {
        let rows = self
            .sums(
                scope,
                Some(status),
                first_of_month(year - 4, 1)?,
                first_of_month(year + 1, 1)?,
                true,
            )
            .await?;
        let mut out: Vec<(i32, String, Total)> = rows
            .into_iter()
            .map(|(y, _, method, count, amount)| (y, method, Total { count, amount }))
            .collect();
        out.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        Ok(out)
    }

    async fn status_between(
        &self,
        scope: Scope,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
    ) -> anyhow::Result<StatusTotals> {
        let mut out = StatusTotals::default();
        for (_, status, _, count, amount) in self.sums(scope, None, from, to, true).await? {
            let t = if status == "succeeded" {
                &mut out.succeeded
            } else {
                &mut out.failed
            };
            t.count += count;
            t.amount += amount;
        }
        Ok(out)
    }

    /// All-time total of `scope` and `status`.
    pub async fn total(&self, scope: Scope, status: &str) -> anyhow::Result<Total> {
        let (name, id) = scope.parts();
        let (count, amount): (i64, i64) = sqlx::query_as(
            "SELECT COALESCE(sum(count), 0)::bigint, COALESCE(sum(amount), 0)::bigint
             FROM stats_monthly WHERE scope = $1 AND scope_id = $2 AND status = $3",
        )
        .bind(name)
        .bind(id)
        .bind(status)
        .fetch_one(&self.pool)
        .await?;
        Ok(Total { count, amount })
    }

    /// Succeeded and failed totals of `year-month` and of the month before.
    pub async fn monthly_status(
        &self,
        scope: Scope,
        year: i32,
        month: u32,
    ) -> anyhow::Result<(StatusTotals, StatusTotals)> {
        let start = first_of_month(year, month)?;
        let end = next_month(year, month)?;
        let (py, pm) = if month == 1 {
            (year - 1, 12)
        } else {
            (year, month - 1)
        };
        let previous = self
            .status_between(scope, first_of_month(py, pm)?, start)
            .await?;
        Ok((self.status_between(scope, start, end).await?, previous))
    }

    /// Succeeded and failed totals of `year` and of the year before.
    pub async fn yearly_status(
        &self,
        scope: Scope,
        year: i32,
    ) -> anyhow::Result<(StatusTotals, StatusTotals)> {
        let this = self
            .status_between(
                scope,
                first_of_month(year, 1)?,
                first_of_month(year + 1, 1)?,
            )
            .await?;
        let before = self
            .status_between(
                scope,
                first_of_month(year - 1, 1)?,
                first_of_month(year, 1)?,
            )
            .await?;
        Ok((this, before))
    }
}
