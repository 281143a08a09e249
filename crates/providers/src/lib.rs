//! Payment providers behind one interface. Money enters the platform only as a provider's
//! *charge* (a top-up) and leaves it only as a *payout* (a withdrawal); the platform books
//! either only on the provider's word (a verified callback or a status answer).
//!
//! * [`Provider`]: create an operation (with an idempotency key derived from our id, so a
//!   retry never charges twice), ask its status by our reference, verify a callback, fetch a
//!   day's settlement report. Two adapters, two provider APIs:
//!   [`sandbox::SandboxProvider`] speaks the sandbox provider's own API (`sandbox/`, JSON,
//!   `Idempotency-Key`, HMAC-SHA256 callbacks); [`orders::OrdersProvider`] speaks an
//!   order-based API (basic auth, the order id as the idempotency key with `409` on reuse,
//!   decimal amounts, HMAC-SHA512 notifications, CSV settlement reports), which the sandbox
//!   also serves with `SANDBOX_DIALECT=orders`.
//! * [`breaker::Breaker`]: a circuit breaker per provider, so a provider that is down fails
//!   fast instead of holding every request for its timeout.
//! * [`Router`]: each method's priority list of providers; failover to the next one only when
//!   the previous one has *definitely* not taken the operation (a refused connection, or a
//!   status check that does not know our reference) — never on a timeout alone, which would
//!   pay twice.
//! * [`ErrorClass`]: the error table deciding what is retried and what is final.

pub mod breaker;
pub mod orders;
pub mod router;
pub mod sandbox;

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

pub use breaker::{Breaker, BreakerConfig, BreakerState};
pub use router::{Router, SubmitError, Submitted};

/// Which API a provider speaks: the adapter it is reached through.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Dialect {
    /// The sandbox provider's own API ([`sandbox::SandboxProvider`]).
    #[default]
    Sandbox,
    /// An order-based API ([`orders::OrdersProvider`]).
    Orders,
}

impl std::str::FromStr for Dialect {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s.trim() {
            "" | "sandbox" => Ok(Self::Sandbox),
            "orders" => Ok(Self::Orders),
            other => anyhow::bail!("unknown provider API {other:?}: sandbox or orders"),
        }
    }
}

/// Settings of one provider, whichever its API.
#[derive(Clone)]
pub struct ProviderConfig {
    /// Our name for it (`sandpay`).
    pub name: String,
    /// Which API it speaks.
    pub dialect: Dialect,
    /// Its base URL (`http://127.0.0.1:7070`).
    pub base_url: String,
    pub api_key: String,
    pub webhook_secret: String,
    /// How old a callback's signature may be (default 5 minutes).
    pub tolerance: Duration,
    /// Per-request timeout (default 5 s).
    pub timeout: Duration,
}

impl std::fmt::Debug for ProviderConfig {
    /// Without the API key and the webhook secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("name", &self.name)
            .field("dialect", &self.dialect)
            .field("base_url", &self.base_url)
            .field("api_key", &"<redacted>")
            .field("webhook_secret", &"<redacted>")
            .field("tolerance", &self.tolerance)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// The adapter for `config`'s API.
pub fn adapter(config: ProviderConfig) -> anyhow::Result<std::sync::Arc<dyn Provider>> {
    Ok(match config.dialect {
        Dialect::Sandbox => std::sync::Arc::new(sandbox::SandboxProvider::new(config)?),
        Dialect::Orders => std::sync::Arc::new(orders::OrdersProvider::new(config)?),
    })
}

/// A charge (money in) or a payout (money out).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationKind {
    Charge,
    Payout,
}

impl OperationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Charge => "charge",
            Self::Payout => "payout",
        }
    }
}

/// What we ask a provider to do.
#[derive(Clone, Debug)]
pub struct OperationRequest {
    pub kind: OperationKind,
    /// Our id of the top-up / withdrawal: the provider's `reference`, and the source of the
    /// idempotency key (the same on every retry).
    pub reference: uuid::Uuid,
    pub amount: i64,
    pub currency: String,
    pub method: String,
    /// Where the provider sends its outcome.
    pub callback_url: String,
}

impl OperationRequest {
    /// The outbound idempotency key: derived from our id, so every retry (and every replica)
    /// sends the same one.
    pub fn idempotency_key(&self) -> String {
        format!("{}-{}", self.kind.as_str(), self.reference)
    }
}

/// Where an operation stands at the provider.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProviderStatus {
    Pending,
    Succeeded,
    /// Declined or failed, with the provider's code and message.
    Failed {
        code: String,
        message: String,
    },
}

/// An operation as the provider reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderOperation {
    /// The provider's name (ours for it: `sandpay`, …).
    pub provider: String,
    /// The provider's id of the operation.
    pub provider_reference: String,
    pub kind: OperationKind,
    /// Our reference (the top-up / withdrawal id) as the provider echoes it.
    pub reference: String,
    pub amount: i64,
    pub currency: String,
    pub status: ProviderStatus,
}

/// A verified callback.
#[derive(Clone, Debug)]
pub struct CallbackEvent {
    /// The provider's event id: a callback delivered twice has the same one.
    pub event_id: String,
    pub operation: ProviderOperation,
}

/// Why a callback was refused.
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    /// No signature, or not the provider's.
    #[error("the callback's signature is missing or wrong")]
    BadSignature,
    /// Signed outside the tolerance window (a replay of an old callback).
    #[error("the callback was signed outside the tolerance window")]
    Stale,
    /// Signed, but not an event we understand.
    #[error("the callback is not a valid event: {0}")]
    Malformed(String),
}

/// One line of a provider's settlement report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettlementLine {
    pub provider_reference: String,
    pub reference: String,
    pub kind: OperationKind,
    pub amount: i64,
    pub currency: String,
    pub settled_at: DateTime<Utc>,
}

/// How a failed call is treated: the error table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// The provider certainly did not take the operation (connection refused, `503
    /// unavailable`, `429`): safe to retry elsewhere.
    NotTaken,
    /// It may have (a timeout, a `500` after the request arrived): ask its status before
    /// doing anything else.
    Unknown,
    /// The request itself is wrong (`4xx`): retrying cannot help; final.
    Final,
}

/// A failed call.
#[derive(Clone, Debug)]
pub struct ProviderError {
    pub class: ErrorClass,
    pub message: String,
}

impl std::fmt::Display for ProviderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.class, self.message)
    }
}

impl std::error::Error for ProviderError {}

/// Whether a callback signed at `timestamp` (unix seconds) is within `tolerance` of `now`:
/// an older (or future) signature is a replay, [`CallbackError::Stale`].
pub(crate) fn fresh(
    timestamp: i64,
    now: DateTime<Utc>,
    tolerance: Duration,
) -> Result<(), CallbackError> {
    let signed_at =
        DateTime::<Utc>::from_timestamp(timestamp, 0).ok_or(CallbackError::BadSignature)?;
    let tolerance =
        chrono::Duration::from_std(tolerance).unwrap_or_else(|_| chrono::Duration::minutes(5));
    if (now - signed_at).abs() > tolerance {
        return Err(CallbackError::Stale);
    }
    Ok(())
}

/// A request that got no answer: refused before anything was sent is certainly not taken; a
/// timeout, or a connection lost after sending, is unknown.
pub(crate) fn transport_error(provider: &str, e: &reqwest::Error) -> ProviderError {
    ProviderError {
        class: if e.is_connect() {
            ErrorClass::NotTaken
        } else {
            ErrorClass::Unknown
        },
        message: format!("{provider}: {e}"),
    }
}

/// A payment provider.
#[async_trait::async_trait]
pub trait Provider: Send + Sync {
    /// Our name for it.
    fn name(&self) -> &str;

    /// Creates a charge or a payout (idempotent on [`OperationRequest::idempotency_key`]).
    async fn create(&self, request: &OperationRequest) -> Result<ProviderOperation, ProviderError>;

    /// The operation we created under `reference`, `None` when the provider has none.
    async fn status(
        &self,
        kind: OperationKind,
        reference: &str,
    ) -> Result<Option<ProviderOperation>, ProviderError>;

    /// Verifies a callback's signature and freshness and reads its event. `headers` are the
    /// request's, names in lower case; `body` exactly as received.
    fn verify_callback(
        &self,
        headers: &HashMap<String, String>,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<CallbackEvent, CallbackError>;

    /// The settlement report of one (UTC) day.
    async fn settlement(&self, date: NaiveDate) -> Result<Vec<SettlementLine>, ProviderError>;
}
