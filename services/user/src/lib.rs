//! The user service: accounts and authentication. It owns users, credentials, refresh-token
//! families, email-verification and password-reset tokens (schema `user_svc`). It does not
//! own roles: it asks the role service for a user's grants when it issues an access token.
//!
//! [`Application::build`] binds the gRPC and admin listeners (port 0 in tests) and
//! [`Application::run`] serves until shutdown, with the outbox relay beside it.

pub mod accounts;
pub mod crypto;
pub mod domain;
pub mod error;
pub mod grpc;
pub mod lockout;
pub mod repo;
pub mod service;
pub mod sessions;

use std::net::SocketAddr;
use std::time::Duration;

use platform::auth::{Authenticator, TokenIssuer};
use platform::config::CommonConfig;
use platform::process::Foundation;
use platform::shutdown::Shutdown;
use proto::role::v1::role_service_client::RoleServiceClient;
use proto::user::v1::auth_service_server::AuthServiceServer;
use proto::user::v1::user_service_server::UserServiceServer;

/// The database schema this service owns.
pub const SCHEMA: &str = "user_svc";

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
        "a81386e176224890129ddc04a9078daf8150fa05bf881c6906faf3d9d79855263fee1bbe71b7483eee85adb47dbef3c3",
    )],
};

/// Settings of the user service.
#[derive(Clone, Debug)]
pub struct Config {
    pub common: CommonConfig,
    /// gRPC URL of the role service (`ROLE_SERVICE_URL`).
    pub role_service_url: String,
    pub lifetimes: service::TokenLifetimes,
    /// Failed logins before a lock (`LOGIN_MAX_FAILURES`).
    pub login_max_failures: u32,
    /// Window in which failures count (`LOGIN_FAILURE_WINDOW_SECS`).
    pub login_failure_window: Duration,
    /// First lock's duration, doubled for each further lock within a day (`LOGIN_LOCKOUT_SECS`).
    pub login_lockout: Duration,
    /// Key deriving one-time link tokens (`ONE_TIME_TOKEN_KEY`, shared with the email service).
    pub link_key: platform::link_token::LinkTokenKey,
    /// Password hashes running at once (`PASSWORD_HASH_CONCURRENCY`, default: the CPUs).
    pub password_hash_concurrency: usize,
    /// Password hashes waiting beyond those (`PASSWORD_HASH_QUEUE`).
    pub password_hash_queue: usize,
    /// How long one waits before a 503 (`PASSWORD_HASH_WAIT_MS`).
    pub password_hash_wait: Duration,
    /// Reset/verification emails per address and hour (`EMAILS_PER_RECIPIENT_PER_HOUR`).
    pub emails_per_recipient_per_hour: u32,
}

impl Config {
    /// Reads the configuration from the environment.
    pub fn from_env() -> anyhow::Result<Self> {
        use platform::config::{optional, parsed, seconds};
        Ok(Self {
            common: CommonConfig::from_env(
                "user-service",
                &platform::ports::USER.grpc_listen(),
                &platform::ports::USER.admin_listen(),
            )?,
            role_service_url: optional("ROLE_SERVICE_URL", &platform::ports::ROLE.local_url()),
            lifetimes: service::TokenLifetimes {
                refresh: seconds("REFRESH_TOKEN_TTL_SECS", 30 * 24 * 3600)?,
                verification: seconds("EMAIL_VERIFICATION_TTL_SECS", 24 * 3600)?,
                password_reset: seconds("PASSWORD_RESET_TTL_SECS", 3600)?,
            },
            login_max_failures: parsed("LOGIN_MAX_FAILURES", 5)?,
            login_failure_window: seconds("LOGIN_FAILURE_WINDOW_SECS", 900)?,
            login_lockout: seconds("LOGIN_LOCKOUT_SECS", 900)?,
            link_key: platform::link_token::LinkTokenKey::from_env()?,
            password_hash_concurrency: parsed(
                "PASSWORD_HASH_CONCURRENCY",
                std::thread::available_parallelism().map_or(2, std::num::NonZero::get),
            )?,
            password_hash_queue: parsed("PASSWORD_HASH_QUEUE", 16)?,
            password_hash_wait: Duration::from_millis(parsed("PASSWORD_HASH_WAIT_MS", 2_000)?),
            emails_per_recipient_per_hour: parsed("EMAILS_PER_RECIPIENT_PER_HOUR", 5)?,
        })
    }
}

/// Applies the schema's migrations (the `migrate` subcommand and start-up).
pub async fn migrate(config: &CommonConfig) -> anyhow::Result<()> {
    platform::process::migrate(config, &DATABASE).await
}

/// A built, not yet running service.
pub struct Application {
    base: Foundation,
    users: service::Users,
    relay: events::OutboxRelay,
}

impl Application {
    /// Migrates if configured, connects, ensures topics, and binds listeners.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let common = &config.common;
        let base = Foundation::prepare(common, &DATABASE).await?;
        let (pool, redis) = (base.pool.clone(), base.redis.clone());
        let roles = RoleServiceClient::new(platform::grpc::channel(&config.role_service_url)?);
        let lockout = lockout::Lockout::new(
            redis.clone(),
            config.login_max_failures,
            config.login_failure_window,
            config.login_lockout,
        );
        let users = service::Users::new(
            pool.clone(),
            TokenIssuer::new(&common.jwt)?,
            Authenticator::new(&common.jwt, Some(redis.clone())),
            redis,
            roles,
            lockout,
            service::Security {
                lifetimes: config.lifetimes.clone(),
                link_key: config.link_key.clone(),
                hasher: crypto::PasswordHasher::new(
                    config.password_hash_concurrency,
                    config.password_hash_queue,
                    config.password_hash_wait,
                ),
                emails_per_recipient_per_hour: config.emails_per_recipient_per_hour,
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        events::topics::ensure_best_effort(&common.kafka_brokers).await;
        let relay = events::OutboxRelay::new(pool, &common.kafka_brokers, SCHEMA)?;
        Ok(Self { base, users, relay })
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
        let routes = {
            let handlers = grpc::Handlers::new(self.users);
            tonic::service::Routes::new(AuthServiceServer::new(handlers.clone()))
                .add_service(UserServiceServer::new(handlers))
        };
        let tasks = vec![platform::process::task(
            "outbox relay",
            self.relay.run(shutdown.clone()),
        )];
        self.base
            .serve("user service", routes, tasks, shutdown)
            .await
    }
}
