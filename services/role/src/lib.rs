//! The role service: roles, the permission catalogue and user-role assignments (schema
//! `role_svc`). It answers the user service's "what may this user do" at token issue time,
//! and consumes user lifecycle events to give new accounts the `customer` role.

pub mod consumer;
pub mod error;
pub mod grpc;
pub mod repo;
pub mod service;

use std::net::SocketAddr;

use platform::auth::{Authenticator, TokenIssuer};
use platform::config::CommonConfig;
use platform::shutdown::Shutdown;
use proto::role::v1::role_service_server::RoleServiceServer;
use proto::user::v1::user_service_client::UserServiceClient;
use tokio::net::TcpListener;

/// The database schema this service owns.
pub const SCHEMA: &str = "role_svc";

/// The service's migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Settings of the role service.
#[derive(Clone, Debug)]
pub struct Config {
    pub common: CommonConfig,
    /// gRPC URL of the user service (`USER_SERVICE_URL`).
    pub user_service_url: String,
    /// Consumer group for user events (`USER_EVENTS_GROUP`).
    pub user_events_group: String,
}

impl Config {
    /// Reads the configuration from the environment.
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            common: CommonConfig::from_env("role-service", "0.0.0.0:50052", "0.0.0.0:9102")?,
            user_service_url: platform::config::optional(
                "USER_SERVICE_URL",
                "http://127.0.0.1:50051",
            ),
            user_events_group: platform::config::optional(
                "USER_EVENTS_GROUP",
                events::topics::groups::ROLE_USER_EVENTS,
            ),
        })
    }
}

/// Applies the schema's migrations.
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
    roles: service::Roles,
    relay: events::OutboxRelay,
    consumer: events::Consumer<consumer::UserEvents>,
}

impl Application {
    /// Connects, migrates if configured, ensures topics, and binds listeners.
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
        let users = UserServiceClient::new(platform::grpc::channel(&config.user_service_url)?);
        let roles = service::Roles::new(
            pool.clone(),
            Authenticator::new(&common.jwt, Some(redis.clone())),
            TokenIssuer::new(&common.jwt),
            users,
        );
        events::topics::ensure_best_effort(&common.kafka_brokers).await;
        let relay = events::OutboxRelay::new(
            pool.clone(),
            events::outbox::producer(&common.kafka_brokers)?,
            SCHEMA,
        );
        let consumer = events::Consumer::new(
            events::ConsumerConfig::new(
                &common.kafka_brokers,
                &config.user_events_group,
                &[events::topics::USER_EVENTS],
            ),
            pool.clone(),
            consumer::UserEvents,
        )?;
        let grpc = platform::config::bind(common.grpc_addr, "gRPC").await?;
        let admin = platform::config::bind(common.admin_addr, "admin").await?;
        Ok(Self {
            grpc,
            admin,
            pool,
            redis,
            roles,
            relay,
            consumer,
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
        let consumer = tokio::spawn(self.consumer.run(shutdown.clone()));
        let (_reporter, health, reflection, reflection_alpha) =
            platform::grpc::health_and_reflection().await?;
        let router = platform::grpc::server()
            .add_service(health)
            .add_service(reflection)
            .add_service(reflection_alpha)
            .add_service(RoleServiceServer::new(grpc::Handlers::new(self.roles)));
        tracing::info!(addr = %self.grpc.local_addr()?, "role service listening");
        let served = platform::grpc::serve(router, self.grpc, shutdown.clone()).await;
        shutdown.trigger();
        let _ = relay.await;
        if let Ok(Err(e)) = consumer.await {
            tracing::error!(error = format!("{e:#}"), "consumer failed");
        }
        admin.await??;
        served
    }
}
