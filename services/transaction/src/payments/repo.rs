//! The SQL of payments and refunds, and only SQL: recording them, the refund reservation
//! queries, and the filtered lists. The lifecycle's own statements (by key, completing,
//! recovery) are [`movement::lifecycle`]'s.

use chrono::{DateTime, Utc};
use movement::CardInfo;
use movement::lifecycle::{Recorded, Status};
use platform::pagination::Page;
use sqlx::{PgConnection, PgExecutor, PgPool};
use uuid::Uuid;

use super::{PaymentFilter, PaymentRow, Pricing, RefundRow, RefundTarget};

/// A payment to record as pending.
pub struct NewPaymentRow<'a> {
    pub requested_by: &'a str,
    pub idempotency_key: &'a str,
    pub fingerprint: &'a [u8],
    pub merchant_id: Uuid,
    pub merchant_name: &'a str,
    pub api_key_id: Uuid,
    pub card: &'a CardInfo,
    pub amount: i64,
    pub method: &'a str,
    pub description: &'a str,
    pub effective_at: Option<DateTime<Utc>>,
    /// An authorization's deadline (`None`: captured when created).
    pub expires_at: Option<DateTime<Utc>>,
    /// The merchant's plan now, kept with the payment.
    pub pricing: &'a Pricing,
    /// The fee booked with an automatic payment's posting.
    pub fee_amount: i64,
}

/// Records a pending payment; `None` when the caller's key is already taken.
pub async fn insert_payment(
    db: impl PgExecutor<'_>,
    p: &NewPaymentRow<'_>,
) -> sqlx::Result<Option<PaymentRow>> {
    sqlx::query_as(&format!(
        "WITH t AS (
             INSERT INTO payments (id, requested_by, idempotency_key, fingerprint,
                 merchant_id, merchant_name, api_key_id, card_id, user_id,
                 masked_card_number, amount, currency, method, description, created_at,
                 backdated, capture_method, expires_at, fee_percent_bps, fee_fixed, fee_refund,
                 fee_amount)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,
                 COALESCE($15, now()), $15 IS NOT NULL,
                 CASE WHEN $16::timestamptz IS NULL THEN 'automatic' ELSE 'manual' END,
                 $16, $17, $18, $19, $20)
             ON CONFLICT (requested_by, idempotency_key) DO NOTHING
             RETURNING *)
         SELECT {} FROM t",
        PaymentRow::COLUMNS
    ))
    .bind(Uuid::now_v7())
    .bind(p.requested_by)
    .bind(p.idempotency_key)
    .bind(p.fingerprint)
    .bind(p.merchant_id)
    .bind(p.merchant_name)
    .bind(p.api_key_id)
    .bind(p.card.id)
    .bind(p.card.user_id)
    .bind(&p.card.masked_number)
    .bind(p.amount)
    .bind(&p.card.currency)
    .bind(p.method)
    .bind(p.description)
    .bind(p.effective_at)
    .bind(p.expires_at)
    .bind(p.pricing.percent_bps)
    .bind(p.pricing.fixed)
    .bind(&p.pricing.refund_fee)
    .bind(p.fee_amount)
    .fetch_optional(db)
    .await
}

/// What a refund needs of its payment, with the payment's row locked until the transaction
/// ends (concurrent refunds of one payment queue here).
pub async fn payment_for_refund(
    db: impl PgExecutor<'_>,
    payment_id: Uuid,
) -> sqlx::Result<Option<RefundTarget>> {
    sqlx::query_as(
        "SELECT id, status, amount, capture_method, authorization_state, capture_amount,
             fee_amount, fee_refund, merchant_id, card_id, masked_card_number, currency, user_id
         FROM payments WHERE id = $1 FOR UPDATE",
    )
    .bind(payment_id)
    .fetch_optional(db)
    .await
}

/// The amount of a payment its pending and succeeded refunds take, and the fee they return.
pub async fn reserved_for_refunds(
    db: impl PgExecutor<'_>,
    payment_id: Uuid,
) -> sqlx::Result<(i64, i64)> {
    sqlx::query_as(
        "SELECT COALESCE(sum(amount), 0)::bigint, COALESCE(sum(fee_returned), 0)::bigint
         FROM refunds WHERE payment_id = $1 AND status IN ('pending', 'succeeded')",
    )
    .bind(payment_id)
    .fetch_one(db)
    .await
}

/// A refund to record as pending.
pub struct NewRefundRow<'a> {
    pub payment_id: Uuid,
    pub requested_by: &'a str,
    pub idempotency_key: &'a str,
    pub fingerprint: &'a [u8],
    pub merchant_id: Uuid,
    pub card_id: Uuid,
    pub user_id: Uuid,
    pub masked_card_number: &'a str,
    pub amount: i64,
    pub currency: &'a str,
    pub reason: &'a str,
    pub effective_at: Option<DateTime<Utc>>,
    pub fee_returned: i64,
}

/// Records a pending refund; `None` when the caller's key is already taken.
pub async fn insert_refund(
    db: impl PgExecutor<'_>,
    r: &NewRefundRow<'_>,
) -> sqlx::Result<Option<RefundRow>> {
    sqlx::query_as(&format!(
        "INSERT INTO refunds AS t (id, payment_id, requested_by, idempotency_key, fingerprint,
             merchant_id, card_id, user_id, masked_card_number, amount, currency, reason,
             created_at, backdated, fee_returned)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,
             COALESCE($13, now()), $13 IS NOT NULL, $14)
         ON CONFLICT (requested_by, idempotency_key) DO NOTHING
         RETURNING {}",
        RefundRow::COLUMNS
    ))
    .bind(Uuid::now_v7())
    .bind(r.payment_id)
    .bind(r.requested_by)
    .bind(r.idempotency_key)
    .bind(r.fingerprint)
    .bind(r.merchant_id)
    .bind(r.card_id)
    .bind(r.user_id)
    .bind(r.masked_card_number)
    .bind(r.amount)
    .bind(r.currency)
    .bind(r.reason)
    .bind(r.effective_at)
    .bind(r.fee_returned)
    .fetch_optional(db)
    .await
}

/// The merchant name recorded with a payment.
pub async fn merchant_name(pool: &PgPool, payment_id: Uuid) -> sqlx::Result<String> {
    sqlx::query_scalar("SELECT merchant_name FROM payments WHERE id = $1")
        .bind(payment_id)
        .fetch_one(pool)
        .await
}

/// A page of payments, newest first, and how many match.
pub async fn list_payments(
    conn: &mut PgConnection,
    filter: &PaymentFilter,
    page: Page,
) -> sqlx::Result<(Vec<PaymentRow>, i64)> {
    Ok(platform::count_and_page!(
        conn,
        select = format!("SELECT {}", PaymentRow::COLUMNS),
        from_where = "FROM payments t WHERE ($1::text IS NULL OR t.status = $1)
              AND ($2::timestamptz IS NULL OR t.created_at >= $2)
              AND ($3::timestamptz IS NULL OR t.created_at < $3)
              AND ($4::uuid IS NULL OR t.card_id = $4)
              AND ($5::uuid IS NULL OR t.merchant_id = $5)
              AND ($6::uuid IS NULL OR t.api_key_id = $6)
              AND ($7::uuid IS NULL OR t.user_id = $7)
              AND ($8::text IS NULL OR t.method = $8)",
        order = "ORDER BY t.created_at DESC, t.id DESC",
        page = page,
        binds = [
            filter.status,
            filter.from,
            filter.to,
            filter.card_id,
            filter.merchant_id,
            filter.api_key_id,
            filter.user_id,
            filter.method,
        ],
    ))
}

/// A page of refunds (of one payment, of one merchant, or all), newest first, and how many
/// match.
pub async fn list_refunds(
    conn: &mut PgConnection,
    payment_id: Option<Uuid>,
    merchant_id: Option<Uuid>,
    status: Option<Status>,
    page: Page,
) -> sqlx::Result<(Vec<RefundRow>, i64)> {
    Ok(platform::count_and_page!(
        conn,
        select = format!("SELECT {}", RefundRow::COLUMNS),
        from_where = "FROM refunds t WHERE ($1::uuid IS NULL OR t.payment_id = $1)
              AND ($2::uuid IS NULL OR t.merchant_id = $2)
              AND ($3::text IS NULL OR t.status = $3)",
        order = "ORDER BY t.created_at DESC, t.id DESC",
        page = page,
        binds = [payment_id, merchant_id, status],
    ))
}
