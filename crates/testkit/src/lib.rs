//! Test harness shared by the integration tests, one module per outside process a test
//! talks to: [`db`] (a fresh PostgreSQL database per test), [`kafka`] (the broker the test
//! command started, or a private one to freeze, kill and restart), [`nginx`] (the project's
//! own template in front of a gateway), [`smtp`] (a real SMTP server writing a Maildir) and
//! [`ports`] (free ports reserved across test processes); here, polling with a deadline and
//! unique names.
//!
//! Environment: `TEST_DATABASE_URL` (server admin URL, default
//! `postgres://postgres@127.0.0.1:5432/postgres`), `TEST_REDIS_URL`, `TEST_KAFKA_BROKERS`,
//! `NGINX_BIN`.

pub mod db;
pub mod kafka;
pub mod nginx;
pub mod ports;
pub mod sandbox;
pub mod smtp;

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;

pub use db::{fresh_database, postgres_admin_url};
pub use kafka::{KafkaBroker, kafka_brokers, next_matching, topic_reader};
pub use nginx::Nginx;
pub use ports::free_port;
pub use smtp::Smtp;

/// Redis URL used by tests.
pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_owned())
}

/// A name no other test uses (`prefix-<uuid>`).
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Polls `check` every 50 ms until it yields a value or `timeout` passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from("."))
}

/// Replaces `${NAME}` in `template` with values from `vars`; fails on unknown names, like
/// `envsubst` with a fixed variable list.
pub fn render_template(template: &str, vars: &[(&str, String)]) -> anyhow::Result<String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').context("unterminated ${ in template")?;
        let name = &after[..end];
        let value = vars
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
            .with_context(|| format!("template variable {name} has no value"))?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `kill -SIGNAL pid`.
pub(crate) fn send_signal(pid: u32, signal: &str) -> anyhow::Result<()> {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()?;
    anyhow::ensure!(status.success(), "kill -{signal} {pid} failed");
    Ok(())
}
