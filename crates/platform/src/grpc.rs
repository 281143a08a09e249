//! gRPC server bootstrap and client helpers.
//!
//! Every server gets the same stack: an observability layer (request id, a span per call
//! continuing the caller's trace, request count and latency metrics), `grpc.health.v1`,
//! reflection (so `grpcurl` works), a per-call timeout and graceful shutdown. Authentication
//! happens in the handlers through [`crate::auth::Authenticator`], because checking the
//! revocation denylist is asynchronous.

use std::collections::HashMap;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tonic::transport::{Channel, Endpoint, Server};
use tower::layer::util::{Identity, Stack};
use tracing::Instrument;

use crate::shutdown::Shutdown;

tokio::task_local! {
    static REQUEST_ID: String;
    static CLIENT_ADDRESS: String;
}

/// Metadata key of the end client's address: set by the gateway from NGINX's `X-Real-IP`, and
/// by NGINX itself on the public gRPC port (overwriting whatever a client sent). Per-client
/// limits (the login lockout) key on it.
pub const CLIENT_ADDRESS_HEADER: &str = "x-client-address";

/// Runs `fut` with `address` as the end client's address: calls made inside carry it.
pub async fn with_client_address<F: std::future::Future>(address: String, fut: F) -> F::Output {
    CLIENT_ADDRESS.scope(address, fut).await
}

/// The end client's address of the request being served (set by the gateway), `unknown`
/// outside one.
pub fn current_client_address() -> String {
    CLIENT_ADDRESS
        .try_with(Clone::clone)
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// The end client's address of an incoming call, `unknown` when no edge named one.
pub fn client_address(metadata: &tonic::metadata::MetadataMap) -> String {
    metadata
        .get(CLIENT_ADDRESS_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64)
        .unwrap_or("unknown")
        .to_owned()
}

/// Metadata key of the request id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The request id of the call being served (empty outside a call).
pub fn current_request_id() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_default()
}

/// Runs `fut` with `request_id` as the current request id (used by the gateway too).
pub async fn with_request_id<F: std::future::Future>(request_id: String, fut: F) -> F::Output {
    REQUEST_ID.scope(request_id, fut).await
}

/// A server builder with the platform's layers and limits.
pub fn server() -> Server<Stack<ObservabilityLayer, Identity>> {
    Server::builder()
        .timeout(Duration::from_secs(30))
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(Duration::from_secs(20)))
        .http2_keepalive_timeout(Some(Duration::from_secs(5)))
        .concurrency_limit_per_connection(512)
        .layer(ObservabilityLayer)
}

/// The health service (reporting SERVING for the whole server) and the reflection services
/// (v1 and v1alpha).
pub async fn health_and_reflection() -> anyhow::Result<(
    tonic_health::server::HealthReporter,
    tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health>,
    tonic_reflection::server::v1::ServerReflectionServer<
        impl tonic_reflection::server::v1::ServerReflection,
    >,
    tonic_reflection::server::v1alpha::ServerReflectionServer<
        impl tonic_reflection::server::v1alpha::ServerReflection,
    >,
)> {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection = builder()
        .build_v1()
        .context("building the reflection service")?;
    // grpcurl and older tools still ask for v1alpha.
    let reflection_alpha = builder()
        .build_v1alpha()
        .context("building the v1alpha reflection service")?;
    Ok((reporter, health, reflection, reflection_alpha))
}

/// Serves `router` on `listener` until `shutdown` fires, then drains in-flight calls.
pub async fn serve<L>(
    router: tonic::transport::server::Router<L>,
    listener: tokio::net::TcpListener,
    shutdown: Shutdown,
) -> anyhow::Result<()>
where
    L: tower::Layer<tonic::service::Routes> + Clone,
    L::Service: tower::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
        > + Clone
        + Send
        + 'static,
    <L::Service as tower::Service<http::Request<tonic::body::Body>>>::Future: Send + 'static,
    <L::Service as tower::Service<http::Request<tonic::body::Body>>>::Error:
        Into<Box<dyn std::error::Error + Send + Sync>> + Send,
{
    use tokio_stream::StreamExt;
    // Without TCP_NODELAY, small responses wait for the peer's delayed ACK (tens of ms at
    // low load).
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener).map(|stream| {
        stream.and_then(|stream| {
            stream.set_nodelay(true)?;
            Ok(stream)
        })
    });
    router
        .serve_with_incoming_shutdown(incoming, async move { shutdown.wait().await })
        .await
        .context("gRPC server failed")
}

/// A lazily connecting channel to another service (`http://host:port`).
pub fn channel(url: &str) -> anyhow::Result<Channel> {
    Ok(Endpoint::from_shared(url.to_owned())
        .with_context(|| format!("invalid gRPC endpoint {url}"))?
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(10))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(20))
        .keep_alive_while_idle(true)
        .connect_lazy())
}

/// A request to another service carrying the current request id, the end client's address
/// (if known), the trace context, an optional bearer token and a deadline.
pub fn outgoing<T>(message: T, bearer: Option<&str>, deadline: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(deadline);
    let metadata = request.metadata_mut();
    if let Ok(value) = current_request_id().parse() {
        metadata.insert(REQUEST_ID_HEADER, value);
    }
    if let Some(Ok(value)) = CLIENT_ADDRESS
        .try_with(Clone::clone)
        .ok()
        .map(|a| a.parse())
    {
        metadata.insert(CLIENT_ADDRESS_HEADER, value);
    }
    for (key, value) in crate::telemetry::current_context_headers() {
        if let (Ok(key), Ok(value)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            value.parse(),
        ) {
            metadata.insert(key, value);
        }
    }
    if let Some(token) = bearer
        && let Ok(value) = format!("Bearer {token}").parse()
    {
        metadata.insert("authorization", value);
    }
    request
}

/// The `method` label of a call: the path of a method the platform defines, else `unknown`.
/// Labelling by whatever path a client sends would let anyone grow every service's memory
/// with new Prometheus series.
fn metric_method(path: &str) -> String {
    static KNOWN: std::sync::LazyLock<std::collections::HashSet<&'static str>> =
        std::sync::LazyLock::new(|| {
            proto::METHODS
                .iter()
                .chain(proto::STANDARD_METHODS)
                .copied()
                .collect()
        });
    if KNOWN.contains(path) {
        path.to_owned()
    } else {
        "unknown".to_owned()
    }
}

/// Tower layer adding request ids, spans and metrics to every gRPC call.
#[derive(Clone, Copy, Debug, Default)]
pub struct ObservabilityLayer;

impl<S> tower::Layer<S> for ObservabilityLayer {
    type Service = ObservabilityService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        ObservabilityService { inner }
    }
}

/// The service made by [`ObservabilityLayer`].
#[derive(Clone, Debug)]
pub struct ObservabilityService<S> {
    inner: S,
}

impl<S, B, ResBody> tower::Service<http::Request<B>> for ObservabilityService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn std::future::Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = metric_method(request.uri().path());
        let headers = request.headers();
        let request_id = headers
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 128)
            .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned);
        let mut carrier = HashMap::new();
        for key in ["traceparent", "tracestate", "baggage"] {
            if let Some(value) = headers.get(key).and_then(|v| v.to_str().ok()) {
                carrier.insert(key.to_owned(), value.to_owned());
            }
        }
        let span = tracing::info_span!("grpc", rpc.method = %method, request_id = %request_id);
        crate::telemetry::set_parent_from_headers(&span, &carrier);
        let started = Instant::now();
        let fut = self.inner.call(request);
        Box::pin(REQUEST_ID.scope(
            request_id,
            async move {
                let result = fut.await;
                let code = match &result {
                    Ok(response) => response
                        .headers()
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("0")
                        .to_owned(),
                    Err(_) => "transport".to_owned(),
                };
                let elapsed = started.elapsed().as_secs_f64();
                metrics::counter!("grpc_server_requests_total", "method" => method.clone(), "code" => code.clone())
                    .increment(1);
                metrics::histogram!("grpc_server_request_duration_seconds", "method" => method.clone())
                    .record(elapsed);
                tracing::debug!(grpc.code = %code, elapsed_ms = elapsed * 1000.0, "rpc finished");
                result
            }
            .instrument(span),
        ))
    }
}
