//! The process around a [`Movements`] orchestrator, the same for topup, withdraw and
//! transfer: configuration, pools, the outbox relay, the recovery task and the gRPC server
//! (the service adds its own gRPC service as [`tonic::service::Routes`]).

use std::net::SocketAddr;
use std::time::Duration;

use platform::auth::{Authenticator, ServiceToken, TokenIssuer};
use platform::config::CommonConfig;
use platform::process::Foundation;
use platform::shutdown::Shutdown;
use proto::card::v1::card_service_client::CardServiceClient;
use proto::saldo::v1::saldo_service_client::SaldoServiceClient;

use crate::{Kind, Movements, Rules, Upstream};

/// Settings of a movement service.
#[derive(Clone, Debug)]
pub struct Config {
    pub common: CommonConfig,
    /// `CARD_SERVICE_URL`.
    pub card_service_url: String,
    /// `SALDO_SERVICE_URL`.
    pub saldo_service_url: String,
    /// `<KIND>_MIN_AMOUNT`, `<KIND>_MAX_AMOUNT`, `<KIND>_METHODS`.
    pub rules: Rules,
    /// How often recovery looks for stale pending movements (`RECOVERY_INTERVAL_SECS`).
    pub recovery_interval: Duration,
    /// How old a pending movement must be before recovery finishes it (`RECOVERY_GRACE_SECS`).
    pub recovery_grace: Duration,
}

impl Config {
    /// Reads the configuration of `kind` from the environment.
    pub fn from_env(kind: Kind, grpc_addr: &str, admin_addr: &str) -> anyhow::Result<Self> {
        Ok(Self {
            common: CommonConfig::from_env(
                &format!("{}-service", kind.name()),
                grpc_addr,
                admin_addr,
            )?,
            card_service_url: platform::config::optional(
                "CARD_SERVICE_URL",
                "http://127.0.0.1:50053",
            ),
            saldo_service_url: platform::config::optional(
                "SALDO_SERVICE_URL",
                "http://127.0.0.1:50054",
            ),
            rules: Rules::from_env(kind)?,
            recovery_interval: platform::config::seconds("RECOVERY_INTERVAL_SECS", 5)?,
            recovery_grace: platform::config::seconds("RECOVERY_GRACE_SECS", 15)?,
        })
    }
}

/// A built, not yet running movement service.
pub struct Application {
    kind: Kind,
    config: Config,
    base: Foundation,
    movements: Movements,
    relay: events::OutboxRelay,
}

impl Application {
    /// Migrates if configured, connects, ensures topics, and binds listeners.
    pub async fn build(
        kind: Kind,
        config: Config,
        schema: &str,
        migrator: &sqlx::migrate::Migrator,
    ) -> anyhow::Result<Self> {
        let common = &config.common;
        let base = Foundation::prepare(common, schema, migrator).await?;
        let upstream = Upstream::new(
            CardServiceClient::new(platform::grpc::channel(&config.card_service_url)?),
            SaldoServiceClient::new(platform::grpc::channel(&config.saldo_service_url)?),
            ServiceToken::new(
                TokenIssuer::new(&common.jwt),
                &format!("{}-service", kind.name()),
                // ledger.backdate: forwarded only for callers that hold it themselves.
                &["cards.read", "ledger.post", "ledger.backdate"],
            ),
        );
        let movements = Movements::new(
            kind,
            base.pool.clone(),
            Authenticator::new(&common.jwt, Some(base.redis.clone())),
            upstream,
            config.rules.clone(),
        );
        events::topics::ensure_best_effort(&common.kafka_brokers).await;
        let relay = events::OutboxRelay::new(
            base.pool.clone(),
            events::outbox::producer(&common.kafka_brokers)?,
            schema,
        );
        Ok(Self {
            kind,
            config,
            base,
            movements,
            relay,
        })
    }

    /// The orchestrator (for the service's gRPC handlers).
    pub fn movements(&self) -> Movements {
        self.movements.clone()
    }

    /// The bound gRPC address.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.base.grpc_addr()
    }

    /// The bound admin address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.base.admin_addr()
    }

    /// Serves `routes` (plus health and reflection), the outbox relay and the recovery task
    /// until `shutdown` fires.
    pub async fn run(
        self,
        routes: tonic::service::Routes,
        shutdown: Shutdown,
    ) -> anyhow::Result<()> {
        let tasks = vec![
            platform::process::task("outbox relay", self.relay.run(shutdown.clone())),
            platform::process::task(
                "recovery",
                self.movements.clone().run_recovery(
                    self.config.recovery_interval,
                    self.config.recovery_grace,
                    shutdown.clone(),
                ),
            ),
        ];
        let name = format!("{} service", self.kind.name());
        self.base.serve(&name, routes, tasks, shutdown).await
    }
}
