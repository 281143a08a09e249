//! The HTTP/JSON API gateway. It authenticates callers (JWT, revocation denylist), applies
//! per-principal rate limits in Redis, validates request syntax with field-precise errors,
//! and calls the domain services over gRPC with deadlines. It owns no data and never touches
//! a database; the services make every authorization decision.

pub mod error;
pub mod extract;
pub mod middleware;
pub mod openapi;
pub mod routes;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::IntoResponse;
use axum::routing::get;
use platform::auth::{Authenticator, JwtConfig};
use platform::shutdown::Shutdown;
use proto::card::v1::card_service_client::CardServiceClient;
use proto::merchant::v1::merchant_document_service_client::MerchantDocumentServiceClient;
use proto::merchant::v1::merchant_service_client::MerchantServiceClient;
use proto::merchant::v1::webhook_service_client::WebhookServiceClient;
use proto::provider::v1::provider_callback_service_client::ProviderCallbackServiceClient;
use proto::provider::v1::reconciliation_service_client::ReconciliationServiceClient;
use proto::role::v1::role_service_client::RoleServiceClient;
use proto::saldo::v1::saldo_service_client::SaldoServiceClient;
use proto::saldo::v1::saldo_stats_service_client::SaldoStatsServiceClient;
use proto::topup::v1::topup_service_client::TopupServiceClient;
use proto::topup::v1::topup_stats_service_client::TopupStatsServiceClient;
use proto::transaction::v1::payment_stats_service_client::PaymentStatsServiceClient;
use proto::transaction::v1::transaction_service_client::TransactionServiceClient;
use proto::transfer::v1::transfer_service_client::TransferServiceClient;
use proto::transfer::v1::transfer_stats_service_client::TransferStatsServiceClient;
use proto::user::v1::auth_service_client::AuthServiceClient;
use proto::user::v1::user_service_client::UserServiceClient;
use proto::withdraw::v1::withdraw_service_client::WithdrawServiceClient;
use proto::withdraw::v1::withdraw_stats_service_client::WithdrawStatsServiceClient;
use tokio::net::TcpListener;
use tonic::transport::Channel;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

/// Settings of the gateway.
#[derive(Clone, Debug)]
pub struct Config {
    /// HTTP listen address (`HTTP_ADDR`).
    pub http_addr: SocketAddr,
    /// Admin listen address (`ADMIN_ADDR`).
    pub admin_addr: SocketAddr,
    /// `USER_SERVICE_URL`.
    pub user_service_url: String,
    /// `ROLE_SERVICE_URL`.
    pub role_service_url: String,
    /// `CARD_SERVICE_URL`.
    pub card_service_url: String,
    /// `SALDO_SERVICE_URL`.
    pub saldo_service_url: String,
    /// `TOPUP_SERVICE_URL`.
    pub topup_service_url: String,
    /// `WITHDRAW_SERVICE_URL`.
    pub withdraw_service_url: String,
    /// `TRANSFER_SERVICE_URL`.
    pub transfer_service_url: String,
    /// `MERCHANT_SERVICE_URL`.
    pub merchant_service_url: String,
    /// `TRANSACTION_SERVICE_URL`.
    pub transaction_service_url: String,
    /// `REDIS_URL`.
    pub redis_url: platform::Secret<String>,
    pub jwt: JwtConfig,
    /// Requests per minute per authenticated principal (`RATE_LIMIT_PER_MINUTE`).
    pub rate_limit_per_minute: u64,
    /// Requests per minute per client IP without a token (`RATE_LIMIT_ANONYMOUS_PER_MINUTE`).
    pub rate_limit_anonymous_per_minute: u64,
    /// Deadline of each gRPC call (`GRPC_DEADLINE_MS`).
    pub grpc_deadline: Duration,
    /// Largest accepted request body (`BODY_LIMIT_BYTES`).
    pub body_limit_bytes: usize,
    /// `KAFKA_BROKERS`: for the dead-letter admin routes.
    pub kafka_brokers: String,
}

impl Config {
    /// Reads the configuration from the environment.
    pub fn from_env() -> anyhow::Result<Self> {
        use platform::config::{optional, parsed, socket_addr};
        Ok(Self {
            http_addr: socket_addr(
                "HTTP_ADDR",
                &format!("0.0.0.0:{}", platform::ports::GATEWAY_HTTP),
            )?,
            admin_addr: socket_addr("ADMIN_ADDR", &platform::ports::GATEWAY.admin_listen())?,
            user_service_url: optional("USER_SERVICE_URL", &platform::ports::USER.local_url()),
            role_service_url: optional("ROLE_SERVICE_URL", &platform::ports::ROLE.local_url()),
            card_service_url: optional("CARD_SERVICE_URL", &platform::ports::CARD.local_url()),
            saldo_service_url: optional("SALDO_SERVICE_URL", &platform::ports::SALDO.local_url()),
            topup_service_url: optional("TOPUP_SERVICE_URL", &platform::ports::TOPUP.local_url()),
            withdraw_service_url: optional(
                "WITHDRAW_SERVICE_URL",
                &platform::ports::WITHDRAW.local_url(),
            ),
            transfer_service_url: optional(
                "TRANSFER_SERVICE_URL",
                &platform::ports::TRANSFER.local_url(),
            ),
            merchant_service_url: optional(
                "MERCHANT_SERVICE_URL",
                &platform::ports::MERCHANT.local_url(),
            ),
            transaction_service_url: optional(
                "TRANSACTION_SERVICE_URL",
                &platform::ports::TRANSACTION.local_url(),
            ),
            redis_url: platform::Secret::new(optional("REDIS_URL", "redis://127.0.0.1:6379/0")),
            jwt: JwtConfig::from_env("gateway")?,
            rate_limit_per_minute: parsed("RATE_LIMIT_PER_MINUTE", 600)?,
            rate_limit_anonymous_per_minute: parsed("RATE_LIMIT_ANONYMOUS_PER_MINUTE", 120)?,
            grpc_deadline: Duration::from_millis(parsed("GRPC_DEADLINE_MS", 5000)?),
            body_limit_bytes: parsed("BODY_LIMIT_BYTES", 64 * 1024)?,
            kafka_brokers: optional("KAFKA_BROKERS", "127.0.0.1:9092"),
        })
    }
}

/// Shared state of handlers.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub authenticator: Authenticator,
    pub redis: deadpool_redis::Pool,
    pub auth: AuthServiceClient<Channel>,
    pub users: UserServiceClient<Channel>,
    pub roles: RoleServiceClient<Channel>,
    pub cards: CardServiceClient<Channel>,
    pub saldo: SaldoServiceClient<Channel>,
    pub topups: TopupServiceClient<Channel>,
    /// Provider callbacks for top-ups (charges) and withdrawals (payouts).
    pub topup_callbacks: ProviderCallbackServiceClient<Channel>,
    pub withdraw_callbacks: ProviderCallbackServiceClient<Channel>,
    /// Settlement reconciliation of charges (topup) and payouts (withdraw).
    pub topup_reconciliation: ReconciliationServiceClient<Channel>,
    pub withdraw_reconciliation: ReconciliationServiceClient<Channel>,
    pub withdraws: WithdrawServiceClient<Channel>,
    pub transfers: TransferServiceClient<Channel>,
    pub merchants: MerchantServiceClient<Channel>,
    pub documents: MerchantDocumentServiceClient<Channel>,
    /// Webhook endpoints and the events API (the merchant service).
    pub webhooks: WebhookServiceClient<Channel>,
    pub transactions: TransactionServiceClient<Channel>,
    pub topup_stats: TopupStatsServiceClient<Channel>,
    pub withdraw_stats: WithdrawStatsServiceClient<Channel>,
    pub transfer_stats: TransferStatsServiceClient<Channel>,
    pub payment_stats: PaymentStatsServiceClient<Channel>,
    pub saldo_stats: SaldoStatsServiceClient<Channel>,
}

/// The API router (without listeners), so tests and the binary build the same thing.
pub fn router(state: AppState) -> Router {
    use routes::{
        adjustments, auth, balance_stats, cards, dashboard, dead_letters, merchant_documents,
        merchant_keys, merchants, movements, payments, provider_callbacks, reconciliation, roles,
        saldo, stats, users, webhooks,
    };
    // Each area registers its routes with their OpenAPI operations once; the document is
    // assembled from them here and served as built.
    let (api, document) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(auth::router())
        .merge(users::router())
        .merge(roles::router())
        .merge(cards::router())
        .merge(movements::router())
        .merge(saldo::router())
        .merge(merchants::router())
        .merge(merchant_keys::router())
        .merge(merchant_documents::router())
        .merge(webhooks::router())
        .merge(payments::router())
        .merge(stats::router())
        .merge(balance_stats::router())
        .merge(dashboard::router())
        .merge(dead_letters::router())
        .merge(provider_callbacks::router())
        .merge(reconciliation::router())
        .merge(adjustments::router())
        .split_for_parts();
    let document = Arc::new(document);
    let api = api
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::authenticate_and_limit,
        ))
        .route(
            "/api/v1/openapi.json",
            get(move || {
                let document = document.clone();
                async move { axum::Json(document.as_ref().clone()) }
            }),
        )
        // The event catalogue (AsyncAPI 3.0, a JSON Schema per event type and version),
        // generated from the events crate's payload types and committed beside them.
        .route(
            "/api/v1/asyncapi.json",
            get(|| async {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    include_str!("../../../crates/events/asyncapi.json"),
                )
            }),
        );
    let body_limit = state.config.body_limit_bytes;
    // Swagger UI at /api/v1/docs, its assets served by the gateway itself (embedded at build
    // time, pinned): no script from a third-party CDN.
    let docs = swagger_ui_dist::generate_routes(swagger_ui_dist::ApiDefinition {
        uri_prefix: "/api/v1/docs",
        api_definition: swagger_ui_dist::OpenApiSource::Uri("/api/v1/openapi.json"),
        title: Some("Payment platform API"),
    });
    Router::new()
        .merge(api)
        // The pages the links in the emails open (the token travels in the fragment).
        .route(
            "/account/verify-email",
            get(routes::account_pages::verify_email),
        )
        .route(
            "/account/reset-password",
            get(routes::account_pages::reset_password),
        )
        .route("/account/account.js", get(routes::account_pages::script))
        .route("/account/account.css", get(routes::account_pages::style))
        .with_state(state)
        .merge(docs)
        .fallback(|| async {
            error::ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                "not_found",
                "ROUTE_NOT_FOUND",
                "no such route",
            )
            .into_response()
        })
        .method_not_allowed_fallback(|| async {
            error::ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "invalid_argument",
                "METHOD_NOT_ALLOWED",
                "method not allowed on this route",
            )
            .into_response()
        })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::Extension(extract::BodyLimit(body_limit)))
        .layer(axum::middleware::from_fn(middleware::observe))
}

/// A built, not yet running gateway.
pub struct Application {
    http: TcpListener,
    admin: TcpListener,
    state: AppState,
}

impl Application {
    /// Creates clients (connections are lazy) and binds the listeners.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let redis = platform::redis::pool(config.redis_url.expose())?;
        let user_channel = platform::grpc::channel(&config.user_service_url)?;
        let merchant_channel = platform::grpc::channel(&config.merchant_service_url)?;
        let topup_channel = platform::grpc::channel(&config.topup_service_url)?;
        let saldo_channel = platform::grpc::channel(&config.saldo_service_url)?;
        let withdraw_channel = platform::grpc::channel(&config.withdraw_service_url)?;
        let transfer_channel = platform::grpc::channel(&config.transfer_service_url)?;
        let transaction_channel = platform::grpc::channel(&config.transaction_service_url)?;
        let state = AppState {
            authenticator: Authenticator::new(&config.jwt, Some(redis.clone())),
            redis,
            auth: AuthServiceClient::new(user_channel.clone()),
            users: UserServiceClient::new(user_channel),
            roles: RoleServiceClient::new(platform::grpc::channel(&config.role_service_url)?),
            cards: CardServiceClient::new(platform::grpc::channel(&config.card_service_url)?),
            saldo: SaldoServiceClient::new(saldo_channel.clone()),
            saldo_stats: SaldoStatsServiceClient::new(saldo_channel),
            topups: TopupServiceClient::new(topup_channel.clone()),
            topup_callbacks: ProviderCallbackServiceClient::new(topup_channel.clone()),
            topup_stats: TopupStatsServiceClient::new(topup_channel.clone()),
            withdraws: WithdrawServiceClient::new(withdraw_channel.clone()),
            withdraw_callbacks: ProviderCallbackServiceClient::new(withdraw_channel.clone()),
            topup_reconciliation: ReconciliationServiceClient::new(topup_channel.clone()),
            withdraw_reconciliation: ReconciliationServiceClient::new(withdraw_channel.clone()),
            withdraw_stats: WithdrawStatsServiceClient::new(withdraw_channel.clone()),
            transfers: TransferServiceClient::new(transfer_channel.clone()),
            transfer_stats: TransferStatsServiceClient::new(transfer_channel),
            merchants: MerchantServiceClient::new(merchant_channel.clone()),
            documents: MerchantDocumentServiceClient::new(merchant_channel.clone()),
            webhooks: WebhookServiceClient::new(merchant_channel),
            transactions: TransactionServiceClient::new(transaction_channel.clone()),
            payment_stats: PaymentStatsServiceClient::new(transaction_channel),
            config: Arc::new(config),
        };
        let http = platform::config::bind(state.config.http_addr, "HTTP").await?;
        let admin = platform::config::bind(state.config.admin_addr, "admin").await?;
        Ok(Self { http, admin, state })
    }

    /// The bound HTTP address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// The bound admin address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Serves until `shutdown` fires.
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let readiness = platform::admin::Readiness::new().with_redis(self.state.redis.clone());
        let admin = tokio::spawn(platform::admin::serve(
            self.admin,
            readiness,
            shutdown.clone(),
        ));
        let app = router(self.state);
        tracing::info!(addr = %self.http.local_addr()?, "gateway listening");
        let waiter = shutdown.clone();
        use axum::serve::ListenerExt;
        // TCP_NODELAY: small responses must not wait for NGINX's delayed ACK.
        let listener = self.http.tap_io(|stream| {
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!(error = %e, "could not set TCP_NODELAY");
            }
        });
        let served = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { waiter.wait().await })
        .await
        .context("HTTP server failed");
        shutdown.trigger();
        admin.await??;
        served
    }
}
