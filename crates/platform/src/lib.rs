//! Building blocks every process of the platform shares: configuration from the environment,
//! telemetry (tracing, OpenTelemetry, Prometheus), the admin HTTP endpoints, the gRPC server
//! bootstrap, PostgreSQL and Redis pools, JWT authentication and the error model.
//!
//! Nothing here knows about a specific service or holds business rules; a service composes
//! these pieces in its own `Application::build`.

pub mod admin;
pub mod auth;
pub mod card_data;
pub mod config;
pub mod db;
pub mod edge_limit;
pub mod error;
pub mod failpoint;
pub mod grpc;
pub mod link_token;
pub mod money;
pub mod pagination;
pub mod ports;
pub mod process;
pub mod redis;
pub mod sealing;
pub mod secret;
pub mod shutdown;
pub mod status;
pub mod telemetry;
pub mod text_enum;
pub mod time;

pub use error::{DomainError, ErrorKind, FieldViolation, parse_optional_uuid, parse_uuid};
pub use secret::Secret;

/// What [`text_enum!`] expands to needs, reachable from any crate that uses it.
#[doc(hidden)]
pub mod __private {
    pub use sqlx;
}
