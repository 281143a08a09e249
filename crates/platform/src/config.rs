//! Configuration from environment variables. Every process reads the same common variables
//! (listen addresses, database, Redis, Kafka, JWT, telemetry) and adds its own; the full list
//! is in README.md and `.env.example`.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, anyhow};

use crate::Secret;

/// Reads a required variable.
pub fn required(name: &str) -> anyhow::Result<String> {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => Ok(value),
        _ => Err(anyhow!("environment variable {name} is required")),
    }
}

/// Reads an optional variable, falling back to `default`.
pub fn optional(name: &str, default: &str) -> String {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => value,
        _ => default.to_owned(),
    }
}

/// Reads and parses an optional variable, falling back to `default`.
pub fn parsed<T>(name: &str, default: T) -> anyhow::Result<T>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => value
            .trim()
            .parse()
            .map_err(|e| anyhow!("environment variable {name}={value:?} is invalid: {e}")),
        _ => Ok(default),
    }
}

/// Reads a comma-separated list (`IDR,USD`), items trimmed, empty items dropped; `default`
/// is a list in the same form.
pub fn list(name: &str, default: &str) -> Vec<String> {
    split_list(&optional(name, default))
}

/// The items of a comma-separated list, trimmed, without empty ones.
pub fn split_list(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Reads a duration given in whole seconds.
pub fn seconds(name: &str, default_secs: u64) -> anyhow::Result<Duration> {
    Ok(Duration::from_secs(parsed(name, default_secs)?))
}

/// Reads a socket address such as `0.0.0.0:50051` (port 0 picks a free port).
pub fn socket_addr(name: &str, default: &str) -> anyhow::Result<SocketAddr> {
    let raw = optional(name, default);
    raw.parse()
        .with_context(|| format!("environment variable {name}={raw:?} is not a socket address"))
}

/// Settings every service process shares.
#[derive(Clone, Debug)]
pub struct CommonConfig {
    /// Service name used in logs, traces, metrics and event sources.
    pub service_name: String,
    /// gRPC listen address (`GRPC_ADDR`).
    pub grpc_addr: SocketAddr,
    /// Admin HTTP listen address for `/metrics`, `/healthz`, `/readyz` (`ADMIN_ADDR`).
    pub admin_addr: SocketAddr,
    /// PostgreSQL connection URL (`DATABASE_URL`).
    pub database_url: Secret<String>,
    /// Maximum connections in the pool (`DATABASE_MAX_CONNECTIONS`).
    pub database_max_connections: u32,
    /// Redis URL (`REDIS_URL`).
    pub redis_url: Secret<String>,
    /// Kafka bootstrap servers (`KAFKA_BROKERS`).
    pub kafka_brokers: String,
    /// JWT settings.
    pub jwt: crate::auth::JwtConfig,
    /// Apply migrations when the server starts (`MIGRATE_ON_START`, default true).
    pub migrate_on_start: bool,
    /// Calls per principal and minute through the public gRPC port (`EDGE_RATE_LIMIT_PER_MINUTE`,
    /// default 600; see [`crate::edge_limit`]).
    pub edge_rate_limit_per_minute: u64,
    /// A gRPC listener bound by whoever starts the service (tests bind port 0 first, so every
    /// address is known before any service starts and nothing can take a port in between);
    /// `None` binds `grpc_addr`.
    pub grpc_listener: Option<BoundListener>,
}

/// A listening socket handed to a service, taken once when it starts.
#[derive(Clone)]
pub struct BoundListener {
    addr: SocketAddr,
    socket: std::sync::Arc<std::sync::Mutex<Option<std::net::TcpListener>>>,
}

impl BoundListener {
    /// Binds `127.0.0.1:0`: a port of the OS's choosing, held from now on.
    pub fn loopback() -> anyhow::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        Ok(Self {
            addr: listener.local_addr()?,
            socket: std::sync::Arc::new(std::sync::Mutex::new(Some(listener))),
        })
    }

    /// Where it listens (also after a service took it).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The listener, for the one service that serves on it.
    pub(crate) fn take(&self) -> anyhow::Result<tokio::net::TcpListener> {
        let listener = self
            .socket
            .lock()
            .map_err(|_| anyhow!("listener lock poisoned"))?
            .take()
            .context("the listener was already taken by another service")?;
        Ok(tokio::net::TcpListener::from_std(listener)?)
    }
}

impl std::fmt::Debug for BoundListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BoundListener({})", self.addr)
    }
}

impl CommonConfig {
    /// Reads the common settings; `default_grpc` and `default_admin` are the service's ports.
    pub fn from_env(
        service_name: &str,
        default_grpc: &str,
        default_admin: &str,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            service_name: service_name.to_owned(),
            grpc_addr: socket_addr("GRPC_ADDR", default_grpc)?,
            admin_addr: socket_addr("ADMIN_ADDR", default_admin)?,
            database_url: Secret::new(optional(
                "DATABASE_URL",
                "postgres://postgres@127.0.0.1:5432/payments",
            )),
            database_max_connections: parsed("DATABASE_MAX_CONNECTIONS", 10)?,
            redis_url: Secret::new(optional("REDIS_URL", "redis://127.0.0.1:6379/0")),
            kafka_brokers: optional("KAFKA_BROKERS", "127.0.0.1:9092"),
            jwt: crate::auth::JwtConfig::from_env(service_name)?,
            migrate_on_start: parsed("MIGRATE_ON_START", true)?,
            edge_rate_limit_per_minute: parsed("EDGE_RATE_LIMIT_PER_MINUTE", 600)?,
            grpc_listener: None,
        })
    }
}

/// Binds a listener, naming what it is for in the error (`"gRPC"`, `"admin"`).
pub async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {what} on {addr}"))
}
