//! The delivery log's SQL, and only SQL: one row per event that causes an email, claimed
//! before sending so that an email goes out at most once (see [`crate::handler`]).

use sqlx::PgPool;
use uuid::Uuid;

/// What a delivery row records of an email about to be sent.
pub struct Claim<'a> {
    pub event_id: Uuid,
    pub event_type: &'a str,
    pub template: &'a str,
    pub recipient: &'a str,
    pub subject: &'a str,
    pub trace_id: Option<&'a str>,
}

/// Claims a delivery: a new row as `sending`, or a `failed` one taken over for another
/// attempt. The attempt number, or `None` when the row is sent, sending or unknown.
pub async fn claim(pool: &PgPool, claim: &Claim<'_>) -> sqlx::Result<Option<i32>> {
    sqlx::query_scalar(
        "INSERT INTO deliveries (event_id, event_type, template, recipient, subject, status,
             trace_id)
         VALUES ($1, $2, $3, $4, $5, 'sending', $6)
         ON CONFLICT (event_id) DO UPDATE
             SET status = 'sending', attempts = deliveries.attempts + 1, updated_at = now()
             WHERE deliveries.status = 'failed'
         RETURNING attempts",
    )
    .bind(claim.event_id)
    .bind(claim.event_type)
    .bind(claim.template)
    .bind(claim.recipient)
    .bind(claim.subject)
    .bind(claim.trace_id)
    .fetch_optional(pool)
    .await
}

/// A row still `sending` means the service stopped mid-send: it becomes `unknown` (never
/// resent, maybe the server got it). Whether there was one.
pub async fn mark_interrupted(pool: &PgPool, event_id: Uuid) -> sqlx::Result<bool> {
    let updated = sqlx::query(
        "UPDATE deliveries SET status = 'unknown', updated_at = now(),
             last_error = 'the service stopped while sending; not resent'
         WHERE event_id = $1 AND status = 'sending'",
    )
    .bind(event_id)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(updated > 0)
}

pub async fn mark_sent(pool: &PgPool, event_id: Uuid, message_id: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE deliveries SET status = 'sent', sent_at = now(), updated_at = now(),
             message_id = $2, last_error = NULL
         WHERE event_id = $1",
    )
    .bind(event_id)
    .bind(message_id)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn mark_failed(pool: &PgPool, event_id: Uuid, error: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE deliveries SET status = 'failed', last_error = $2, updated_at = now()
         WHERE event_id = $1",
    )
    .bind(event_id)
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}
