//! The transaction service: merchant payments and refunds (schema `transaction_svc`).
//! Merchants authenticate with API keys (resolved by the merchant service), customers consent
//! with their CVV (checked by the card service), and money moves only through the ledger.

pub mod error;
pub mod grpc;
pub mod payments;
pub mod stats;

use std::net::SocketAddr;
use std::time::Duration;

use movement::Upstream;
use platform::auth::{Authenticator, ServiceToken, TokenIssuer};
use platform::config::CommonConfig;
use platform::process::Foundation;
use platform::shutdown::Shutdown;
use proto::card::v1::card_service_client::CardServiceClient;
use proto::merchant::v1::merchant_service_client::MerchantServiceClient;
use proto::saldo::v1::saldo_service_client::SaldoServiceClient;
use proto::transaction::v1::transaction_service_server::TransactionServiceServer;

/// The database schema this service owns.
pub const SCHEMA: &str = "transaction_svc";

/// The service's migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The schema: the service's migrations and the shared tables it uses (outbox, processed
/// events, statistics rollup), with the released checksums of the migrations those tables moved
/// out of.
pub static DATABASE: platform::db::Schema = platform::db::Schema {
    name: SCHEMA,
    migrator: &MIGRATOR,
    shared: &[
        events::schema::OUTBOX,
        events::schema::PROCESSED_EVENTS,
        ::stats::TABLES,
    ],
    rewritten: &[
        (
            1,
            "48b1261c1544ed04e315f3609494ce939f75b7c4e30cbb7fd51495b19538c453af024a41d7801ab372affd4add7038d3",
        ),
        (
            2,
            "cf3fa21b316721a40df0ec4b9f918cb24d7b7c5cf55aa20852d17dd154c0d66ad98935db54ec4347886fe5fa3ddf406b",
        ),
        (
            3,
            "588527b568fcdb419b9bce3415e1fdd31406cafcc9afac8b349abf19cad3443776e46c8d758de33a89245f36a04e647e",
        ),
    ],
};

/// Settings of the transaction service.
#[derive(Clone, Debug)]
pub struct Config {
    pub common: CommonConfig,
    /// `CARD_SERVICE_URL`.
    pub card_service_url: String,
    /// `SALDO_SERVICE_URL`.
    pub saldo_service_url: String,
    /// `MERCHANT_SERVICE_URL`.
    pub merchant_service_url: String,
    /// `PAYMENT_MIN_AMOUNT`, `PAYMENT_MAX_AMOUNT`, `PAYMENT_METHODS`.
    pub rules: movement::Rules,
    /// `RECOVERY_INTERVAL_SECS`.
    pub recovery_interval: Duration,
    /// `RECOVERY_GRACE_SECS`.
    pub recovery_grace: Duration,
    /// `PAYMENT_AUTHORIZATION_TTL_SECS` (default 7 days): how long an authorization holds
    /// the money before the expiry job (run with recovery) releases it.
    pub authorization_ttl: Duration,
    /// `STATS_TIMEZONE` (default UTC): the calendar of the statistics.
    pub stats_time_zone: String,
    /// `STATS_EVENTS_GROUP` (default `transaction-service.stats`).
    pub stats_group: String,
}

impl Config {
    /// Reads the configuration from the environment.
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            common: CommonConfig::from_env(
                "transaction-service",
                &platform::ports::TRANSACTION.grpc_listen(),
                &platform::ports::TRANSACTION.admin_listen(),
            )?,
            card_service_url: platform::config::optional(
                "CARD_SERVICE_URL",
                &platform::ports::CARD.local_url(),
            ),
            saldo_service_url: platform::config::optional(
                "SALDO_SERVICE_URL",
                &platform::ports::SALDO.local_url(),
            ),
            merchant_service_url: platform::config::optional(
                "MERCHANT_SERVICE_URL",
                &platform::ports::MERCHANT.local_url(),
            ),
            rules: movement::Rules::from_env(payments::RULES_PREFIX)?,
            recovery_interval: platform::config::seconds("RECOVERY_INTERVAL_SECS", 5)?,
            recovery_grace: platform::config::seconds("RECOVERY_GRACE_SECS", 15)?,
            authorization_ttl: platform::config::seconds(
                "PAYMENT_AUTHORIZATION_TTL_SECS",
                7 * 86_400,
            )?,
            stats_time_zone: platform::config::optional("STATS_TIMEZONE", "UTC"),
            stats_group: platform::config::optional(
                "STATS_EVENTS_GROUP",
                "transaction-service.stats",
            ),
        })
    }
}

/// Applies the schema's migrations.
pub async fn migrate(config: &CommonConfig) -> anyhow::Result<()> {
    platform::process::migrate(config, &DATABASE).await
}

/// A built, not yet running service.
pub struct Application {
    config: Config,
    base: Foundation,
    payments: payments::Payments,
    relay: events::OutboxRelay,
    stats: movement::stats::StatsApi,
    stats_consumer: events::Consumer<stats::PaymentStatsEvents>,
}

impl Application {
    /// Migrates if configured, connects, ensures topics, and binds listeners.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let common = &config.common;
        let base = Foundation::prepare(common, &DATABASE).await?;
        let cards = CardServiceClient::new(platform::grpc::channel(&config.card_service_url)?);
        let issuer = TokenIssuer::new(&common.jwt)?;
        let token = || {
            ServiceToken::new(
                issuer.clone(),
                &[
                    "cards.read",
                    "cards.verify",
                    "saldo.post",
                    "merchants.authenticate",
                    // forwarded only for callers that hold it themselves
                    "saldo.backdate",
                ],
            )
        };
        let upstream = Upstream::new(
            cards.clone(),
            SaldoServiceClient::new(platform::grpc::channel(&config.saldo_service_url)?),
            token(),
        );
        ::stats::check_time_zone(&base.pool, &config.stats_time_zone).await?;
        let merchants =
            MerchantServiceClient::new(platform::grpc::channel(&config.merchant_service_url)?);
        let stats = stats::api(base.pool.clone(), cards.clone(), merchants.clone());
        let stats_consumer = events::Consumer::new(
            events::ConsumerConfig::new(
                &common.kafka_brokers,
                &config.stats_group,
                &[events::topics::TRANSACTION_EVENTS],
            )
            .batched(events::consumer::STATS_BATCH),
            base.pool.clone(),
            stats::PaymentStatsEvents {
                time_zone: config.stats_time_zone.clone(),
            },
        )?;
        let payments = payments::Payments::new(
            base.pool.clone(),
            Authenticator::new(&common.jwt, Some(base.redis.clone())),
            upstream,
            cards,
            merchants,
            token(),
            config.rules.clone(),
            config.authorization_ttl,
        );
        events::topics::ensure_best_effort(&common.kafka_brokers).await;
        let relay = events::OutboxRelay::new(base.pool.clone(), &common.kafka_brokers, SCHEMA)?;
        Ok(Self {
            config,
            base,
            payments,
            relay,
            stats,
            stats_consumer,
        })
    }

    /// The orchestrator (tests drive recovery directly).
    pub fn payments(&self) -> payments::Payments {
        self.payments.clone()
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
        let routes = tonic::service::Routes::new(TransactionServiceServer::new(
            grpc::Handlers::new(self.payments.clone()),
        ))
        .add_service(
            proto::transaction::v1::payment_stats_service_server::PaymentStatsServiceServer::new(
                stats::StatsHandlers {
                    api: self.stats,
                    authenticator: self.payments.authenticator().clone(),
                },
            ),
        );
        let tasks = vec![
            platform::process::task("outbox relay", self.relay.run(shutdown.clone())),
            platform::process::fallible_task(
                "statistics consumer",
                self.stats_consumer.run(shutdown.clone()),
            ),
            platform::process::task(
                "recovery",
                self.payments.clone().run_recovery(
                    self.config.recovery_interval,
                    self.config.recovery_grace,
                    shutdown.clone(),
                ),
            ),
        ];
        self.base
            .serve("transaction service", routes, tasks, shutdown)
            .await
    }
}

/// `transaction-service rebuild-stats`: recomputes the payment statistics from the payments.
pub async fn rebuild_stats(config: &Config) -> anyhow::Result<()> {
    let pool = platform::db::connect(config.common.database_url.expose(), SCHEMA, 2).await?;
    ::stats::check_time_zone(&pool, &config.stats_time_zone).await?;
    let counted = stats::rebuild(&pool, &config.stats_time_zone).await?;
    println!("payment statistics rebuilt from {counted} completed payments");
    Ok(())
}
