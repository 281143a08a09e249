//! The money lifecycle of the platform's orchestrators, and the movements built on it.
//!
//! [`lifecycle`] is what every money request shares — idempotency keys and fingerprints,
//! replays, recording `pending`, posting to the ledger under the record's id, completing
//! with the outbox event in one statement, recovery — as plain functions over a
//! [`Recorded`] type. Merchant payments and refunds (the transaction service) use it
//! directly; topup, withdraw and transfer use it through [`Movements`], which adds their
//! card checks and ledger sides:
//!
//! 1. validate the request; an `Idempotency-Key` seen before from the same caller returns
//!    the original result (same request), IDEMPOTENCY_KEY_REUSED (different request) or
//!    IDEMPOTENCY_KEY_IN_PROGRESS (still running) without touching anything;
//! 2. check the cards with the card service (owner, trashed, expired, currency);
//! 3. record the movement as `pending` with its key and request fingerprint;
//! 4. post it to the ledger with the movement id as the posting id;
//! 5. record `succeeded` or `failed` and queue the completion event in the same statement.
//!
//! A crash between 3 and 5 leaves a pending row; [`Movements::recover_once`] re-posts it
//! under the same id (the ledger returns the original result if it was already applied) and
//! completes it, so money moves at most once. Completed rows are immutable (a trigger).

pub mod app;
pub mod error;
pub mod kind;
pub mod lifecycle;
pub mod movements;
pub mod provider;
pub mod queries;
pub mod recovery;
pub mod rules;
pub mod stats;
pub mod upstream;

pub use error::MovementError;
pub use kind::Kind;
pub use lifecycle::{Recorded, Status};
pub use movements::{Movement, Movements, NewMovement};
pub use queries::Filter;
pub use rules::{DEFAULT_METHODS, Rules};
pub use upstream::{CardInfo, Fee, HoldSettled, Outcome, Rejection, Side, Upstream};

/// What [`recorded!`] expands to needs, reachable from any crate that uses it.
#[doc(hidden)]
pub mod __private {
    pub use chrono::{DateTime, Utc};
    pub use uuid::Uuid;
}
