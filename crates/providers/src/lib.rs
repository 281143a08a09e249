//! Payment providers behind one interface. Money enters the platform only as a provider's
//! *charge* (a top-up) and leaves it only as a *payout* (a withdrawal); the platform books
//! either only on the provider's word (a verified callback or a status answer).
//!
//! * [`Provider`]: create an operation (with an idempotency key derived from our id, so a
//!   retry never charges twice), ask its status by our reference, verify a callback, fetch a
//!   day's settlement report. [`sandbox::SandboxProvider`] speaks the sandbox provider's HTTP
//!   API (`sandbox/`), and so any provider deployed with that API.
//! * [`breaker::Breaker`]: a circuit breaker per provider, so a provider that is down fails
//!   fast instead of holding every request for its timeout.
//! * [`Router`]: each method's priority list of providers; failover to the next one only when
//!   the previous one has *definitely* not taken the operation (a refused connection, or a
//!   status check that does not know our reference) — never on a timeout alone, which would
//!   pay twice.
//! * [`ErrorClass`]: the error table deciding what is retried and what is final.

pub mod breaker;
pub mod router;
pub mod sandbox;

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

pub use breaker::{Breaker, BreakerConfig, BreakerState};
pub use router::{Router, SubmitError, Submitted};

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
