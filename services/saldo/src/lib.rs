//! The saldo service: the platform's double-entry ledger (schema `saldo_svc`) and the only
//! writer of balances. Card accounts open from `card.created`; money moves only through
//! [`ledger::Ledger::post`]; every balance change is announced as `balance.changed`.

pub mod consumer;
pub mod error;
pub mod grpc;
pub mod ledger;
pub mod service;

use std::net::SocketAddr;

use platform::auth::Authenticator;
use platform::config::CommonConfig;
use platform::process::Foundation;
use platform::shutdown::Shutdown;
use proto::saldo::v1::saldo_service_server::SaldoServiceServer;

/// The database schema this service owns.
pub const SCHEMA: &str = "saldo_svc";

/// The service's migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Settings of the saldo service.
#[derive(Clone, Debug)]
pub struct Config {
    pub common: CommonConfig,
    /// Consumer group for card events (`CARD_EVENTS_GROUP`).
    pub card_events_group: String,
}

impl Config {
    /// Reads the configuration from the environment.
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            common: CommonConfig::from_env("saldo-service", "0.0.0.0:50054", "0.0.0.0:9104")?,
            card_events_group: platform::config::optional(
                "CARD_EVENTS_GROUP",
                events::topics::groups::SALDO_CARD_EVENTS,
            ),
        })
    }
}

/// Applies the schema's migrations.
pub async fn migrate(config: &CommonConfig) -> anyhow::Result<()> {
    platform::process::migrate(config, SCHEMA, &MIGRATOR).await
}

/// Runs the reconciliation once against the configured database.
pub async fn reconcile(config: &CommonConfig) -> anyhow::Result<service::Reconciliation> {
    let pool = platform::db::connect(config.database_url.expose(), SCHEMA, 2).await?;
    Ok(service::reconcile(&pool).await?)
}

/// A built, not yet running service.
pub struct Application {
    base: Foundation,
    saldo: service::Saldo,
    relay: events::OutboxRelay,
    consumer: events::Consumer<consumer::CardEvents>,
}

impl Application {
    /// Migrates if configured, connects, ensures topics, and binds listeners.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let common = &config.common;
        let base = Foundation::prepare(common, SCHEMA, &MIGRATOR).await?;
        let (pool, redis) = (base.pool.clone(), base.redis.clone());
        let saldo = service::Saldo::new(pool.clone(), Authenticator::new(&common.jwt, Some(redis)));
        events::topics::ensure_best_effort(&common.kafka_brokers).await;
        let relay = events::OutboxRelay::new(
            pool.clone(),
            events::outbox::producer(&common.kafka_brokers)?,
            SCHEMA,
        );
        let consumer = events::Consumer::new(
            events::ConsumerConfig::new(
                &common.kafka_brokers,
                &config.card_events_group,
                &[events::topics::CARD_EVENTS, events::topics::MERCHANT_EVENTS],
            ),
            pool,
            consumer::CardEvents,
        )?;
        Ok(Self {
            base,
            saldo,
            relay,
            consumer,
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
        let routes =
            tonic::service::Routes::new(SaldoServiceServer::new(grpc::Handlers::new(self.saldo)));
        let tasks = vec![
            platform::process::task("outbox relay", self.relay.run(shutdown.clone())),
            platform::process::fallible_task(
                "account events consumer",
                self.consumer.run(shutdown.clone()),
            ),
        ];
        self.base
            .serve("saldo service", routes, tasks, shutdown)
            .await
    }
}
