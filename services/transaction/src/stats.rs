//! Payment statistics: the rollup kept from `payment.*` events (scopes: everything, the card,
//! the merchant, the API key), its rebuild, and who may see which scope.

use std::sync::Arc;

use events::payloads::transaction as ev;
use events::{Envelope, EventHandler, HandlerError};
use movement::MovementError;
use movement::stats::{Authorize, OwnerCache, StatsApi};
use platform::auth::Principal;
use proto::merchant::v1::merchant_service_client::MerchantServiceClient;
use proto::stats::v1 as pb;
use sqlx::{PgConnection, PgPool};
use stats::{Contribution, Scope};
use tonic::transport::Channel;
use uuid::Uuid;

/// Keeps `stats_monthly` from `payment.succeeded` / `payment.failed` and captured
/// authorizations (`payment.captured`, counted as succeeded with the captured amount);
/// refunds, authorizations not captured and their releases are not counted.
#[derive(Clone)]
pub struct PaymentStatsEvents {
    pub time_zone: String,
}

impl EventHandler for PaymentStatsEvents {
    async fn handle(&self, conn: &mut PgConnection, event: &Envelope) -> Result<(), HandlerError> {
        if !matches!(
            event.event_type.as_str(),
            "payment.succeeded" | "payment.failed" | "payment.captured"
        ) {
            return Ok(());
        }
        let p: ev::Payment = event
            .data_as()
            .map_err(|e| HandlerError::Permanent(e.into()))?;
        let contribution = Contribution {
            id: p.id,
            at: p.created_at,
            // a captured authorization counts what was captured
            status: p.status,
            method: p.method,
            amount: p.captured_amount.filter(|c| *c > 0).unwrap_or(p.amount),
            scopes: vec![
                Scope::Card(p.card_id),
                Scope::Merchant(p.merchant_id),
                Scope::ApiKey(p.api_key_id),
            ],
        };
        stats::record(conn, &self.time_zone, &contribution).await?;
        Ok(())
    }
}

/// Recomputes the payment rollup from the payments table.
pub async fn rebuild(pool: &PgPool, time_zone: &str) -> anyhow::Result<u64> {
    stats::rebuild(
        pool,
        time_zone,
        stats::Source {
            select: "SELECT id, created_at AS at, status, method,
                            COALESCE(capture_amount, amount) AS amount, card_id AS card,
                            NULL::uuid AS to_card, merchant_id AS merchant,
                            api_key_id AS api_key
                     FROM payments
                     WHERE status = 'failed'
                        OR (status = 'succeeded' AND (capture_method = 'automatic'
                                                      OR authorization_state = 'captured'))",
        },
    )
    .await
}

/// The merchant's statistics are the caller's if the merchant service lets them read it. A
/// merchant never changes owner, so a yes is remembered like a card's (see
/// [`movement::stats::card_owner`]).
async fn merchant_visible(
    merchants: &MerchantServiceClient<Channel>,
    seen: &OwnerCache,
    caller: &Principal,
    bearer: Option<&str>,
    merchant: Uuid,
) -> Result<(), MovementError> {
    let user = caller.user_id();
    if user.is_some_and(|user| seen.knows(user, merchant)) {
        return Ok(());
    }
    if crate::payments::merchant_readable(merchants, bearer, merchant).await? {
        if let Some(user) = user {
            seen.remember(user, merchant);
        }
        Ok(())
    } else {
        Err(MovementError::NotFound("merchant"))
    }
}

/// The payment statistics API: cards by their owner, merchants and keys by the merchant's owner.
pub fn api(
    pool: PgPool,
    cards: proto::card::v1::card_service_client::CardServiceClient<Channel>,
    merchants: MerchantServiceClient<Channel>,
) -> StatsApi {
    let card_check = movement::stats::card_owner(cards);
    let key_pool = pool.clone();
    let seen = Arc::new(OwnerCache::default());
    let authorize: Authorize = Arc::new(move |caller, bearer, scope| {
        let (card_check, merchants, pool, seen) = (
            card_check.clone(),
            merchants.clone(),
            key_pool.clone(),
            seen.clone(),
        );
        Box::pin(async move {
            match scope {
                Scope::Merchant(merchant) => {
                    merchant_visible(&merchants, &seen, &caller, bearer.as_deref(), merchant).await
                }
                Scope::ApiKey(key) => {
                    // The key's merchant, from its payments (a key without payments has
                    // nothing to show anyway).
                    let merchant: Option<Uuid> = sqlx::query_scalar(
                        "SELECT merchant_id FROM payments WHERE api_key_id = $1 LIMIT 1",
                    )
                    .bind(key)
                    .fetch_optional(&pool)
                    .await
                    .map_err(MovementError::Database)?;
                    match merchant {
                        Some(m) => {
                            merchant_visible(&merchants, &seen, &caller, bearer.as_deref(), m).await
                        }
                        None => Ok(()),
                    }
                }
                other => card_check(caller, bearer, other).await,
            }
        })
    });
    StatsApi::new(
        "payment",
        crate::payments::PAYMENTS_READ,
        &[
            pb::Scope::All,
            pb::Scope::Card,
            pb::Scope::Merchant,
            pb::Scope::ApiKey,
        ],
        pool,
        authorize,
    )
}

movement::stats_service!(
    StatsHandlers,
    proto::transaction::v1::payment_stats_service_server::PaymentStatsService
);
