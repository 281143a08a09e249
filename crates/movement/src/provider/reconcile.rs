//! Settlement reconciliation: each provider's daily settlement report matched 1:1 with what
//! the platform booked, by the provider's reference, amount and currency. Every mismatch
//! becomes an exception (open until an operator resolves it with a note):
//!
//! * `missing_on_our_side`: the provider settled an operation we have not booked as succeeded;
//! * `missing_at_provider`: we booked an operation (completed that day) the report lacks;
//! * `amount_mismatch` / `currency_mismatch`: both have it, with different figures;
//! * `duplicate`: the report lists one operation more than once;
//! * `ledger_mismatch`: a line matches a booked operation, but the ledger does not hold its
//!   posting on the provider's system account with that amount (`expected` is what the
//!   provider settled, `reported` what the ledger holds, none when it holds nothing).
//!
//! Totals: per provider and currency, the settled total of the report's lines must equal the
//! total the ledger posted against the provider's system account for them; each run reports
//! both, and any difference is explained by the exceptions it lists.
//!
//! A run first settles what the report shows settled but is still pending on our side (a
//! late callback), asking the provider, so a timing window is not an exception. A run is
//! idempotent: re-running a day finds the same exceptions and records none twice.

use chrono::{DateTime, NaiveDate, Utc};
use std::collections::HashMap;
use uuid::Uuid;

use events::payloads::reconciliation as ev;

use super::operation_kind;
use crate::{MovementError, Movements};

platform::text_enum! {
    /// What kind of mismatch an exception is.
    pub enum ExceptionKind {
        MissingOnOurSide = "missing_on_our_side",
        MissingAtProvider = "missing_at_provider",
        AmountMismatch = "amount_mismatch",
        CurrencyMismatch = "currency_mismatch",
        Duplicate = "duplicate",
        LedgerMismatch = "ledger_mismatch",
    }
}

/// A reconciliation exception.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ReconciliationException {
    pub id: Uuid,
    pub settlement_date: NaiveDate,
    pub provider: String,
    pub kind: ExceptionKind,
    /// Our id (the top-up / withdrawal), when we know it.
    pub reference: Option<String>,
    pub provider_reference: String,
    /// What we booked.
    pub expected_amount: Option<i64>,
    pub expected_currency: Option<String>,
    /// What the provider reported.
    pub reported_amount: Option<i64>,
    pub reported_currency: Option<String>,
    /// `open` or `resolved`.
    pub state: String,
    pub note: Option<String>,
    pub resolved_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, settlement_date, provider, kind, reference, provider_reference,
    expected_amount, expected_currency, reported_amount, reported_currency, state, note,
    resolved_by, created_at, resolved_at";

/// One provider's day.
#[derive(Clone, Debug)]
pub struct ProviderDay {
    pub provider: String,
    /// Lines of its report for this kind of operation.
    pub lines: usize,
    /// Lines that matched a booked operation exactly.
    pub matched: usize,
    /// The settled total of the report's lines (each operation once), per currency.
    pub settled: HashMap<String, i64>,
    /// The total the ledger posted against the provider's account for those lines, per
    /// currency: equal to `settled` on a clean day.
    pub ledger: HashMap<String, i64>,
    /// Exceptions found (new or already recorded).
    pub exceptions: Vec<ReconciliationException>,
}

/// A booked operation, as reconciliation compares it.
#[derive(sqlx::FromRow)]
struct Booked {
    id: Uuid,
    provider_reference: Option<String>,
    amount: i64,
    currency: String,
}

/// An exception before it is stored.
struct Found {
    kind: ExceptionKind,
    reference: Option<String>,
    provider_reference: String,
    expected: Option<(i64, String)>,
    reported: Option<(i64, String)>,
}

impl Movements {
    /// Reconciles `date` (UTC) with every provider's settlement report.
    pub async fn reconcile_providers(
        &self,
        date: NaiveDate,
    ) -> Result<Vec<ProviderDay>, MovementError> {
        let backing = self.backing()?.clone();
        let kind = operation_kind(self.kind);
        let mut days = Vec::new();
        for (name, _) in backing.router.breakers() {
            let Some(provider) = backing.router.provider(&name) else {
                continue;
            };
            let lines: Vec<_> = provider
                .settlement(date)
                .await
                .map_err(|e| {
                    MovementError::Upstream(
                        "payment provider",
                        tonic::Status::unavailable(e.to_string()),
                    )
                })?
                .into_iter()
                .filter(|l| l.kind == kind)
                .collect();
            self.settle_reported(&name, &lines).await?;
            let references: Vec<String> =
                lines.iter().map(|l| l.provider_reference.clone()).collect();
            let booked: Vec<Booked> = sqlx::query_as(
                "SELECT id, provider_reference, amount, currency FROM movements
                 WHERE provider = $1 AND status = 'succeeded'
                   AND (provider_reference = ANY($2)
                        OR (NOT backdated AND completed_at >= $3 AND completed_at < $3 + interval '1 day'))",
            )
            .bind(&name)
            .bind(&references)
            .bind(date.and_hms_opt(0, 0, 0).map(|t| t.and_utc()))
            .fetch_all(&self.pool)
            .await?;
            let by_reference: HashMap<&str, &Booked> = booked
                .iter()
                .filter_map(|b| b.provider_reference.as_deref().map(|r| (r, b)))
                .collect();
            let mut found = Vec::new();
            let mut counts: HashMap<&str, usize> = HashMap::new();
            for line in &lines {
                *counts.entry(line.provider_reference.as_str()).or_default() += 1;
            }
            let mut day = ProviderDay {
                provider: name.clone(),
                lines: lines.len(),
                matched: 0,
                settled: HashMap::new(),
                ledger: HashMap::new(),
                exceptions: Vec::new(),
            };
            let mut seen = std::collections::HashSet::new();
            for line in &lines {
                if !seen.insert(line.provider_reference.as_str()) {
                    continue;
                }
                *day.settled.entry(line.currency.clone()).or_default() += line.amount;
                let reported = Some((line.amount, line.currency.clone()));
                if counts[line.provider_reference.as_str()] > 1 {
                    found.push(Found {
                        kind: ExceptionKind::Duplicate,
                        reference: Some(line.reference.clone()),
                        provider_reference: line.provider_reference.clone(),
                        expected: None,
                        reported: reported.clone(),
                    });
                }
                let Some(ours) = by_reference.get(line.provider_reference.as_str()) else {
                    found.push(Found {
                        kind: ExceptionKind::MissingOnOurSide,
                        reference: Some(line.reference.clone()),
                        provider_reference: line.provider_reference.clone(),
                        expected: None,
                        reported,
                    });
                    continue;
                };
                let ledger = self.upstream.posted(self.posting_of(ours.id)).await?;
                if let Some((amount, currency)) = &ledger {
                    *day.ledger.entry(currency.clone()).or_default() += amount;
                }
                let expected = Some((ours.amount, ours.currency.clone()));
                let mismatch = if ours.currency != line.currency {
                    Some(ExceptionKind::CurrencyMismatch)
                } else if ours.amount != line.amount {
                    Some(ExceptionKind::AmountMismatch)
                } else {
                    None
                };
                match mismatch {
                    Some(kind) => found.push(Found {
                        kind,
                        reference: Some(ours.id.to_string()),
                        provider_reference: line.provider_reference.clone(),
                        expected,
                        reported,
                    }),
                    None if ledger != reported => found.push(Found {
                        kind: ExceptionKind::LedgerMismatch,
                        reference: Some(ours.id.to_string()),
                        provider_reference: line.provider_reference.clone(),
                        expected: reported,
                        reported: ledger,
                    }),
                    None => day.matched += 1,
                }
            }
            for ours in &booked {
                let Some(reference) = ours.provider_reference.as_deref() else {
                    continue;
                };
                if !counts.contains_key(reference) {
                    found.push(Found {
                        kind: ExceptionKind::MissingAtProvider,
                        reference: Some(ours.id.to_string()),
                        provider_reference: reference.to_owned(),
                        expected: Some((ours.amount, ours.currency.clone())),
                        reported: None,
                    });
                }
            }
            for f in found {
                day.exceptions
                    .push(self.record_exception(date, &name, f).await?);
            }
            metrics::counter!("reconciliation_runs_total", "kind" => self.kind.name(), "provider" => name.clone())
                .increment(1);
            tracing::info!(kind = self.kind.name(), provider = %name, %date, lines = day.lines,
                matched = day.matched, exceptions = day.exceptions.len(), "reconciled");
            days.push(day);
        }
        self.export_open_exceptions().await?;
        Ok(days)
    }

    /// Settles first what the report shows settled but we still hold pending (its callback
    /// late or lost, the poller not yet due): asked at the provider now, so a timing window
    /// is not reported as `missing_on_our_side`.
    async fn settle_reported(
        &self,
        provider: &str,
        lines: &[providers::SettlementLine],
    ) -> Result<(), MovementError> {
        let ours: Vec<Uuid> = lines
            .iter()
            .filter_map(|l| Uuid::parse_str(&l.reference).ok())
            .collect();
        let pending: Vec<crate::Movement> = sqlx::query_as(&format!(
            "SELECT {} FROM movements t
             WHERE t.id = ANY($1) AND t.status = 'pending' AND t.provider = $2",
            <crate::Movement as crate::lifecycle::Recorded>::COLUMNS
        ))
        .bind(&ours)
        .bind(provider)
        .fetch_all(&self.pool)
        .await?;
        for movement in pending {
            let id = movement.id;
            if self.ask_provider(movement).await? {
                tracing::info!(kind = self.kind.name(), %id, provider, "settled by reconciliation");
            }
        }
        Ok(())
    }

    /// The id of the posting that moved a succeeded movement's money against the provider's
    /// account: the top-up's own id; a withdrawal's settle leg.
    fn posting_of(&self, id: Uuid) -> Uuid {
        match self.kind {
            crate::Kind::Withdraw => super::leg_id(id, super::Leg::Settle),
            _ => id,
        }
    }

    async fn record_exception(
        &self,
        date: NaiveDate,
        provider: &str,
        f: Found,
    ) -> Result<ReconciliationException, MovementError> {
        let mut tx = self.pool.begin().await?;
        let inserted: Option<ReconciliationException> = sqlx::query_as(&format!(
            "INSERT INTO reconciliation_exceptions (id, settlement_date, provider, kind, reference,
                 provider_reference, expected_amount, expected_currency, reported_amount,
                 reported_currency)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (settlement_date, provider, kind, provider_reference) DO NOTHING
             RETURNING {COLUMNS}"
        ))
        .bind(Uuid::now_v7())
        .bind(date)
        .bind(provider)
        .bind(f.kind)
        .bind(&f.reference)
        .bind(&f.provider_reference)
        .bind(f.expected.as_ref().map(|e| e.0))
        .bind(f.expected.as_ref().map(|e| e.1.clone()))
        .bind(f.reported.as_ref().map(|r| r.0))
        .bind(f.reported.as_ref().map(|r| r.1.clone()))
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(new) = inserted {
            self.announce_exception(&mut tx, &new, ev::EXCEPTION_OPENED)
                .await?;
            tx.commit().await?;
            tracing::warn!(kind = self.kind.name(), provider, exception = %new.kind,
                provider_reference = %new.provider_reference, "reconciliation exception");
            metrics::counter!("reconciliation_exceptions_total",
                "kind" => self.kind.name(), "exception" => new.kind.as_str())
            .increment(1);
            return Ok(new);
        }
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM reconciliation_exceptions
             WHERE settlement_date = $1 AND provider = $2 AND kind = $3 AND provider_reference = $4"
        ))
        .bind(date)
        .bind(provider)
        .bind(f.kind)
        .bind(&f.provider_reference)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Exceptions, newest first; `state` `open` or `resolved` (`None`: all).
    pub async fn reconciliation_exceptions(
        &self,
        state: Option<&str>,
    ) -> Result<Vec<ReconciliationException>, MovementError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM reconciliation_exceptions
             WHERE $1::text IS NULL OR state = $1
             ORDER BY created_at DESC LIMIT 500"
        ))
        .bind(state)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Resolves an open exception with the operator's note.
    pub async fn resolve_exception(
        &self,
        id: Uuid,
        note: &str,
        by: &str,
    ) -> Result<ReconciliationException, MovementError> {
        let mut tx = self.pool.begin().await?;
        let resolved: Option<ReconciliationException> = sqlx::query_as(&format!(
            "UPDATE reconciliation_exceptions
             SET state = 'resolved', note = $2, resolved_by = $3, resolved_at = now()
             WHERE id = $1 AND state = 'open' RETURNING {COLUMNS}"
        ))
        .bind(id)
        .bind(note)
        .bind(by)
        .fetch_optional(&mut *tx)
        .await?;
        let resolved = resolved.ok_or(MovementError::NotFound("open reconciliation exception"))?;
        self.announce_exception(&mut tx, &resolved, ev::EXCEPTION_RESOLVED)
            .await?;
        tx.commit().await?;
        self.export_open_exceptions().await?;
        Ok(resolved)
    }

    /// Adds `event_type` about `exception` to the outbox, in the transaction that changed it.
    async fn announce_exception(
        &self,
        conn: &mut sqlx::PgConnection,
        exception: &ReconciliationException,
        event_type: &str,
    ) -> Result<(), MovementError> {
        let data = ev::Exception {
            id: exception.id,
            movement_kind: self.kind.name().to_owned(),
            settlement_date: exception.settlement_date,
            provider: exception.provider.clone(),
            kind: exception.kind.as_str().to_owned(),
            reference: exception.reference.clone(),
            provider_reference: exception.provider_reference.clone(),
            expected_amount: exception.expected_amount,
            expected_currency: exception.expected_currency.clone(),
            reported_amount: exception.reported_amount,
            reported_currency: exception.reported_currency.clone(),
            state: exception.state.clone(),
            note: exception.note.clone(),
            resolved_by: exception.resolved_by.clone(),
        };
        let event = events::Envelope::new(
            &format!("{}-service", self.kind.name()),
            event_type,
            exception.id,
            &data,
        )
        .map_err(|e| MovementError::Internal(e.into()))?;
        events::outbox::enqueue(conn, events::topics::RECONCILIATION_EVENTS, &event).await?;
        Ok(())
    }

    async fn export_open_exceptions(&self) -> Result<(), MovementError> {
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM reconciliation_exceptions WHERE state = 'open'",
        )
        .fetch_one(&self.pool)
        .await?;
        metrics::gauge!("reconciliation_exceptions_open", "kind" => self.kind.name())
            .set(open as f64);
        Ok(())
    }
}
