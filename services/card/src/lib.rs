//! The card service: issues payment cards (generated Luhn-valid numbers, encrypted at rest;
//! CVVs derived, never stored: see [`keys`]) and manages their lifecycle (schema `card_svc`).
//! Its `card.created` events make the saldo service open each card's ledger account.

pub mod cvv;
pub mod error;
pub mod grpc;
pub mod keys;
pub mod number;
pub mod repo;
pub mod service;

use std::net::SocketAddr;

use platform::Secret;
use platform::auth::{Authenticator, ServiceToken, TokenIssuer};
use platform::config::CommonConfig;
use platform::process::Foundation;
use platform::shutdown::Shutdown;
use proto::card::v1::card_service_server::CardServiceServer;
use proto::saldo::v1::saldo_service_client::SaldoServiceClient;
use proto::user::v1::user_service_client::UserServiceClient;

/// The database schema this service owns.
pub const SCHEMA: &str = "card_svc";

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
        "b9378d3b91a351fb6749909613c6a1118faf7607986ea33688a6e4f6861853bd940927507c716ac45ca9e39ad70be59b",
    )],
};

/// Settings of the card service.
#[derive(Clone, Debug)]
pub struct Config {
    pub common: CommonConfig,
    /// gRPC URL of the user service (`USER_SERVICE_URL`).
    pub user_service_url: String,
    /// gRPC URL of the saldo service (`SALDO_SERVICE_URL`).
    pub saldo_service_url: String,
    /// Key CVVs are derived with (`CARD_CVV_KEY`, at least 32 characters).
    pub cvv_key: Secret<String>,
    /// Master secret of card-number encryption and lookups (`CARD_PAN_KEY`, ≥ 32 characters).
    pub pan_key: Secret<String>,
    /// Currencies cards may be issued in (`CARD_CURRENCIES`, comma-separated).
    pub currencies: Vec<String>,
    /// `CARD_CVV_MAX_ATTEMPTS` (default 3) and `CARD_CVV_LOCK_SECS` (default 900).
    pub cvv_lockout: service::CvvLockout,
}

impl Config {
    /// Reads the configuration from the environment.
    pub fn from_env() -> anyhow::Result<Self> {
        let cvv_key = platform::config::required("CARD_CVV_KEY")?;
        anyhow::ensure!(
            cvv_key.len() >= 32,
            "CARD_CVV_KEY must be at least 32 characters"
        );
        Ok(Self {
            common: CommonConfig::from_env(
                "card-service",
                &platform::ports::CARD.grpc_listen(),
                &platform::ports::CARD.admin_listen(),
            )?,
            user_service_url: platform::config::optional(
                "USER_SERVICE_URL",
                &platform::ports::USER.local_url(),
            ),
            saldo_service_url: platform::config::optional(
                "SALDO_SERVICE_URL",
                &platform::ports::SALDO.local_url(),
            ),
            cvv_key: Secret::new(cvv_key),
            pan_key: Secret::new(platform::config::required("CARD_PAN_KEY")?),
            currencies: platform::config::list("CARD_CURRENCIES", "IDR,USD,EUR,SGD")
                .into_iter()
                .map(|c| c.to_uppercase())
                .collect(),
            cvv_lockout: service::CvvLockout {
                max_attempts: platform::config::parsed("CARD_CVV_MAX_ATTEMPTS", 3_i32)?.max(1),
                lock_for: platform::config::seconds("CARD_CVV_LOCK_SECS", 900)?,
                per_key_max_failures: platform::config::parsed(
                    "CARD_CVV_MAX_FAILURES_PER_KEY",
                    20_i32,
                )?
                .max(1),
                per_key_window: platform::config::seconds("CARD_CVV_KEY_WINDOW_SECS", 3600)?,
            },
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
    cards: service::Cards,
    relay: events::OutboxRelay,
}

impl Application {
    /// Migrates if configured, connects, ensures topics, and binds listeners.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let common = &config.common;
        let base = Foundation::prepare(common, &DATABASE).await?;
        let (pool, redis) = (base.pool.clone(), base.redis.clone());
        let cards = service::Cards::new(
            pool.clone(),
            Authenticator::new(&common.jwt, Some(redis)),
            keys::CardKeys::new(config.pan_key.expose(), config.cvv_key.expose())?,
            config.currencies.clone(),
            config.cvv_lockout,
            ServiceToken::new(
                TokenIssuer::new(&common.jwt)?,
                &["users.read", "saldo.read"],
            ),
            SaldoServiceClient::new(platform::grpc::channel(&config.saldo_service_url)?),
            UserServiceClient::new(platform::grpc::channel(&config.user_service_url)?),
        );
        // Numbers stored before encryption at rest are sealed now (once; nothing to do later).
        cards
            .seal_legacy_numbers()
            .await
            .map_err(|e| anyhow::anyhow!("sealing stored card numbers: {e}"))?;
        events::topics::ensure_best_effort(&common.kafka_brokers).await;
        let relay = events::OutboxRelay::new(pool, &common.kafka_brokers, SCHEMA)?;
        Ok(Self { base, cards, relay })
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
            tonic::service::Routes::new(CardServiceServer::new(grpc::Handlers::new(self.cards)));
        let tasks = vec![platform::process::task(
            "outbox relay",
            self.relay.run(shutdown.clone()),
        )];
        self.base
            .serve("card service", routes, tasks, shutdown)
            .await
    }
}
