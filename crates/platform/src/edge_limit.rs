//! Per-principal rate limits for calls that arrive through the public gRPC port.
//!
//! NGINX's gRPC server marks every call it forwards with `x-edge: grpc` (overwriting whatever
//! a client sent); the gateway and the services never set it, so internal calls and the
//! gateway's own (already limited) calls pass untouched. An edge call is counted in Redis per
//! principal — the verified user or service of its bearer token, else the client address —
//! in one-minute windows, like the gateway's HTTP limit; beyond the limit it is answered
//! `RESOURCE_EXHAUSTED` with `retry-after`, before any handler runs. Redis trouble lets calls
//! through (NGINX still limits per address).

use std::pin::Pin;
use std::task::{Context, Poll};

use crate::auth::{Authenticator, Subject};

/// Metadata key NGINX sets on calls through the public gRPC port.
pub const EDGE_HEADER: &str = "x-edge";

/// The limiter's settings and stores.
#[derive(Clone)]
pub struct EdgeLimit {
    redis: deadpool_redis::Pool,
    authenticator: Authenticator,
    /// Calls per principal and minute.
    per_minute: u64,
}

impl EdgeLimit {
    pub fn new(redis: deadpool_redis::Pool, authenticator: Authenticator, per_minute: u64) -> Self {
        Self {
            redis,
            authenticator,
            per_minute,
        }
    }

    /// The bucket of a call: its verified principal, else its client address.
    fn principal(&self, headers: &http::HeaderMap) -> String {
        let bearer = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            });
        match bearer.map(|t| self.authenticator.decode(t.trim())) {
            Some(Ok(principal)) => match principal.subject {
                Subject::User(id) => format!("user:{id}"),
                Subject::Service(name) => format!("service:{name}"),
            },
            _ => format!(
                "ip:{}",
                headers
                    .get(crate::grpc::CLIENT_ADDRESS_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("unknown")
            ),
        }
    }

    /// Seconds to wait when the call is over the limit; `None` when it may pass.
    async fn over_limit(&self, principal: &str) -> Option<u64> {
        let now = chrono::Utc::now().timestamp();
        let key = format!("edge-ratelimit:{principal}:{}", now / 60);
        let counted: anyhow::Result<u64> = async {
            let mut conn = self.redis.get().await?;
            let (count,): (u64,) = deadpool_redis::redis::pipe()
                .atomic()
                .incr(&key, 1)
                .expire(&key, 61)
                .ignore()
                .query_async(&mut conn)
                .await?;
            Ok(count)
        }
        .await;
        match counted {
            Ok(count) if count > self.per_minute => {
                Some(u64::try_from(60 - now % 60).unwrap_or(1).max(1))
            }
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "edge rate limiter unavailable; allowing call"
                );
                None
            }
        }
    }
}

/// The tower layer of [`EdgeLimit`].
#[derive(Clone)]
pub struct EdgeLimitLayer(pub Option<EdgeLimit>);

impl<S> tower::Layer<S> for EdgeLimitLayer {
    type Service = EdgeLimitService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        EdgeLimitService {
            inner,
            limit: self.0.clone(),
        }
    }
}

/// The service made by [`EdgeLimitLayer`].
#[derive(Clone)]
pub struct EdgeLimitService<S> {
    inner: S,
    limit: Option<EdgeLimit>,
}

impl<S, B> tower::Service<http::Request<B>> for EdgeLimitService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn std::future::Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let limit = self.limit.clone().filter(|_| {
            request
                .headers()
                .get(EDGE_HEADER)
                .is_some_and(|v| v == "grpc")
        });
        let Some(limit) = limit else {
            return Box::pin(self.inner.call(request));
        };
        // The ready inner service handles this call; a fresh clone waits for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let principal = limit.principal(request.headers());
            if let Some(retry_after) = limit.over_limit(&principal).await {
                metrics::counter!("grpc_edge_rate_limited_total").increment(1);
                let mut status = tonic::Status::resource_exhausted(format!(
                    "too many calls through the public gRPC port; retry in {retry_after} s"
                ));
                if let Ok(value) = retry_after.to_string().parse() {
                    status.metadata_mut().insert("retry-after", value);
                }
                return Ok(status.into_http());
            }
            inner.call(request).await
        })
    }
}
