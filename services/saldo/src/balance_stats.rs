//! Balance statistics: daily sums of balance changes kept from the ledger's own
//! `balance.changed` events (each account's change of a posting counts once), balances at the
//! end of months and years as sums of the days before, a rebuild from the journal, and the
//! `SaldoStatsService`.

use events::payloads::saldo as ev;
use events::{Envelope, EventHandler, HandlerError};
use platform::auth::Principal;
use proto::stats::v1 as pb;
use sqlx::{PgConnection, PgPool};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::error::SaldoError;
use crate::service::SALDO_READ;

/// Keeps `balance_daily` from `balance.changed`.
#[derive(Clone)]
pub struct BalanceEvents {
    pub time_zone: String,
}

impl EventHandler for BalanceEvents {
    async fn handle(&self, conn: &mut PgConnection, event: &Envelope) -> Result<(), HandlerError> {
        if event.event_type != ev::BALANCE_CHANGED {
            return Ok(());
        }
        let b: ev::BalanceChanged = event
            .data_as()
            .map_err(|e| HandlerError::Permanent(e.into()))?;
        let scopes: Vec<(&str, Uuid)> = match (b.card_id, b.merchant_id) {
            (Some(card), _) => vec![("cards", Uuid::nil()), ("card", card)],
            (None, Some(merchant)) => vec![("merchants", Uuid::nil()), ("merchant", merchant)],
            // System accounts mirror money outside the platform: not a balance to report.
            (None, None) => return Ok(()),
        };
        let fresh = sqlx::query(
            "INSERT INTO balance_counted (posting_id, account_id) VALUES ($1, $2)
             ON CONFLICT DO NOTHING",
        )
        .bind(b.posting_id)
        .bind(b.account_id)
        .execute(&mut *conn)
        .await?
        .rows_affected()
            == 1;
        if !fresh {
            return Ok(());
        }
        let (names, ids): (Vec<&str>, Vec<Uuid>) = scopes.into_iter().unzip();
        sqlx::query(
            "INSERT INTO balance_daily (scope, scope_id, day, delta, postings)
             SELECT s.scope, s.scope_id, ($3::timestamptz AT TIME ZONE $4)::date, $5, 1
             FROM unnest($1::text[], $2::uuid[]) AS s (scope, scope_id)
             ON CONFLICT (scope, scope_id, day) DO UPDATE
                 SET delta = balance_daily.delta + EXCLUDED.delta,
                     postings = balance_daily.postings + 1",
        )
        .bind(&names)
        .bind(&ids)
        .bind(b.occurred_at)
        .bind(&self.time_zone)
        .bind(b.delta)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}

/// Recomputes `balance_daily` from the journal (one transaction).
pub async fn rebuild(pool: &PgPool, time_zone: &str) -> anyhow::Result<u64> {
    let mut tx = pool.begin().await?;
    sqlx::query("LOCK TABLE balance_daily, balance_counted IN EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM balance_daily")
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM balance_counted")
        .execute(&mut *tx)
        .await?;
    let counted = sqlx::query(
        "INSERT INTO balance_counted (posting_id, account_id)
         SELECT l.posting_id, l.account_id FROM journal_lines l
         JOIN accounts a ON a.id = l.account_id WHERE a.kind <> 'system'",
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    sqlx::query(
        "INSERT INTO balance_daily (scope, scope_id, day, delta, postings)
         SELECT s.scope, s.scope_id, (l.created_at AT TIME ZONE $1)::date, sum(l.amount), count(*)
         FROM journal_lines l
         JOIN accounts a ON a.id = l.account_id
         CROSS JOIN LATERAL (VALUES
             (CASE a.kind WHEN 'card' THEN 'cards' ELSE 'merchants' END,
              '00000000-0000-0000-0000-000000000000'::uuid),
             (a.kind, COALESCE(a.card_id, a.merchant_id))) AS s (scope, scope_id)
         WHERE a.kind <> 'system'
         GROUP BY 1, 2, 3",
    )
    .bind(time_zone)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(counted)
}

/// The balance reports.
#[derive(Clone)]
pub struct BalanceStats {
    pool: PgPool,
}

fn first_day(year: i32, month: u32) -> Result<chrono::NaiveDate, SaldoError> {
    stats::first_of_month(year, month)
        .map_err(|_| platform::FieldViolation::new("year", "is out of range").into())
}

impl BalanceStats {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// The scope of a request, if the caller may see it: every card account or a merchant's
    /// by `saldo.read`; one card's or one merchant's also by its owner.
    async fn scope(
        &self,
        caller: &Principal,
        r: &pb::StatsRequest,
    ) -> Result<(&'static str, Uuid), SaldoError> {
        let id = || {
            r.scope_id.parse::<Uuid>().map_err(|_| {
                SaldoError::from(platform::FieldViolation::new("scope_id", "must be a UUID"))
            })
        };
        let (scope, scope_id, column) = match pb::Scope::try_from(r.scope).unwrap_or(pb::Scope::All)
        {
            pb::Scope::Unspecified | pb::Scope::All => ("cards", Uuid::nil(), None),
            pb::Scope::Card => ("card", id()?, Some("card_id")),
            pb::Scope::Merchant => ("merchant", id()?, Some("merchant_id")),
            _ => {
                return Err(platform::FieldViolation::new(
                    "scope",
                    "balances exist for all cards, a card or a merchant",
                )
                .into());
            }
        };
        if caller.has(SALDO_READ) {
            return Ok((scope, scope_id));
        }
        let Some(column) = column else {
            return Err(platform::auth::AuthError::MissingPermission(SALDO_READ.to_owned()).into());
        };
        let owner: Option<Option<Uuid>> = sqlx::query_scalar(&format!(
            "SELECT owner_user_id FROM accounts WHERE {column} = $1 LIMIT 1"
        ))
        .bind(scope_id)
        .fetch_optional(&self.pool)
        .await?;
        match owner.flatten() {
            Some(owner) if Some(owner) == caller.user_id() => Ok((scope, scope_id)),
            _ => Err(SaldoError::AccountNotFound(scope_id.to_string())),
        }
    }

    /// For each of `ends` (ascending): the balance at the start of that day and the postings
    /// since the previous end (for the first: all before it). One query for all of them.
    async fn at(
        &self,
        (scope, scope_id): (&str, Uuid),
        ends: &[chrono::NaiveDate],
    ) -> Result<Vec<(i64, i64)>, SaldoError> {
        let starts: Vec<Option<chrono::NaiveDate>> = std::iter::once(None)
            .chain(ends.iter().copied().map(Some))
            .take(ends.len())
            .collect();
        Ok(sqlx::query_as(
            "SELECT COALESCE(sum(b.delta), 0)::bigint,
                    COALESCE(sum(b.postings) FILTER (WHERE e.start IS NULL OR b.day >= e.start),
                             0)::bigint
             FROM unnest($3::date[], $4::date[]) WITH ORDINALITY AS e (end_day, start, n)
             LEFT JOIN balance_daily b
                 ON b.scope = $1 AND b.scope_id = $2 AND b.day < e.end_day
             GROUP BY e.n ORDER BY e.n",
        )
        .bind(scope)
        .bind(scope_id)
        .bind(ends)
        .bind(&starts)
        .fetch_all(&self.pool)
        .await?)
    }

    fn year(r: &pb::StatsRequest) -> Result<i32, SaldoError> {
        if (2000..=2200).contains(&r.year) {
            Ok(r.year)
        } else {
            Err(platform::FieldViolation::new("year", "must be between 2000 and 2200").into())
        }
    }

    pub async fn monthly(
        &self,
        caller: &Principal,
        r: &pb::StatsRequest,
    ) -> Result<pb::MonthlyTotals, SaldoError> {
        let scope = self.scope(caller, r).await?;
        let year = Self::year(r)?;
        let mut ends = vec![first_day(year, 1)?];
        for month in 2..=12 {
            ends.push(first_day(year, month)?);
        }
        ends.push(first_day(year + 1, 1)?);
        let values = self.at(scope, &ends).await?;
        Ok(pb::MonthlyTotals {
            year,
            months: values
                .into_iter()
                .skip(1)
                .zip(1..)
                .map(|((balance, postings), month)| pb::MonthTotal {
                    month,
                    total: Some(pb::Total {
                        count: postings,
                        amount: balance,
                    }),
                })
                .collect(),
        })
    }

    pub async fn yearly(
        &self,
        caller: &Principal,
        r: &pb::StatsRequest,
    ) -> Result<pb::YearlyTotals, SaldoError> {
        let scope = self.scope(caller, r).await?;
        let year = Self::year(r)?;
        let ends: Vec<chrono::NaiveDate> = (year - 5..=year)
            .map(|y| first_day(y + 1, 1))
            .collect::<Result<_, _>>()?;
        let values = self.at(scope, &ends).await?;
        Ok(pb::YearlyTotals {
            years: values
                .into_iter()
                .skip(1)
                .zip(year - 4..)
                .map(|((balance, postings), year)| pb::YearTotal {
                    year,
                    total: Some(pb::Total {
                        count: postings,
                        amount: balance,
                    }),
                })
                .collect(),
        })
    }

    pub async fn compare(
        &self,
        caller: &Principal,
        r: &pb::StatsRequest,
        yearly: bool,
    ) -> Result<pb::BalanceComparison, SaldoError> {
        let scope = self.scope(caller, r).await?;
        let year = Self::year(r)?;
        let (previous_end, end) = if yearly {
            (first_day(year, 1)?, first_day(year + 1, 1)?)
        } else {
            if !(1..=12).contains(&r.month) {
                return Err(platform::FieldViolation::new("month", "must be 1..=12").into());
            }
            let end = if r.month == 12 {
                first_day(year + 1, 1)?
            } else {
                first_day(year, r.month + 1)?
            };
            (first_day(year, r.month)?, end)
        };
        let values = self.at(scope, &[previous_end, end]).await?;
        Ok(pb::BalanceComparison {
            current: values.get(1).map_or(0, |v| v.0),
            previous: values.first().map_or(0, |v| v.0),
        })
    }
}

/// Implements `SaldoStatsService`.
#[derive(Clone)]
pub struct StatsHandlers {
    pub stats: BalanceStats,
    pub authenticator: platform::auth::Authenticator,
}

#[tonic::async_trait]
impl proto::saldo::v1::saldo_stats_service_server::SaldoStatsService for StatsHandlers {
    async fn monthly_balances(
        &self,
        request: Request<pb::StatsRequest>,
    ) -> Result<Response<pb::MonthlyTotals>, Status> {
        let caller = self.authenticator.require(&request).await?;
        Ok(Response::new(
            self.stats.monthly(&caller, request.get_ref()).await?,
        ))
    }

    async fn yearly_balances(
        &self,
        request: Request<pb::StatsRequest>,
    ) -> Result<Response<pb::YearlyTotals>, Status> {
        let caller = self.authenticator.require(&request).await?;
        Ok(Response::new(
            self.stats.yearly(&caller, request.get_ref()).await?,
        ))
    }

    async fn monthly_total_balance(
        &self,
        request: Request<pb::StatsRequest>,
    ) -> Result<Response<pb::BalanceComparison>, Status> {
        let caller = self.authenticator.require(&request).await?;
        Ok(Response::new(
            self.stats
                .compare(&caller, request.get_ref(), false)
                .await?,
        ))
    }

    async fn yearly_total_balance(
        &self,
        request: Request<pb::StatsRequest>,
    ) -> Result<Response<pb::BalanceComparison>, Status> {
        let caller = self.authenticator.require(&request).await?;
        Ok(Response::new(
            self.stats.compare(&caller, request.get_ref(), true).await?,
        ))
    }
}
