//! The admin HTTP server every process runs beside its main listener: `/metrics`
//! (Prometheus), `/healthz` (liveness: the process answers), `/readyz` (readiness: its
//! dependencies answer and no component reports itself stuck, see [`crate::status`]) and
//! `/status` (every component's report, e.g. each Kafka consumer's lag and state).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::future::BoxFuture;
use serde_json::json;

use crate::shutdown::Shutdown;

type Check = Arc<dyn Fn() -> BoxFuture<'static, anyhow::Result<()>> + Send + Sync>;

/// Named readiness checks.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<(&'static str, Check)>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<_> = self.checks.iter().map(|(n, _)| *n).collect();
        f.debug_struct("Readiness").field("checks", &names).finish()
    }
}

impl Readiness {
    /// No checks yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a check; `/readyz` fails while any check fails.
    pub fn with<F, Fut>(mut self, name: &'static str, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        self.checks.push((
            name,
            Arc::new(move || Box::pin(check()) as BoxFuture<'static, _>),
        ));
        self
    }

    /// A check of a PostgreSQL pool.
    pub fn with_postgres(self, pool: sqlx::PgPool) -> Self {
        self.with("postgres", move || {
            let pool = pool.clone();
            async move { crate::db::ping(&pool).await }
        })
    }

    /// A check of a Redis pool.
    pub fn with_redis(self, pool: deadpool_redis::Pool) -> Self {
        self.with("redis", move || {
            let pool = pool.clone();
            async move { crate::redis::ping(&pool).await }
        })
    }
}

/// Serves the admin endpoints on `listener` until `shutdown` fires.
pub async fn serve(
    listener: tokio::net::TcpListener,
    readiness: Readiness,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let handle = crate::telemetry::install_metrics();
    let app = Router::new()
        .route("/metrics", get(move || async move { handle.render() }))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/status", get(status))
        .with_state(readiness);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.wait().await })
        .await?;
    Ok(())
}

async fn ready(State(readiness): State<Readiness>) -> Response {
    let mut failures = serde_json::Map::new();
    for (name, check) in &readiness.checks {
        let outcome = tokio::time::timeout(std::time::Duration::from_secs(2), check()).await;
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                failures.insert((*name).to_owned(), json!(format!("{e:#}")));
            }
            Err(_) => {
                failures.insert((*name).to_owned(), json!("timed out"));
            }
        }
    }
    for (name, report) in crate::status::snapshot() {
        if let Some(reason) = report.reason {
            failures.insert(name, json!(reason));
        }
    }
    if failures.is_empty() {
        (StatusCode::OK, axum::Json(json!({"status": "ready"}))).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "not ready", "failures": failures})),
        )
            .into_response()
    }
}

async fn status() -> Response {
    let components: serde_json::Map<String, serde_json::Value> = crate::status::snapshot()
        .into_iter()
        .map(|(name, report)| {
            let value = json!({
                "ready": report.ready(),
                "reason": report.reason,
                "detail": report.detail,
            });
            (name, value)
        })
        .collect();
    axum::Json(json!({ "components": components })).into_response()
}
