//! Movements backed by a payment provider: a top-up is a *charge* at the provider of its
//! method's route. Money enters the books only on the provider's word:
//!
//! 1. the request records the top-up `pending` (as every movement) and asks the route's
//!    provider to charge, with an idempotency key derived from the top-up id (the same on
//!    every retry and from every replica); the caller gets `202 pending`;
//! 2. the provider's signed callback ([`Movements::receive_callback`], relayed by the gateway
//!    from `POST /api/v1/provider-callbacks/{provider}/topups`) or the status poller
//!    ([`Movements::poll_providers_once`]) records the provider's word on the row;
//! 3. [`Movements::settle`] acts on that word: `succeeded` → the ledger posting (provider's
//!    system account → card) and completion; `failed` → completion as failed with
//!    PROVIDER_DECLINED and the provider's code. Whoever gets there first — the request (a
//!    provider that decides at once), the callback, the poller, or recovery after a crash —
//!    the posting is made once (its id is the top-up's) and the completion once.
//!
//! No provider available (every breaker open, every provider refusing connections): nothing
//! was charged, so the row is dropped and the caller gets `503 PROVIDER_UNAVAILABLE` and may
//! retry with the same key. A provider that timed out and cannot say whether it took the
//! charge keeps it: the poller asks again later, and it is never sent elsewhere.

use std::sync::Arc;
use std::time::Duration;

use providers::{
    OperationKind, OperationRequest, ProviderOperation, ProviderStatus, Router, SubmitError,
};
use uuid::Uuid;

use crate::lifecycle::{self, Status};
use crate::{Kind, Movement, MovementError, Movements, Outcome, Rejection};

mod callbacks;
mod poller;
pub mod reconcile;
mod reconcile_grpc;

pub use callbacks::{CallbackHandlers, CallbackOutcome};
pub use reconcile_grpc::{PERMISSION as RECONCILIATION_PERMISSION, ReconciliationHandlers};

/// The provider settings of a provider-backed kind, from the environment:
///
/// * `PROVIDERS`: our names of the providers, e.g. `sandpay,kilat`; each one's
///   `PROVIDER_<NAME>_URL`, `PROVIDER_<NAME>_API_KEY`, `PROVIDER_<NAME>_WEBHOOK_SECRET`, and
///   `PROVIDER_<NAME>_API` (`sandbox`, the default, or `orders`: which adapter speaks to it);
/// * `<KIND>_PROVIDER_ROUTES`: each method's providers in priority order
///   (`bca=sandpay,kilat;gopay=kilat`); by default every method goes to `PROVIDERS` in order;
/// * `PROVIDER_CALLBACK_BASE_URL`: the platform's public URL as providers reach it;
/// * `PROVIDER_TIMEOUT_MS` (5000), `PROVIDER_CALLBACK_TOLERANCE_SECS` (300),
///   `PROVIDER_BREAKER_FAILURES` (5), `PROVIDER_BREAKER_OPEN_SECS` (30).
#[derive(Clone, Debug)]
pub struct ProviderSettings {
    pub providers: Vec<providers::ProviderConfig>,
    pub routes: std::collections::HashMap<String, Vec<String>>,
    pub breaker: providers::BreakerConfig,
    pub callback_base_url: String,
}

impl ProviderSettings {
    /// Reads them; every method in `methods` must have a route.
    pub fn from_env(kind: Kind, methods: &[String]) -> anyhow::Result<Self> {
        use anyhow::Context;
        use platform::config::{list, optional, parsed, required};
        let names = list("PROVIDERS", "");
        anyhow::ensure!(
            !names.is_empty(),
            "PROVIDERS is required: money enters and leaves only through a payment provider \
             (run the sandbox provider locally: see README)"
        );
        let timeout = Duration::from_millis(parsed("PROVIDER_TIMEOUT_MS", 5_000_u64)?);
        let tolerance = Duration::from_secs(parsed("PROVIDER_CALLBACK_TOLERANCE_SECS", 300_u64)?);
        let providers = names
            .iter()
            .map(|name| {
                let var = |what: &str| format!("PROVIDER_{}_{what}", name.to_uppercase());
                Ok(providers::ProviderConfig {
                    name: name.clone(),
                    dialect: optional(&var("API"), "sandbox")
                        .parse()
                        .with_context(|| var("API"))?,
                    base_url: required(&var("URL"))?,
                    api_key: required(&var("API_KEY"))?,
                    webhook_secret: required(&var("WEBHOOK_SECRET"))?,
                    tolerance,
                    timeout,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let routes_var = format!("{}_PROVIDER_ROUTES", kind.name().to_uppercase());
        let mut routes =
            Router::parse_routes(&optional(&routes_var, "")).with_context(|| routes_var.clone())?;
        for method in methods {
            routes
                .entry(method.clone())
                .or_insert_with(|| names.clone());
        }
        Ok(Self {
            providers,
            routes,
            breaker: providers::BreakerConfig {
                failures: parsed("PROVIDER_BREAKER_FAILURES", 5_u32)?,
                open_for: Duration::from_secs(parsed("PROVIDER_BREAKER_OPEN_SECS", 30_u64)?),
            },
            callback_base_url: optional("PROVIDER_CALLBACK_BASE_URL", "http://127.0.0.1:8080"),
        })
    }

    /// The adapters, their breakers and the routes.
    pub fn backing(&self) -> anyhow::Result<Backing> {
        let adapters = self
            .providers
            .iter()
            .map(|c| providers::adapter(c.clone()))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Backing {
            router: Router::new(adapters, self.routes.clone(), self.breaker)?,
            callback_base_url: self.callback_base_url.clone(),
        })
    }
}

/// The providers a kind of movement goes through, and where their callbacks come back.
#[derive(Clone)]
pub struct Backing {
    pub router: Router,
    /// The platform's public base URL as providers reach it (through NGINX), e.g.
    /// `https://pay.example.com`; callbacks go to `<base>/api/v1/provider-callbacks/…`.
    pub callback_base_url: String,
}

impl Backing {
    fn callback_url(&self, kind: Kind, provider_hint: &str) -> String {
        format!(
            "{}/api/v1/provider-callbacks/{provider_hint}/{}s",
            self.callback_base_url.trim_end_matches('/'),
            kind.name()
        )
    }
}

pub(crate) fn operation_kind(kind: Kind) -> OperationKind {
    match kind {
        Kind::Withdraw => OperationKind::Payout,
        _ => OperationKind::Charge,
    }
}

platform::text_enum! {
    /// The provider's word on a movement, as the row keeps it (`movements.provider_status`);
    /// a final one (`Succeeded`, `Failed`) is recorded once and never changes.
    pub enum ProviderState {
        Pending = "pending",
        Succeeded = "succeeded",
        Failed = "failed",
    }
}

/// The provider's status as stored on the row: its state and failure code.
pub(crate) fn stored_status(status: &ProviderStatus) -> (ProviderState, Option<&str>) {
    match status {
        ProviderStatus::Pending => (ProviderState::Pending, None),
        ProviderStatus::Succeeded => (ProviderState::Succeeded, None),
        ProviderStatus::Failed { code, .. } => (ProviderState::Failed, Some(code.as_str())),
    }
}

/// The DDL of the provider callbacks table (idempotent; see `crate::app::PROVIDER_BACKED_TABLES`).
pub const PROVIDER_CALLBACKS: &str = include_str!("../../schema/provider_callbacks.sql");

/// The DDL of the reconciliation exceptions table (idempotent).
pub const RECONCILIATION_EXCEPTIONS: &str =
    include_str!("../../schema/reconciliation_exceptions.sql");

/// The system account a withdrawal's amount waits in while its payout is under way: debited
/// from the card first, then paid out to the provider's account or returned to the card.
pub const IN_TRANSIT: &str = "payouts-in-transit";

/// The second leg of a payout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Leg {
    /// Paid out: in transit → the provider's account.
    Settle,
    /// Not paid out: in transit → back to the card.
    Return,
}

impl Leg {
    fn name(self) -> &'static str {
        match self {
            Self::Settle => "settle",
            Self::Return => "return",
        }
    }
}

/// The posting id of a payout's second leg: derived from the withdrawal's id and the leg, so
/// every replica and retry posts the same one, and the ledger applies it once.
pub(crate) fn leg_id(id: Uuid, leg: Leg) -> Uuid {
    derived_id(id, leg.name())
}

/// An id derived from a movement's id and what it names (a ledger leg, an event): the same
/// from every replica and on every retry.
pub(crate) fn derived_id(id: Uuid, label: &str) -> Uuid {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(id.as_bytes())
        .chain_update(label.as_bytes())
        .finalize();
    let mut bytes = [0_u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// What [`Movements::submit`] does when no provider can take the operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unavailable {
    Drop,
    Fail,
}

/// When the poller asks about an operation next: 5 s after it was taken, then doubling up to
/// 10 minutes between checks.
pub(crate) const FIRST_CHECK: Duration = Duration::from_secs(5);

impl Movements {
    pub(crate) fn backing(&self) -> Result<&Arc<Backing>, MovementError> {
        self.providers.as_ref().ok_or_else(|| {
            MovementError::Internal(anyhow::anyhow!(
                "{} has no payment providers configured",
                self.kind.name()
            ))
        })
    }

    /// Sends a recorded movement to its route's providers (step 1) and settles it if the
    /// provider decided at once. When no provider is available, nothing was taken: a request
    /// (`Unavailable::Drop`) forgets the row so the caller can retry with the same key;
    /// recovery (`Unavailable::Fail`) completes it as failed with PROVIDER_UNAVAILABLE.
    pub(crate) async fn submit(
        &self,
        pending: Movement,
        unavailable: Unavailable,
    ) -> Result<Movement, MovementError> {
        let backing = self.backing()?.clone();
        let method = pending.method.clone().unwrap_or_default();
        let request = OperationRequest {
            kind: operation_kind(self.kind),
            reference: pending.id,
            amount: pending.amount,
            currency: pending.currency.clone(),
            method: method.clone(),
            callback_url: String::new(),
        };
        // Each provider gets its own callback URL (the path names it), so the platform knows
        // whose secret verifies what arrives there.
        let submitted = backing
            .router
            .submit_with(&request, |provider| {
                backing.callback_url(self.kind, provider)
            })
            .await;
        match submitted {
            Ok(s) => {
                for (provider, why) in &s.passed_over {
                    tracing::warn!(kind = self.kind.name(), id = %pending.id, provider, why, "provider passed over");
                }
                self.record_word(pending.id, &s.operation).await?;
                self.settle(pending.id).await
            }
            Err(SubmitError::Uncertain { provider, message }) => {
                tracing::warn!(kind = self.kind.name(), id = %pending.id, provider, message,
                    "the provider's answer is unknown; the poller will ask");
                sqlx::query(
                    "UPDATE movements SET provider = $2, provider_status = 'pending',
                         next_check_at = now() + $3::interval
                     WHERE id = $1 AND status = 'pending' AND provider IS NULL",
                )
                .bind(pending.id)
                .bind(&provider)
                .bind(format!("{} seconds", FIRST_CHECK.as_secs()))
                .execute(&self.pool)
                .await?;
                self.load(pending.id).await
            }
            Err(SubmitError::Rejected { provider, message }) => {
                tracing::error!(kind = self.kind.name(), id = %pending.id, provider, message,
                    "the provider refused the request itself");
                sqlx::query(
                    "UPDATE movements SET provider = $2, provider_status = 'failed',
                         provider_failure_code = 'request_refused'
                     WHERE id = $1 AND status = 'pending'",
                )
                .bind(pending.id)
                .bind(&provider)
                .execute(&self.pool)
                .await?;
                self.settle(pending.id).await
            }
            Err(e @ (SubmitError::Unavailable(_) | SubmitError::NoRoute(_))) => {
                metrics::counter!("provider_unavailable_total", "kind" => self.kind.name())
                    .increment(1);
                match unavailable {
                    Unavailable::Drop => {
                        lifecycle::drop_unposted::<Movement>(&self.pool, pending.id).await?;
                        Err(MovementError::ProviderUnavailable(e.to_string()))
                    }
                    Unavailable::Fail => {
                        tracing::warn!(kind = self.kind.name(), id = %pending.id, error = %e,
                            "no provider can take it; failing it");
                        if self.kind == Kind::Withdraw {
                            self.post_leg(&pending, Leg::Return).await?;
                        }
                        self.complete(&pending, &Outcome::Rejected(Rejection::ProviderUnavailable))
                            .await
                    }
                }
            }
        }
    }

    /// Tells the customer that a movement is with its provider (`topup.pending`,
    /// `withdraw.pending`: the amount is held) when the request leaves it pending. Once: the
    /// event's id is derived from the movement's, so a retried request or another replica
    /// adds nothing. Backdated imports announce nothing.
    pub(crate) async fn announce_pending(&self, m: &Movement) -> Result<(), MovementError> {
        if m.status != Status::Pending || m.backdated || m.provider.is_none() {
            return Ok(());
        }
        let mut event = self.event(m)?;
        event.id = derived_id(m.id, "pending-event");
        let mut conn = self.pool.acquire().await?;
        events::outbox::enqueue(&mut conn, self.kind.topic(), &event).await?;
        Ok(())
    }

    /// Records a provider's word about a movement (step 2): its provider and reference, and
    /// its status unless a final one is recorded already (a late `pending` never undoes a
    /// decision).
    pub(crate) async fn record_word(
        &self,
        id: Uuid,
        op: &ProviderOperation,
    ) -> Result<(), MovementError> {
        let (status, code) = stored_status(&op.status);
        sqlx::query(
            "UPDATE movements SET
                 provider = COALESCE(provider, $2),
                 provider_reference = COALESCE(provider_reference, $3),
                 provider_status = CASE WHEN provider_status IN ('succeeded', 'failed')
                                        THEN provider_status ELSE $4 END,
                 provider_failure_code = CASE WHEN provider_status IN ('succeeded', 'failed')
                                              THEN provider_failure_code ELSE $5 END,
                 next_check_at = COALESCE(next_check_at, now() + $6::interval)
             WHERE id = $1 AND status = 'pending'",
        )
        .bind(id)
        .bind(&op.provider)
        .bind(&op.provider_reference)
        .bind(status)
        .bind(code)
        .bind(format!("{} seconds", FIRST_CHECK.as_secs()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Acts on the provider's recorded word (step 3); the movement as it now stands. A
    /// movement the provider has not decided is returned as it is (`pending`).
    pub async fn settle(&self, id: Uuid) -> Result<Movement, MovementError> {
        let movement = self.load(id).await?;
        if movement.status != Status::Pending {
            return Ok(movement);
        }
        let outcome = match movement.provider_status {
            // A payout: the held amount goes to the provider, or back to the card. Never both:
            // the provider's final word is recorded once and never changes.
            Some(ProviderState::Succeeded) if self.kind == Kind::Withdraw => {
                self.post_leg(&movement, Leg::Settle).await?;
                Outcome::Posted
            }
            Some(ProviderState::Failed) if self.kind == Kind::Withdraw => {
                self.post_leg(&movement, Leg::Return).await?;
                Outcome::Rejected(Rejection::ProviderDeclined)
            }
            Some(ProviderState::Succeeded) => match self.post(&movement).await {
                Ok(outcome) => outcome,
                // The provider took the money but the card's account is not open yet:
                // recovery posts it once it is.
                Err(MovementError::AccountNotReady) => return Ok(movement),
                Err(e) => return Err(e),
            },
            Some(ProviderState::Failed) => Outcome::Rejected(Rejection::ProviderDeclined),
            _ => return Ok(movement),
        };
        self.complete(&movement, &outcome).await
    }

    /// Posts a payout's second leg (see [`Leg`]); the ledger refusing it is an error that
    /// leaves the withdrawal pending for recovery (the money stays in transit meanwhile).
    pub(crate) async fn post_leg(&self, m: &Movement, leg: Leg) -> Result<(), MovementError> {
        let provider = m.provider.clone().unwrap_or_default();
        let in_transit = crate::Side::System(IN_TRANSIT.to_owned());
        let (credit, description) = match leg {
            Leg::Settle => (
                crate::Side::System(format!("provider:{provider}")),
                format!("withdraw {}: paid out by {provider}", m.id),
            ),
            Leg::Return => (
                crate::Side::Card(m.card_id),
                format!("withdraw {}: not paid out, returned to the card", m.id),
            ),
        };
        let amount = platform::money::Money::positive(m.amount, &m.currency)
            .map_err(|e| MovementError::Internal(e.into()))?;
        match self
            .upstream
            .post(
                leg_id(m.id, leg),
                self.kind.name(),
                in_transit,
                credit,
                amount,
                description,
                m.backdated.then_some(m.created_at),
            )
            .await?
        {
            Outcome::Posted => Ok(()),
            Outcome::Rejected(r) => Err(MovementError::Internal(anyhow::anyhow!(
                "the ledger refused the {} leg of withdraw {}: {}",
                leg.name(),
                m.id,
                r.code()
            ))),
        }
    }
}
