//! Pricing plans: a percentage (basis points) plus a fixed fee per payment, per currency,
//! and whether refunds return the fee in proportion. An admin (`merchants.review`) sets
//! them; the merchant's owner (or `merchants.read`) reads them; API-key authentication hands
//! the plan of the merchant's currency to the transaction service, which books the fee.

use chrono::{DateTime, Utc};
use platform::FieldViolation;
use platform::auth::{Principal, Subject};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::MerchantError;
use crate::service::{MERCHANTS_READ, MERCHANTS_REVIEW, Merchants};

platform::text_enum! {
    /// What a refund does with the payment's fee.
    pub enum RefundFee {
        /// Returns the share of the fee the refund is of the captured amount.
        Proportional = "proportional",
        /// Keeps the fee.
        None = "none",
    }
}

/// A stored plan.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct PlanRow {
    pub merchant_id: Uuid,
    pub currency: String,
    pub percent_bps: i32,
    pub fixed_fee: i64,
    pub refund_fee: RefundFee,
    pub updated_by: String,
    pub updated_at: DateTime<Utc>,
}

/// A plan to set.
#[derive(Clone, Debug)]
pub struct NewPlan {
    pub currency: String,
    pub percent_bps: i32,
    pub fixed_fee: i64,
    pub refund_fee: String,
}

const COLUMNS: &str =
    "merchant_id, currency, percent_bps, fixed_fee, refund_fee, updated_by, updated_at";

impl Merchants {
    /// Sets (creates or replaces) the merchant's plan of one currency.
    pub async fn set_pricing(
        &self,
        caller: &Principal,
        merchant_id: Uuid,
        plan: NewPlan,
    ) -> Result<PlanRow, MerchantError> {
        caller.require(MERCHANTS_REVIEW)?;
        let mut violations = Vec::new();
        if plan.currency.len() != 3 || !plan.currency.chars().all(|c| c.is_ascii_uppercase()) {
            violations.push(FieldViolation::new("currency", "must be an ISO 4217 code"));
        }
        if !(0..=10_000).contains(&plan.percent_bps) {
            violations.push(FieldViolation::new(
                "percent_bps",
                "must be 0-10000 basis points (290 = 2.9 %)",
            ));
        }
        if plan.fixed_fee < 0 {
            violations.push(FieldViolation::new(
                "fixed_fee",
                "must be zero or a positive number of minor units",
            ));
        }
        let refund_fee = plan.refund_fee.parse::<RefundFee>().map_err(|_| {
            violations.push(FieldViolation::new(
                "refund_fee",
                "must be proportional or none",
            ))
        });
        let Ok(refund_fee) = refund_fee else {
            return Err(MerchantError::Invalid(violations));
        };
        if !violations.is_empty() {
            return Err(MerchantError::Invalid(violations));
        }
        let mut conn = self.pool.acquire().await?;
        let merchant = Self::load(&mut conn, merchant_id, false).await?;
        if merchant.deleted_at.is_some() {
            return Err(MerchantError::Trashed);
        }
        let plan: PlanRow = sqlx::query_as(&format!(
            "INSERT INTO pricing_plans (merchant_id, currency, percent_bps, fixed_fee,
                 refund_fee, updated_by)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (merchant_id, currency) DO UPDATE SET percent_bps = $3,
                 fixed_fee = $4, refund_fee = $5, updated_by = $6, updated_at = now()
             RETURNING {COLUMNS}"
        ))
        .bind(merchant_id)
        .bind(&plan.currency)
        .bind(plan.percent_bps)
        .bind(plan.fixed_fee)
        .bind(refund_fee)
        .bind(match &caller.subject {
            Subject::User(id) => id.to_string(),
            Subject::Service(name) => format!("service:{name}"),
        })
        .fetch_one(&mut *conn)
        .await?;
        tracing::info!(%merchant_id, currency = %plan.currency, percent_bps = plan.percent_bps,
            fixed_fee = plan.fixed_fee, "pricing plan set");
        Ok(plan)
    }

    /// The merchant's plans, by currency.
    pub async fn pricing(
        &self,
        caller: &Principal,
        merchant_id: Uuid,
    ) -> Result<Vec<PlanRow>, MerchantError> {
        let mut conn = self.pool.acquire().await?;
        let merchant = Self::load(&mut conn, merchant_id, false).await?;
        Self::visible(caller, merchant, MERCHANTS_READ)?;
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM pricing_plans WHERE merchant_id = $1 ORDER BY currency"
        ))
        .bind(merchant_id)
        .fetch_all(&mut *conn)
        .await?)
    }
}

/// The plan of one merchant and currency, if any (for API-key authentication).
pub async fn plan_of(
    conn: &mut PgConnection,
    merchant_id: Uuid,
    currency: &str,
) -> sqlx::Result<Option<PlanRow>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM pricing_plans WHERE merchant_id = $1 AND currency = $2"
    ))
    .bind(merchant_id)
    .bind(currency)
    .fetch_optional(conn)
    .await
}
