//! The saldo service: the platform's double-entry ledger (schema `saldo_svc`) and the only
//! writer of balances. Card accounts open from `card.created`; money moves only through
//! [`ledger::Ledger::post`]; every balance change is announced as `balance.changed`.

pub mod adjustments;
pub mod balance_stats;
pub mod consumer;
pub mod error;
pub mod grpc;
pub mod holds;
pub mod ledger;
pub mod repo;
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

/// The schema: the service's migrations and the shared tables it uses (outbox, processed
/// events), with the released checksums of the migrations those tables moved
/// out of.
pub static DATABASE: platform::db::Schema = platform::db::Schema {
    name: SCHEMA,
    migrator: &MIGRATOR,
    shared: &[events::schema::OUTBOX, events::schema::PROCESSED_EVENTS],
    rewritten: &[(
        1,
        "d36330cf4e47fbebe3c10fd836cce4c5336131b02743171e3ba41e0dde1c1f589d6b23d4e5d3b827ab1aa03ca542c80c",
    )],
};

/// Settings of the saldo service.
#[derive(Clone, Debug)]
pub struct Config {
    pub common: CommonConfig,
    /// Consumer group for card events (`CARD_EVENTS_GROUP`).
    pub card_events_group: String,
    /// The calendar of the balance statistics (`STATS_TIMEZONE`, default UTC).
    pub stats_time_zone: String,
    /// Consumer group of the balance statistics (`STATS_EVENTS_GROUP`,
    /// default `saldo-service.stats`).
    pub stats_group: String,
}

impl Config {
    /// Reads the configuration from the environment.
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            common: CommonConfig::from_env(
                "saldo-service",
                &platform::ports::SALDO.grpc_listen(),
                &platform::ports::SALDO.admin_listen(),
            )?,
            card_events_group: platform::config::optional(
                "CARD_EVENTS_GROUP",
                events::topics::groups::SALDO_CARD_EVENTS,
            ),
            stats_time_zone: platform::config::optional("STATS_TIMEZONE", "UTC"),
            stats_group: platform::config::optional("STATS_EVENTS_GROUP", "saldo-service.stats"),
        })
    }
}

/// Applies the schema's migrations.
pub async fn migrate(config: &CommonConfig) -> anyhow::Result<()> {
    platform::process::migrate(config, &DATABASE).await
}

/// Runs the reconciliation once against the configured database.
pub async fn reconcile(config: &CommonConfig) -> anyhow::Result<service::Reconciliation> {
    let pool = platform::db::connect(config.database_url.expose(), SCHEMA, 2).await?;
    Ok(repo::reconcile(&pool).await?)
}

/// A built, not yet running service.
pub struct Application {
    base: Foundation,
    saldo: service::Saldo,
    relay: events::OutboxRelay,
    consumer: events::Consumer<consumer::CardEvents>,
    stats_consumer: events::Consumer<balance_stats::BalanceEvents>,
    stats: balance_stats::BalanceStats,
    authenticator: Authenticator,
}

impl Application {
    /// Migrates if configured, connects, ensures topics, and binds listeners.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let common = &config.common;
        let base = Foundation::prepare(common, &DATABASE).await?;
        let (pool, redis) = (base.pool.clone(), base.redis.clone());
        stats::check_time_zone(&pool, &config.stats_time_zone).await?;
        let authenticator = Authenticator::new(&common.jwt, Some(redis));
        let saldo = service::Saldo::new(pool.clone(), authenticator.clone());
        events::topics::ensure_best_effort(&common.kafka_brokers).await;
        let relay = events::OutboxRelay::new(pool.clone(), &common.kafka_brokers, SCHEMA)?;
        let consumer = events::Consumer::new(
            events::ConsumerConfig::new(
                &common.kafka_brokers,
                &config.card_events_group,
                &[events::topics::CARD_EVENTS, events::topics::MERCHANT_EVENTS],
            ),
            pool.clone(),
            consumer::CardEvents,
        )?;
        let stats_consumer = events::Consumer::new(
            events::ConsumerConfig::new(
                &common.kafka_brokers,
                &config.stats_group,
                &[events::topics::SALDO_EVENTS],
            )
            .batched(events::consumer::STATS_BATCH),
            pool.clone(),
            balance_stats::BalanceEvents {
                time_zone: config.stats_time_zone.clone(),
            },
        )?;
        Ok(Self {
            base,
            saldo,
            relay,
            consumer,
            stats_consumer,
            stats: balance_stats::BalanceStats::new(pool),
            authenticator,
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
            tonic::service::Routes::new(SaldoServiceServer::new(grpc::Handlers::new(self.saldo)))
                .add_service(
                    proto::saldo::v1::saldo_stats_service_server::SaldoStatsServiceServer::new(
                        balance_stats::StatsHandlers {
                            stats: self.stats,
                            authenticator: self.authenticator,
                        },
                    ),
                );
        let tasks = vec![
            platform::process::task("outbox relay", self.relay.run(shutdown.clone())),
            platform::process::fallible_task(
                "account events consumer",
                self.consumer.run(shutdown.clone()),
            ),
            platform::process::fallible_task(
                "balance statistics consumer",
                self.stats_consumer.run(shutdown.clone()),
            ),
        ];
        self.base
            .serve("saldo service", routes, tasks, shutdown)
            .await
    }
}

/// `saldo-service rebuild-stats`: recomputes the balance statistics from the journal.
pub async fn rebuild_stats(config: &Config) -> anyhow::Result<()> {
    let pool = platform::db::connect(config.common.database_url.expose(), SCHEMA, 2).await?;
    stats::check_time_zone(&pool, &config.stats_time_zone).await?;
    let counted = balance_stats::rebuild(&pool, &config.stats_time_zone).await?;
    println!("balance statistics rebuilt from {counted} journal lines");
    Ok(())
}
