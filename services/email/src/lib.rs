//! The email service: consumes lifecycle events from Kafka (users, money movements,
//! payments, merchants) and sends HTML + plain-text emails over SMTP with lettre (schema
//! `email_svc`: the delivery log). Each event sends at most one email; failures retry with
//! exponential backoff and end in the dead-letter topic. It serves gRPC health and
//! `/metrics` for probes and dashboards, and no API of its own.

pub mod compose;
pub mod handler;
pub mod mailer;
pub mod repo;
pub mod templates;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use platform::auth::{ServiceToken, TokenIssuer};
use platform::config::CommonConfig;
use platform::process::Foundation;
use platform::shutdown::Shutdown;
use proto::user::v1::user_service_client::UserServiceClient;

/// The database schema this service owns.
pub const SCHEMA: &str = "email_svc";

/// The service's migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The schema: the service's migrations and the shared tables it uses (outbox, processed
/// events), with the released checksums of the migrations those tables moved
/// out of.
pub static DATABASE: platform::db::Schema = platform::db::Schema {
    name: SCHEMA,
    migrator: &MIGRATOR,
    shared: &[events::schema::PROCESSED_EVENTS],
    rewritten: &[(
        1,
        "ba114009aee7840661b1160b6d13d697be77289e20aecdcce9fc9b33b8a491d81043dcc4e113d24d229d8515c3c7dbc3",
    )],
};

/// Topics of account emails (verification, password reset, security notices): read by a
/// consumer group of their own (`<group>.account`), so they never queue behind money emails.
pub const ACCOUNT_TOPICS: &[&str] = &[events::topics::USER_EVENTS];

/// The other topics whose events may cause emails (money movements, payments, merchants).
pub const TOPICS: &[&str] = &[
    events::topics::TOPUP_EVENTS,
    events::topics::WITHDRAW_EVENTS,
    events::topics::TRANSFER_EVENTS,
    events::topics::TRANSACTION_EVENTS,
    events::topics::MERCHANT_EVENTS,
];

/// Connections of the delivery log's own pool (see [`handler::EmailEvents::new`]): each is
/// held for one statement, so a few serve every lane.
pub const DELIVERY_LOG_CONNECTIONS: u32 = 4;

/// Settings of the email service.
#[derive(Clone, Debug)]
pub struct Config {
    pub common: CommonConfig,
    /// `USER_SERVICE_URL`: recipients of events that carry only a user id.
    pub user_service_url: String,
    pub smtp: mailer::SmtpConfig,
    pub settings: handler::Settings,
    /// `EMAIL_TEMPLATES_DIR`: use these template files instead of the built-in ones.
    pub templates_dir: Option<PathBuf>,
    /// `EMAIL_EVENTS_GROUP`.
    pub group: String,
    /// `DEAD_LETTER_TOPIC` (default: the platform's).
    pub dead_letter_topic: Option<String>,
    /// `EMAIL_RETRY_INITIAL_MS` (default 1000): first retry delay, doubling.
    pub retry_initial: Duration,
    /// `EMAIL_RETRY_MAX_SECS` (default 300): longest retry delay.
    pub retry_max: Duration,
    /// `EMAIL_CONCURRENCY` (default 8): emails in flight at once per consumer group; one
    /// recipient's emails still go out in order.
    pub concurrency: usize,
}

impl Config {
    /// Reads the configuration from the environment.
    pub fn from_env() -> anyhow::Result<Self> {
        let max_attempts: i32 = platform::config::parsed("EMAIL_MAX_ATTEMPTS", 10)?;
        anyhow::ensure!(max_attempts >= 1, "EMAIL_MAX_ATTEMPTS must be at least 1");
        let templates_dir = platform::config::optional("EMAIL_TEMPLATES_DIR", "");
        Ok(Self {
            common: CommonConfig::from_env(
                "email-service",
                &platform::ports::EMAIL.grpc_listen(),
                &platform::ports::EMAIL.admin_listen(),
            )?,
            user_service_url: platform::config::optional(
                "USER_SERVICE_URL",
                &platform::ports::USER.local_url(),
            ),
            smtp: mailer::SmtpConfig::from_env()?,
            settings: handler::Settings {
                brand: platform::config::optional("EMAIL_BRAND", "Payments"),
                base_url: platform::config::optional(
                    "EMAIL_LINK_BASE_URL",
                    "http://127.0.0.1:8080",
                ),
                max_attempts,
                link_key: platform::link_token::LinkTokenKey::from_env()?,
            },
            templates_dir: (!templates_dir.is_empty()).then(|| PathBuf::from(templates_dir)),
            group: platform::config::optional("EMAIL_EVENTS_GROUP", events::topics::groups::EMAIL),
            dead_letter_topic: None,
            retry_initial: Duration::from_millis(platform::config::parsed(
                "EMAIL_RETRY_INITIAL_MS",
                1000_u64,
            )?),
            retry_max: platform::config::seconds("EMAIL_RETRY_MAX_SECS", 300)?,
            concurrency: platform::config::parsed("EMAIL_CONCURRENCY", 8_usize)?.max(1),
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
    account: events::Consumer<handler::EmailEvents>,
    consumer: events::Consumer<handler::EmailEvents>,
}

impl Application {
    /// Migrates if configured, loads the templates, connects, and binds listeners.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let common = &config.common;
        let templates = templates::Templates::load(config.templates_dir.as_deref())?;
        let base = Foundation::prepare(common, &DATABASE).await?;
        let log = platform::db::connect(
            common.database_url.expose(),
            SCHEMA,
            DELIVERY_LOG_CONNECTIONS,
        )
        .await?;
        let handler = handler::EmailEvents::new(
            log,
            templates,
            mailer::Mailer::new(&config.smtp)?,
            UserServiceClient::new(platform::grpc::channel(&config.user_service_url)?),
            ServiceToken::new(TokenIssuer::new(&common.jwt)?, &["users.read"]),
            config.settings.clone(),
        );
        events::topics::ensure_best_effort(&common.kafka_brokers).await;
        let consumer_config = |group: &str, topics: &[&str]| {
            let mut consumer_config =
                events::ConsumerConfig::new(&common.kafka_brokers, group, topics);
            // The handler counts SMTP attempts in the delivery log and gives up itself; the
            // consumer's own limit only ends retries of other failures (user service down).
            consumer_config.max_attempts = u32::try_from(config.settings.max_attempts)
                .unwrap_or(10)
                .saturating_add(1);
            consumer_config.initial_backoff = config.retry_initial;
            consumer_config.max_backoff = config.retry_max;
            consumer_config.concurrency = config.concurrency;
            if let Some(topic) = &config.dead_letter_topic {
                consumer_config.dead_letter_topic.clone_from(topic);
            }
            consumer_config
        };
        let account = events::Consumer::new(
            consumer_config(&format!("{}.account", config.group), ACCOUNT_TOPICS),
            base.pool.clone(),
            handler.clone(),
        )?;
        let consumer = events::Consumer::new(
            consumer_config(&config.group, TOPICS),
            base.pool.clone(),
            handler,
        )?;
        Ok(Self {
            base,
            account,
            consumer,
        })
    }

    /// The bound gRPC address (health and reflection only).
    pub fn grpc_addr(&self) -> SocketAddr {
        self.base.grpc_addr()
    }

    /// The bound admin address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.base.admin_addr()
    }

    /// Consumes and serves until `shutdown` fires.
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let tasks = vec![
            platform::process::fallible_task(
                "account email consumer",
                self.account.run(shutdown.clone()),
            ),
            platform::process::fallible_task("email consumer", self.consumer.run(shutdown.clone())),
        ];
        self.base
            .serve(
                "email service",
                tonic::service::Routes::default(),
                tasks,
                shutdown,
            )
            .await
    }
}
