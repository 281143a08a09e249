//! The merchant service: merchant applications and their status workflow, hashed API keys
//! with rotation, and review documents (schema `merchant_svc`). It authenticates API keys
//! for the transaction service; its `merchant.status_changed` events make the saldo service
//! open the settlement account and the email service tell the owner.

pub mod api_keys;
pub mod documents;
pub mod error;
pub mod grpc;
pub mod pricing;
pub mod repo;
pub mod service;
pub mod webhooks;

use std::net::SocketAddr;

use platform::auth::{Authenticator, ServiceToken, TokenIssuer};
use platform::config::CommonConfig;
use platform::process::Foundation;
use platform::shutdown::Shutdown;
use proto::merchant::v1::merchant_document_service_server::MerchantDocumentServiceServer;
use proto::merchant::v1::merchant_service_server::MerchantServiceServer;
use proto::merchant::v1::webhook_service_server::WebhookServiceServer;
use proto::saldo::v1::saldo_service_client::SaldoServiceClient;
use proto::user::v1::user_service_client::UserServiceClient;

/// The database schema this service owns.
pub const SCHEMA: &str = "merchant_svc";

/// The service's migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The schema: the service's migrations and the shared tables it uses (outbox, processed
/// events), with the released checksums of the migrations those tables moved
/// out of.
pub static DATABASE: platform::db::Schema = platform::db::Schema {
    name: SCHEMA,
    migrator: &MIGRATOR,
    shared: &[events::schema::OUTBOX, events::schema::PROCESSED_EVENTS],
    rewritten: &[(
        1,
        "beb7a88c36f17ff2ca611454af968aaea6722c85c29e8da0899fbbe7111d62b02cb6c5002ce24cf7555eeb56d0b0264d",
    )],
};

/// Settings of the merchant service.
#[derive(Clone, Debug)]
pub struct Config {
    pub common: CommonConfig,
    /// gRPC URL of the user service (`USER_SERVICE_URL`).
    pub user_service_url: String,
    /// gRPC URL of the saldo service (`SALDO_SERVICE_URL`).
    pub saldo_service_url: String,
    /// Settlement currencies merchants may choose (`MERCHANT_CURRENCIES`).
    pub currencies: Vec<String>,
    /// Webhook endpoints, intake and delivery (`WEBHOOK_*`).
    pub webhooks: webhooks::WebhookConfig,
}

impl Config {
    /// Reads the configuration from the environment.
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            common: CommonConfig::from_env(
                "merchant-service",
                &platform::ports::MERCHANT.grpc_listen(),
                &platform::ports::MERCHANT.admin_listen(),
            )?,
            user_service_url: platform::config::optional(
                "USER_SERVICE_URL",
                &platform::ports::USER.local_url(),
            ),
            saldo_service_url: platform::config::optional(
                "SALDO_SERVICE_URL",
                &platform::ports::SALDO.local_url(),
            ),
            currencies: platform::config::list("MERCHANT_CURRENCIES", "IDR,USD,EUR,SGD")
                .into_iter()
                .map(|c| c.to_uppercase())
                .collect(),
            webhooks: webhooks::WebhookConfig::from_env()?,
        })
    }
}

/// Applies the schema's migrations.
pub async fn migrate(config: &CommonConfig) -> anyhow::Result<()> {
    platform::process::migrate(config, &DATABASE).await
}

/// A built, not yet running service.
pub struct Application {
    base: Foundation,
    merchants: service::Merchants,
    relay: events::OutboxRelay,
    webhooks: webhooks::endpoints::Webhooks,
    intake: events::Consumer<webhooks::intake::Intake>,
    deliverer: webhooks::delivery::Deliverer,
}

impl Application {
    /// Migrates if configured, connects, ensures topics, and binds listeners.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let common = &config.common;
        let base = Foundation::prepare(common, &DATABASE).await?;
        let (pool, redis) = (base.pool.clone(), base.redis.clone());
        let merchants = service::Merchants::new(
            pool.clone(),
            Authenticator::new(&common.jwt, Some(redis)),
            config.currencies.clone(),
            ServiceToken::new(
                TokenIssuer::new(&common.jwt)?,
                &["users.read", "saldo.read"],
            ),
            SaldoServiceClient::new(platform::grpc::channel(&config.saldo_service_url)?),
            UserServiceClient::new(platform::grpc::channel(&config.user_service_url)?),
        );
        events::topics::ensure_best_effort(&common.kafka_brokers).await;
        let relay = events::OutboxRelay::new(pool.clone(), &common.kafka_brokers, SCHEMA)?;
        let hooks = &config.webhooks;
        let secrets = webhooks::secrets::SecretBox::new(hooks.secrets_key.expose())?;
        let webhooks = webhooks::endpoints::Webhooks::new(
            merchants.clone(),
            secrets.clone(),
            hooks.allow_hosts.clone(),
        );
        let mut intake = events::ConsumerConfig::new(
            &common.kafka_brokers,
            &hooks.group,
            &[
                events::topics::TRANSACTION_EVENTS,
                events::topics::MERCHANT_EVENTS,
                events::topics::SALDO_EVENTS,
            ],
        );
        // Events of different payments and accounts are independent (one lane per key); the
        // intake writes only to this schema, so a lane applies what it has queued at once.
        intake.concurrency = 4;
        intake.batch_size = 32;
        let intake = events::Consumer::new(intake, pool.clone(), webhooks::intake::Intake)?;
        let deliverer = webhooks::delivery::Deliverer::new(pool, secrets, hooks.clone())?;
        Ok(Self {
            base,
            merchants,
            relay,
            webhooks,
            intake,
            deliverer,
        })
    }

    /// The bound gRPC address.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.base.grpc_addr()
    }

    /// The bound admin address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.base.admin_addr()
    }

    /// Serves until `shutdown` fires.
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let documents = documents::Documents::new(self.merchants.clone());
        let routes = tonic::service::Routes::new(MerchantServiceServer::new(
            grpc::MerchantHandlers::new(self.merchants.clone()),
        ))
        .add_service(MerchantDocumentServiceServer::new(
            grpc::DocumentHandlers::new(documents),
        ))
        .add_service(WebhookServiceServer::new(
            webhooks::grpc::WebhookHandlers::new(self.webhooks, self.merchants),
        ));
        let tasks = vec![
            platform::process::task("outbox relay", self.relay.run(shutdown.clone())),
            platform::process::fallible_task(
                "webhook intake consumer",
                self.intake.run(shutdown.clone()),
            ),
            platform::process::task(
                "webhook delivery worker",
                self.deliverer.run(shutdown.clone()),
            ),
        ];
        self.base
            .serve("merchant service", routes, tasks, shutdown)
            .await
    }
}
