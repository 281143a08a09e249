//! The user service: accounts and authentication. It owns users, credentials, refresh-token
//! families, email-verification and password-reset tokens (schema `user_svc`). It does not
//! own roles: it asks the role service for a user's grants when it issues an access token.
//!
//! [`Application::build`] binds the gRPC and admin listeners (port 0 in tests) and
//! [`Application::run`] serves until shutdown, with the outbox relay beside it.

pub mod crypto;
pub mod domain;
pub mod error;
pub mod grpc;
pub mod lockout;
pub mod repo;
pub mod service;

use std::net::SocketAddr;
use std::time::Duration;

use platform::auth::{Authenticator, TokenIssuer};
use platform::config::CommonConfig;
use platform::shutdown::Shutdown;
use proto::role::v1::role_service_client::RoleServiceClient;
use proto::user::v1::auth_service_server::AuthServiceServer;
use proto::user::v1::user_service_server::UserServiceServer;
use tokio::net::TcpListener;

/// The database schema this service owns.
pub const SCHEMA: &str = "user_svc";

/// The service's migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

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
    /// Lock duration (`LOGIN_LOCKOUT_SECS`).
    pub login_lockout: Duration,
}

impl Config {
    /// Reads the configuration from the environment.
    pub fn from_env() -> anyhow::Result<Self> {
        use platform::config::{optional, parsed, seconds};
        Ok(Self {
            common: CommonConfig::from_env("user-service", "0.0.0.0:50051", "0.0.0.0:9101")?,
            role_service_url: optional("ROLE_SERVICE_URL", "http://127.0.0.1:50052"),
            lifetimes: service::TokenLifetimes {
                refresh: seconds("REFRESH_TOKEN_TTL_SECS", 30 * 24 * 3600)?,
                verification: seconds("EMAIL_VERIFICATION_TTL_SECS", 24 * 3600)?,
                password_reset: seconds("PASSWORD_RESET_TTL_SECS", 3600)?,
            },
            login_max_failures: parsed("LOGIN_MAX_FAILURES", 5)?,
            login_failure_window: seconds("LOGIN_FAILURE_WINDOW_SECS", 900)?,
            login_lockout: seconds("LOGIN_LOCKOUT_SECS", 900)?,
        })
    }
}

/// Applies the schema's migrations (the `migrate` subcommand and start-up).
pub async fn migrate(config: &CommonConfig) -> anyhow::Result<()> {
    let pool = platform::db::connect(config.database_url.expose(), SCHEMA, 2).await?;
    platform::db::migrate(&pool, SCHEMA, &MIGRATOR).await
}

/// A built, not yet running service.
pub struct Application {
    grpc: TcpListener,
    admin: TcpListener,
    pool: sqlx::PgPool,
    redis: deadpool_redis::Pool,
    users: service::Users,
    relay: events::OutboxRelay,
}

impl Application {
    /// Connects to PostgreSQL, Redis and Kafka, migrates if configured, and binds listeners.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let common = &config.common;
        if common.migrate_on_start {
            migrate(common).await?;
        }
        let pool = platform::db::connect(
            common.database_url.expose(),
            SCHEMA,
            common.database_max_connections,
        )
        .await?;
        let redis = platform::redis::pool(common.redis_url.expose())?;
        let roles = RoleServiceClient::new(platform::grpc::channel(&config.role_service_url)?);
        let lockout = lockout::Lockout::new(
            redis.clone(),
            config.login_max_failures,
            config.login_failure_window,
            config.login_lockout,
        );
        let users = service::Users::new(
            pool.clone(),
            TokenIssuer::new(&common.jwt),
            Authenticator::new(&common.jwt, Some(redis.clone())),
            redis.clone(),
            roles,
            lockout,
            config.lifetimes.clone(),
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        events::topics::ensure_best_effort(&common.kafka_brokers).await;
        let relay = events::OutboxRelay::new(
            pool.clone(),
            events::outbox::producer(&common.kafka_brokers)?,
            SCHEMA,
        );
        let grpc = platform::config::bind(common.grpc_addr, "gRPC").await?;
        let admin = platform::config::bind(common.admin_addr, "admin").await?;
        Ok(Self {
            grpc,
            admin,
            pool,
            redis,
            users,
            relay,
        })
    }

    /// The bound gRPC address.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc
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
        let readiness = platform::admin::Readiness::new()
            .with_postgres(self.pool.clone())
            .with_redis(self.redis.clone());
        let admin = tokio::spawn(platform::admin::serve(
            self.admin,
            readiness,
            shutdown.clone(),
        ));
        let relay = tokio::spawn(self.relay.run(shutdown.clone()));
        let (_reporter, health, reflection, reflection_alpha) =
            platform::grpc::health_and_reflection().await?;
        let handlers = grpc::Handlers::new(self.users);
        let router = platform::grpc::server()
            .add_service(health)
            .add_service(reflection)
            .add_service(reflection_alpha)
            .add_service(AuthServiceServer::new(handlers.clone()))
            .add_service(UserServiceServer::new(handlers));
        tracing::info!(addr = %self.grpc.local_addr()?, "user service listening");
        let served = platform::grpc::serve(router, self.grpc, shutdown.clone()).await;
        shutdown.trigger();
        let _ = relay.await;
        admin.await??;
        served
    }
}
