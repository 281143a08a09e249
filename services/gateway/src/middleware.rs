//! The gateway's request pipeline: request id and trace span, authentication (a bad token is
//! a 401 even on public routes), per-principal rate limiting in Redis, HTTP metrics, and
//! `Cache-Control: no-store` on every API response (they are per-caller).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use deadpool_redis::redis;
use tracing::Instrument;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::Caller;

/// Response header carrying the request's W3C trace id.
pub const TRACE_ID_HEADER: &str = "x-trace-id";

/// Request id, trace span and metrics around everything else.
pub async fn observe(request: Request, next: Next) -> Response {
    let request_id = request
        .headers()
        .get(platform::grpc::REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.chars().all(|c| c.is_ascii_graphic()))
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned);
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let mut carrier = HashMap::new();
    for key in ["traceparent", "tracestate", "baggage"] {
        if let Some(value) = request.headers().get(key).and_then(|v| v.to_str().ok()) {
            carrier.insert(key.to_owned(), value.to_owned());
        }
    }
    let span = tracing::info_span!("http", http.method = %method, http.route = %route, request_id = %request_id, http.status = tracing::field::Empty);
    platform::telemetry::set_parent_from_headers(&span, &carrier);
    let started = Instant::now();
    let client = client_ip(&request);
    let mut response = platform::grpc::with_request_id(
        request_id.clone(),
        platform::grpc::with_client_address(client, next.run(request)),
    )
    .instrument(span.clone())
    .await;
    let status = response.status().as_u16();
    span.record("http.status", status);
    let elapsed = started.elapsed().as_secs_f64();
    metrics::counter!("http_requests_total", "method" => method.to_string(), "route" => route.clone(), "status" => status.to_string())
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method.to_string(), "route" => route)
        .record(elapsed);
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response
            .headers_mut()
            .insert(platform::grpc::REQUEST_ID_HEADER, value);
    }
    // The trace id lets a client (or a test) follow one request through the services,
    // Kafka and the consumers — down to the email it caused.
    let trace_id = span.in_scope(platform::telemetry::current_trace_id);
    if let Some(value) = trace_id.and_then(|t| HeaderValue::from_str(&t).ok()) {
        response.headers_mut().insert(TRACE_ID_HEADER, value);
    }
    response
        .headers_mut()
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// Verifies a bearer token if present, then applies the rate limit of the principal (the
/// user, or the client IP for anonymous calls).
pub async fn authenticate_and_limit(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut revocation = None;
    let principal_key = match bearer {
        Some(value) => {
            let Some(token) = value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
            else {
                return ApiError::unauthenticated(
                    "INVALID_TOKEN",
                    "the Authorization header must be `Bearer <token>`",
                )
                .into_response();
            };
            let token = token.trim().to_owned();
            match state.authenticator.decode(&token) {
                Ok(principal) => {
                    let key = match &principal.subject {
                        platform::auth::Subject::User(id) => {
                            revocation = Some(Revocation {
                                denylist_key: platform::auth::denylist_key(&principal.token_id),
                                epoch_key: platform::auth::epoch_key(*id),
                                issued_at_ms: principal.issued_at_ms,
                            });
                            format!("user:{id}")
                        }
                        platform::auth::Subject::Service(name) => format!("service:{name}"),
                    };
                    request.extensions_mut().insert(Caller { principal, token });
                    key
                }
                Err(e) => return ApiError::from(tonic::Status::from(e)).into_response(),
            }
        }
        // A request with an API key is not authenticated yet (the merchant service checks the
        // key later), so the key cannot name the bucket: any made-up value would get a fresh
        // one. Such requests share one bucket per client address, at the authenticated limit.
        None => {
            let has_key = request
                .headers()
                .get(crate::extract::API_KEY_HEADER)
                .is_some_and(|v| !v.as_bytes().trim_ascii().is_empty());
            // Provider callbacks carry a signature instead of a token; a provider delivers in
            // bursts from few addresses, so they get a bucket of their own per address at the
            // authenticated limit (NGINX's per-address limit still applies in front).
            let callback = request
                .uri()
                .path()
                .starts_with(crate::routes::provider_callbacks::PATH_PREFIX);
            let prefix = if has_key {
                "api-key-client"
            } else if callback {
                "provider-callbacks"
            } else {
                "ip"
            };
            // Set by `observe` around every request.
            format!("{prefix}:{}", platform::grpc::current_client_address())
        }
    };
    let limit = if principal_key.starts_with("ip:") {
        state.config.rate_limit_anonymous_per_minute
    } else {
        state.config.rate_limit_per_minute
    };
    // One Redis round trip: the revocation check of the token and the rate-limit counter.
    match check_rate(&state.redis, &principal_key, limit, revocation.as_ref()).await {
        Ok(RateDecision::Revoked) => {
            ApiError::from(tonic::Status::from(platform::auth::AuthError::Revoked)).into_response()
        }
        Ok(RateDecision::Allowed { remaining }) => {
            let mut response = next.run(request).await;
            let headers = response.headers_mut();
            headers.insert("x-ratelimit-limit", HeaderValue::from(limit));
            headers.insert("x-ratelimit-remaining", HeaderValue::from(remaining));
            response
        }
        Ok(RateDecision::Limited { retry_after }) => {
            metrics::counter!("http_rate_limited_total").increment(1);
            ApiError::too_many_requests(retry_after).into_response()
        }
        Err(e) if revocation.is_some() => {
            // A token whose revocation cannot be checked is not accepted.
            ApiError::from(tonic::Status::from(platform::auth::AuthError::Backend(e)))
                .into_response()
        }
        Err(e) => {
            // Fail open: Redis trouble must not take the API down; NGINX still limits per IP.
            tracing::warn!(
                error = format!("{e:#}"),
                "rate limiter unavailable; allowing request"
            );
            next.run(request).await
        }
    }
}

/// The client address: `X-Real-IP` set by NGINX, else the peer.
fn client_ip(request: &Request) -> String {
    request
        .headers()
        .get("x-real-ip")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| {
            request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

enum RateDecision {
    Allowed { remaining: u64 },
    Limited { retry_after: u64 },
    Revoked,
}

/// What ends a user's access token: its id on the denylist, or a session epoch after it.
struct Revocation {
    denylist_key: String,
    epoch_key: String,
    issued_at_ms: i64,
}

/// Fixed one-minute windows: `INCR` the window's counter, expire it with the window; in the
/// same pipeline, whether the token is on the denylist and the user's session epoch.
async fn check_rate(
    pool: &deadpool_redis::Pool,
    principal: &str,
    limit: u64,
    revocation: Option<&Revocation>,
) -> anyhow::Result<RateDecision> {
    let now = chrono::Utc::now().timestamp();
    let window = now / 60;
    let key = format!("ratelimit:{principal}:{window}");
    let mut conn = pool.get().await?;
    let (count, revoked, epoch): (u64, bool, Option<i64>) = redis::pipe()
        .atomic()
        .incr(&key, 1)
        .expire(&key, 61)
        .ignore()
        .exists(revocation.map_or("auth:no-token", |r| r.denylist_key.as_str()))
        .get(revocation.map_or("auth:no-epoch", |r| r.epoch_key.as_str()))
        .query_async(&mut conn)
        .await?;
    if revoked || revocation.is_some_and(|r| epoch.is_some_and(|e| r.issued_at_ms <= e)) {
        return Ok(RateDecision::Revoked);
    }
    if count > limit {
        let retry_after = u64::try_from(60 - now % 60).unwrap_or(1).max(1);
        Ok(RateDecision::Limited { retry_after })
    } else {
        Ok(RateDecision::Allowed {
            remaining: limit - count,
        })
    }
}
