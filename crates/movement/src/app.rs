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

use crate::provider::ProviderSettings;
use crate::{Kind, MovementError, Movements, Rules, Upstream};

/// The tables of a movement schema that shared crates own: the outbox, processed events and
/// the statistics rollup.
pub const SHARED_TABLES: &[&str] = &[
    events::schema::OUTBOX,
    events::schema::PROCESSED_EVENTS,
    stats::TABLES,
];

/// The shared tables of a provider-backed movement schema (topup, withdraw): those of
/// [`SHARED_TABLES`], and the provider callbacks and reconciliation exceptions this crate's
/// [`crate::provider`] relies on.
pub const PROVIDER_BACKED_TABLES: &[&str] = &[
    events::schema::OUTBOX,
    events::schema::PROCESSED_EVENTS,
    stats::TABLES,
    crate::provider::PROVIDER_CALLBACKS,
    crate::provider::RECONCILIATION_EXCEPTIONS,
];

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
    /// The zone whose calendar days, months and years the statistics use (`STATS_TIMEZONE`,
    /// default UTC; any name PostgreSQL knows, e.g. Asia/Jakarta).
    pub stats_time_zone: String,
    /// Consumer group of the statistics (`STATS_EVENTS_GROUP`, default `<kind>-service.stats`).
    pub stats_group: String,
    /// Top-ups: the payment providers (required; see [`ProviderSettings`]).
    pub providers: Option<ProviderSettings>,
}

impl Config {
    /// Reads the configuration of `kind` from the environment.
    pub fn from_env(kind: Kind, grpc_addr: &str, admin_addr: &str) -> anyhow::Result<Self> {
        let rules = Rules::from_env(&kind.name().to_uppercase())?;
        let providers = match kind {
            Kind::Topup | Kind::Withdraw => Some(ProviderSettings::from_env(kind, &rules.methods)?),
            _ => None,
        };
        Ok(Self {
            common: CommonConfig::from_env(
                &format!("{}-service", kind.name()),
                grpc_addr,
                admin_addr,
            )?,
            card_service_url: platform::config::optional(
                "CARD_SERVICE_URL",
                &platform::ports::CARD.local_url(),
            ),
            saldo_service_url: platform::config::optional(
                "SALDO_SERVICE_URL",
                &platform::ports::SALDO.local_url(),
            ),
            rules,
            providers,
            recovery_interval: platform::config::seconds("RECOVERY_INTERVAL_SECS", 5)?,
            recovery_grace: platform::config::seconds("RECOVERY_GRACE_SECS", 15)?,
            stats_time_zone: platform::config::optional("STATS_TIMEZONE", "UTC"),
            stats_group: platform::config::optional(
                "STATS_EVENTS_GROUP",
                &format!("{}-service.stats", kind.name()),
            ),
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
    stats: crate::stats::StatsApi,
    stats_consumer: events::Consumer<crate::stats::StatsEvents>,
}

impl Application {
    /// Migrates if configured, connects, ensures topics, and binds listeners.
    pub async fn build(
        kind: Kind,
        config: Config,
        schema: &'static platform::db::Schema,
    ) -> anyhow::Result<Self> {
        let common = &config.common;
        let base = Foundation::prepare(common, schema).await?;
        stats::check_time_zone(&base.pool, &config.stats_time_zone).await?;
        let cards = CardServiceClient::new(platform::grpc::channel(&config.card_service_url)?);
        let upstream = Upstream::new(
            cards.clone(),
            SaldoServiceClient::new(platform::grpc::channel(&config.saldo_service_url)?),
            ServiceToken::new(
                TokenIssuer::new(&common.jwt)?,
                // saldo.backdate: forwarded only for callers that hold it themselves.
                &["cards.read", "saldo.post", "saldo.backdate"],
            ),
        );
        let mut movements = Movements::new(
            kind,
            base.pool.clone(),
            Authenticator::new(&common.jwt, Some(base.redis.clone())),
            upstream,
            config.rules.clone(),
        );
        match (&config.providers, kind) {
            (Some(settings), _) => movements = movements.with_providers(settings.backing()?),
            (None, Kind::Topup | Kind::Withdraw) => anyhow::bail!(
                "{}s need payment providers: money enters and leaves only through a provider",
                kind.name()
            ),
            (None, _) => {}
        }
        events::topics::ensure_best_effort(&common.kafka_brokers).await;
        let relay =
            events::OutboxRelay::new(base.pool.clone(), &common.kafka_brokers, schema.name)?;
        let stats_consumer = events::Consumer::new(
            events::ConsumerConfig::new(
                &common.kafka_brokers,
                &config.stats_group,
                &[kind.topic()],
            )
            .batched(events::consumer::STATS_BATCH),
            base.pool.clone(),
            crate::stats::StatsEvents {
                kind,
                time_zone: config.stats_time_zone.clone(),
            },
        )?;
        let stats = crate::stats::StatsApi::for_kind(
            kind,
            base.pool.clone(),
            crate::stats::card_owner(cards),
        );
        Ok(Self {
            kind,
            config,
            base,
            movements,
            relay,
            stats,
            stats_consumer,
        })
    }

    /// The statistics (for the service's stats gRPC service).
    pub fn stats(&self) -> crate::stats::StatsApi {
        self.stats.clone()
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
        let mut tasks = vec![
            platform::process::task("outbox relay", self.relay.run(shutdown.clone())),
            platform::process::fallible_task(
                "statistics consumer",
                self.stats_consumer.run(shutdown.clone()),
            ),
            platform::process::task(
                "recovery",
                self.movements.clone().run_recovery(
                    self.config.recovery_interval,
                    self.config.recovery_grace,
                    shutdown.clone(),
                ),
            ),
        ];
        if self.config.providers.is_some() {
            // Settlement reconciliation of yesterday and today, hourly (idempotent).
            let movements = self.movements.clone();
            tasks.push(platform::process::task(
                "settlement reconciliation",
                crate::lifecycle::run_every(
                    "settlement reconciliation",
                    Duration::from_secs(3600),
                    shutdown.clone(),
                    move || {
                        let movements = movements.clone();
                        async move {
                            let today = chrono::Utc::now().date_naive();
                            for date in [today - chrono::Duration::days(1), today] {
                                movements.reconcile_providers(date).await?;
                            }
                            Ok::<_, MovementError>(0_usize)
                        }
                    },
                ),
            ));
        }
        let name = format!("{} service", self.kind.name());
        self.base.serve(&name, routes, tasks, shutdown).await
    }
}

/// `<service> rebuild-stats`: recomputes the statistics rollup from the movement table.
pub async fn rebuild_stats(kind: Kind, config: &Config, schema: &str) -> anyhow::Result<()> {
    let pool = platform::db::connect(config.common.database_url.expose(), schema, 2).await?;
    stats::check_time_zone(&pool, &config.stats_time_zone).await?;
    let counted = crate::stats::rebuild(&pool, &config.stats_time_zone).await?;
    println!(
        "{} statistics rebuilt from {counted} completed {}s",
        kind.name(),
        kind.name()
    );
    Ok(())
}

/// `<service> reconcile-providers [YYYY-MM-DD]`: reconciles one day (default: yesterday, UTC)
/// against every provider's settlement report, as the hourly job does, and prints each
/// provider's lines, matches and exceptions. Exits with an error when exceptions are open.
pub async fn reconcile_providers(
    kind: Kind,
    config: &Config,
    schema: &str,
    date: Option<&str>,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let settings = config
        .providers
        .as_ref()
        .with_context(|| format!("{}s have no payment providers", kind.name()))?;
    let date = match date {
        Some(raw) => chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d")
            .with_context(|| format!("{raw:?} is not a date (YYYY-MM-DD)"))?,
        None => chrono::Utc::now().date_naive() - chrono::Duration::days(1),
    };
    let pool = platform::db::connect(config.common.database_url.expose(), schema, 2).await?;
    // Reconciliation reads the books, the ledger's postings and the providers: the card client
    // is never called (its channel is lazy), the ledger is only read.
    let upstream = Upstream::new(
        CardServiceClient::new(platform::grpc::channel(&config.card_service_url)?),
        SaldoServiceClient::new(platform::grpc::channel(&config.saldo_service_url)?),
        ServiceToken::new(TokenIssuer::new(&config.common.jwt)?, &["saldo.read"]),
    );
    let movements = Movements::new(
        kind,
        pool,
        Authenticator::new(&config.common.jwt, None),
        upstream,
        config.rules.clone(),
    )
    .with_providers(settings.backing()?);
    let days = movements.reconcile_providers(date).await?;
    let mut open = 0;
    for day in &days {
        println!(
            "{date} {}: {} lines, {} matched, {} exceptions",
            day.provider,
            day.lines,
            day.matched,
            day.exceptions.len()
        );
        let mut currencies: Vec<_> = day.settled.keys().chain(day.ledger.keys()).collect();
        currencies.sort();
        currencies.dedup();
        for currency in currencies {
            let settled = day.settled.get(currency).copied().unwrap_or(0);
            let ledger = day.ledger.get(currency).copied().unwrap_or(0);
            println!(
                "  {currency}: settled {settled}, ledger {ledger}{}",
                if settled == ledger { "" } else { " (differ)" }
            );
        }
        for e in &day.exceptions {
            println!(
                "  {} {} (ours {}, provider {}) {}",
                e.kind,
                e.provider_reference,
                e.reference.as_deref().unwrap_or("-"),
                e.reported_amount.map_or("-".to_owned(), |a| a.to_string()),
                e.state
            );
            if e.state == "open" {
                open += 1;
            }
        }
    }
    anyhow::ensure!(open == 0, "{open} reconciliation exceptions are open");
    Ok(())
}
