//! The money lifecycle every orchestrator shares: movements (topup, withdraw, transfer),
//! merchant payments and refunds — and whatever moves money next (holds, captures,
//! provider-backed top-ups). Plain functions over a [`Recorded`] type, so each orchestrator
//! writes only what is its own (its fields, its checks, its posting's sides):
//!
//! 1. [`check_idempotency_key`] and a request [`fingerprint`];
//! 2. a key seen before ([`by_key`]) answers through [`replay`] with the original outcome;
//! 3. the orchestrator records the request `pending` (its own `INSERT … ON CONFLICT DO
//!    NOTHING`); losing that race to a concurrent request is [`replay_winner`];
//! 4. the ledger posting under the record's id; an account that is not open yet means the
//!    ledger recorded nothing, so [`drop_unposted`] frees the key for a retry;
//! 5. [`complete`] sets the outcome and queues the completion event in one statement;
//! 6. recovery re-posts rows left [`pending_before`] a grace period and decides with
//!    [`recovered_outcome`] (give up on an account that never opened); [`run_every`] is
//!    its loop.

use std::time::Duration;

use chrono::{DateTime, Utc};
use events::Envelope;
use platform::FieldViolation;
use platform::auth::{Principal, Subject};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use sqlx::postgres::PgRow;
use uuid::Uuid;

use crate::error::MovementError;
use crate::upstream::{Outcome, Rejection};

platform::text_enum! {
    /// Where a recorded money request is in its life. Completed rows are immutable (a
    /// trigger in every schema refuses changes).
    pub enum Status {
        /// Recorded; the ledger's answer is not recorded yet.
        Pending = "pending",
        Succeeded = "succeeded",
        /// Refused; the record carries the reason code.
        Failed = "failed",
    }
}

impl Status {
    /// `payments.common.v1.MovementStatus`.
    pub fn to_proto(self) -> i32 {
        use proto::common::v1::MovementStatus;
        (match self {
            Self::Pending => MovementStatus::Pending,
            Self::Succeeded => MovementStatus::Succeeded,
            Self::Failed => MovementStatus::Failed,
        }) as i32
    }

    /// The status filter of a list request (UNSPECIFIED = any).
    pub fn from_proto_filter(value: i32) -> Option<Self> {
        use proto::common::v1::MovementStatus;
        match MovementStatus::try_from(value) {
            Ok(MovementStatus::Pending) => Some(Self::Pending),
            Ok(MovementStatus::Succeeded) => Some(Self::Succeeded),
            Ok(MovementStatus::Failed) => Some(Self::Failed),
            _ => None,
        }
    }
}

/// A recorded money request (a movement, a payment, a refund): what the lifecycle needs of
/// its row and its table.
pub trait Recorded: for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin + 'static {
    /// Its table, with the lifecycle columns `id`, `requested_by`, `idempotency_key`,
    /// `status`, `failure_reason`, `created_at` and `completed_at`.
    const TABLE: &'static str;
    /// The select list that reads one from a row of [`Self::TABLE`] aliased `t`.
    const COLUMNS: &'static str;
    fn id(&self) -> Uuid;
    fn fingerprint(&self) -> &[u8];
    fn status(&self) -> Status;
    fn failure_reason(&self) -> Option<&str>;
    fn created_at(&self) -> DateTime<Utc>;
    /// Recorded with a past time (an import): it completes at that time too.
    fn backdated(&self) -> bool;
}

/// Implements [`Recorded`] for a row type with the fields `id`, `fingerprint`, `status`,
/// `failure_reason`, `created_at` and `backdated`:
/// `movement::recorded!(PaymentRow, "payments", "t.id, t.status, …")`.
#[macro_export]
macro_rules! recorded {
    ($row:ty, $table:literal, $columns:expr) => {
        impl $crate::lifecycle::Recorded for $row {
            const TABLE: &'static str = $table;
            const COLUMNS: &'static str = $columns;

            fn id(&self) -> $crate::__private::Uuid {
                self.id
            }
            fn fingerprint(&self) -> &[u8] {
                &self.fingerprint
            }
            fn status(&self) -> $crate::lifecycle::Status {
                self.status
            }
            fn failure_reason(&self) -> Option<&str> {
                self.failure_reason.as_deref()
            }
            fn created_at(&self) -> $crate::__private::DateTime<$crate::__private::Utc> {
                self.created_at
            }
            fn backdated(&self) -> bool {
                self.backdated
            }
        }
    };
}

/// The caller an idempotency key is scoped to: a user id or `service:<name>`.
pub fn requested_by(caller: &Principal) -> String {
    match &caller.subject {
        Subject::User(id) => id.to_string(),
        Subject::Service(name) => format!("service:{name}"),
    }
}

/// An `Idempotency-Key` is required: 1-255 visible ASCII characters.
pub fn check_idempotency_key(key: &str, violations: &mut Vec<FieldViolation>) {
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        violations.push(FieldViolation::new(
            "idempotency_key",
            "is required: 1-255 visible ASCII characters (HTTP: the Idempotency-Key header)",
        ));
    }
}

/// The request's fingerprint: SHA-256 of its fields, each followed by a NUL, so the same key
/// with another request is told apart.
pub fn fingerprint(parts: &[&str]) -> Vec<u8> {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    hash.finalize().to_vec()
}

/// The record of `requested_by`'s `key`, if any.
pub async fn by_key<R: Recorded>(
    pool: &PgPool,
    requested_by: &str,
    key: &str,
) -> Result<Option<R>, MovementError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {} FROM {} t WHERE t.requested_by = $1 AND t.idempotency_key = $2",
        R::COLUMNS,
        R::TABLE
    ))
    .bind(requested_by)
    .bind(key)
    .fetch_optional(pool)
    .await?)
}

/// One record by id.
pub async fn load<R: Recorded>(pool: &PgPool, id: Uuid) -> Result<Option<R>, MovementError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {} FROM {} t WHERE t.id = $1",
        R::COLUMNS,
        R::TABLE
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

/// The answer to a request whose idempotency key was seen before: another request under the
/// key is IDEMPOTENCY_KEY_REUSED, a running one IDEMPOTENCY_KEY_IN_PROGRESS, a finished one
/// its original outcome.
pub fn replay<R: Recorded>(
    kind: &'static str,
    existing: R,
    fingerprint: &[u8],
) -> Result<R, MovementError> {
    if existing.fingerprint() != fingerprint {
        return Err(MovementError::KeyReused);
    }
    if existing.status() == Status::Pending {
        return Err(MovementError::KeyInProgress);
    }
    metrics::counter!("movement_idempotent_replays_total", "kind" => kind).increment(1);
    respond(kind, existing)
}

/// A concurrent request with the same key won the insert: answer with its record.
pub async fn replay_winner<R: Recorded>(
    kind: &'static str,
    pool: &PgPool,
    requested_by: &str,
    key: &str,
    fingerprint: &[u8],
) -> Result<R, MovementError> {
    let existing = by_key(pool, requested_by, key)
        .await?
        .ok_or_else(|| MovementError::Internal(anyhow::anyhow!("idempotency key vanished")))?;
    replay(kind, existing, fingerprint)
}

/// A completed record as the caller sees it: failed ones are errors carrying their reason.
pub fn respond<R: Recorded>(kind: &'static str, record: R) -> Result<R, MovementError> {
    if record.status() == Status::Failed {
        Err(MovementError::Rejected {
            kind,
            id: record.id(),
            reason: record.failure_reason().unwrap_or_default().to_owned(),
        })
    } else {
        Ok(record)
    }
}

/// Removes a pending record the ledger never saw (its account was not open), so the
/// caller's key can be used again.
pub async fn drop_unposted<R: Recorded>(pool: &PgPool, id: Uuid) -> Result<(), MovementError> {
    sqlx::query(&format!(
        "DELETE FROM {} WHERE id = $1 AND status = 'pending'",
        R::TABLE
    ))
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}

/// The status and reason code the ledger's answer gives a record.
pub fn outcome_status(outcome: &Outcome) -> (Status, Option<&'static str>) {
    match outcome {
        Outcome::Posted => (Status::Succeeded, None),
        Outcome::Rejected(rejection) => (Status::Failed, Some(rejection.code())),
    }
}

/// Records the ledger's outcome of a pending record, once, with its completion event on
/// `topic`: one statement, so the update and the outbox row commit together. `None` when
/// someone else (recovery racing the request) completed it first.
pub async fn complete<R: Recorded>(
    kind: &'static str,
    pool: &PgPool,
    pending: &R,
    outcome: &Outcome,
    completed_at: DateTime<Utc>,
    topic: &str,
    event: &Envelope,
) -> Result<Option<R>, MovementError> {
    let (status, reason) = outcome_status(outcome);
    let (payload, headers) =
        events::outbox::encode(event).map_err(|e| MovementError::Internal(e.into()))?;
    let completed: Option<R> = sqlx::query_as(&format!(
        "WITH t AS (
             UPDATE {table} SET status = $2, failure_reason = $3, completed_at = $4
             WHERE id = $1 AND status = 'pending' RETURNING *),
         event AS (
             INSERT INTO outbox (event_id, topic, partition_key, event_type, payload, headers)
             SELECT $5, $6, $7, $8, $9, $10 FROM t RETURNING 1)
         SELECT {columns}, pg_notify('outbox_' || current_schema(), '') IS NULL AS notified
         FROM t",
        table = R::TABLE,
        columns = R::COLUMNS,
    ))
    .bind(pending.id())
    .bind(status)
    .bind(reason)
    .bind(completed_at)
    .bind(event.id)
    .bind(topic)
    .bind(&event.subject)
    .bind(&event.event_type)
    .bind(payload)
    .bind(headers)
    .fetch_optional(pool)
    .await?;
    if completed.is_some() {
        metrics::counter!("movements_total", "kind" => kind, "status" => status.as_str())
            .increment(1);
        tracing::info!(kind, id = %pending.id(), %status, reason, "completed");
    }
    Ok(completed)
}

/// When a record completes: now, or a backdated record's own time so its history reads in
/// order.
pub fn completion_time<R: Recorded>(pending: &R) -> DateTime<Utc> {
    if pending.backdated() {
        pending.created_at()
    } else {
        Utc::now()
    }
}

/// Records left pending since before `grace` ago (a crash, a timeout), oldest first.
pub async fn pending_before<R: Recorded>(
    pool: &PgPool,
    grace: Duration,
    limit: i64,
) -> Result<Vec<R>, MovementError> {
    let grace = chrono::Duration::from_std(grace).map_err(|e| MovementError::Internal(e.into()))?;
    Ok(sqlx::query_as(&format!(
        "SELECT {} FROM {} t WHERE t.status = 'pending' AND t.created_at < $1
         ORDER BY t.created_at LIMIT $2",
        R::COLUMNS,
        R::TABLE
    ))
    .bind(Utc::now() - grace)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// How long recovery waits for a record's account to open before failing it.
pub const ACCOUNT_WAIT: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// What recovery does with a re-post's result: complete the record with it, or (`None`) try
/// again next round. An account that never opened within [`ACCOUNT_WAIT`] will not: the
/// record fails with ACCOUNT_NOT_FOUND.
pub fn recovered_outcome<R: Recorded>(
    kind: &'static str,
    record: &R,
    result: Result<Outcome, MovementError>,
) -> Option<Outcome> {
    match result {
        Ok(outcome) => Some(outcome),
        Err(MovementError::AccountNotReady) if Utc::now() - record.created_at() > ACCOUNT_WAIT => {
            Some(Outcome::Rejected(Rejection::AccountNotFound))
        }
        Err(e) => {
            tracing::warn!(kind, id = %record.id(),
                error = %platform::error::DisplayChain(&e), "recovery could not post yet");
            None
        }
    }
}

/// Runs `round` every `interval` until shutdown, logging failed rounds.
pub async fn run_every<F, Fut, E>(
    name: &'static str,
    interval: Duration,
    shutdown: platform::shutdown::Shutdown,
    mut round: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<usize, E>>,
    E: std::error::Error,
{
    loop {
        match round().await {
            Ok(0) => {}
            Ok(done) => tracing::warn!(task = name, done, "pending records recovered"),
            Err(e) => {
                tracing::error!(task = name, error = %platform::error::DisplayChain(&e), "round failed");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = shutdown.wait() => return,
        }
    }
}
