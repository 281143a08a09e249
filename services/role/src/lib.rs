//! The role service: roles, the permission catalogue and user-role assignments (schema
//! `role_svc`). It answers the user service's "what may this user do" at token issue time,
//! and consumes user lifecycle events to give new accounts the `customer` role.

pub mod assignments;
pub mod consumer;
pub mod error;
pub mod grpc;
pub mod repo;
pub mod service;

use std::net::SocketAddr;

use platform::auth::{Authenticator, TokenIssuer};
use platform::config::CommonConfig;
use platform::process::Foundation;
use platform::shutdown::Shutdown;
use proto::role::v1::role_service_server::RoleServiceServer;
use proto::user::v1::user_service_client::UserServiceClient;

/// The database schema this service owns.
pub const SCHEMA: &str = "role_svc";

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
        "dea692039489472eface370fd75e4ff317de63d71de40da02875126b0bfc9a68ce7d0fd2411cfaf6aa8ba3326d96b420",
    )],
};

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
            common: CommonConfig::from_env(
                "role-service",
                &platform::ports::ROLE.grpc_listen(),
                &platform::ports::ROLE.admin_listen(),
            )?,
            user_service_url: platform::config::optional(
                "USER_SERVICE_URL",
                &platform::ports::USER.local_url(),
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
    platform::process::migrate(config, &DATABASE).await
}

/// A built, not yet running service.
pub struct Application {
    base: Foundation,
    roles: service::Roles,
    relay: events::OutboxRelay,
    consumer: events::Consumer<consumer::UserEvents>,
}

impl Application {
    /// Migrates if configured, connects, ensures topics, and binds listeners.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let common = &config.common;
        let base = Foundation::prepare(common, &DATABASE).await?;
        let (pool, redis) = (base.pool.clone(), base.redis.clone());
        let users = UserServiceClient::new(platform::grpc::channel(&config.user_service_url)?);
        let roles = service::Roles::new(
            pool.clone(),
            redis.clone(),
            Authenticator::new(&common.jwt, Some(redis)),
            TokenIssuer::new(&common.jwt)?,
            users,
        );
        events::topics::ensure_best_effort(&common.kafka_brokers).await;
        let relay = events::OutboxRelay::new(pool.clone(), &common.kafka_brokers, SCHEMA)?;
        let consumer = events::Consumer::new(
            events::ConsumerConfig::new(
                &common.kafka_brokers,
                &config.user_events_group,
                &[events::topics::USER_EVENTS],
            ),
            pool,
            consumer::UserEvents,
        )?;
        Ok(Self {
            base,
            roles,
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
            tonic::service::Routes::new(RoleServiceServer::new(grpc::Handlers::new(self.roles)));
        let tasks = vec![
            platform::process::task("outbox relay", self.relay.run(shutdown.clone())),
            platform::process::fallible_task(
                "user events consumer",
                self.consumer.run(shutdown.clone()),
            ),
        ];
        self.base
            .serve("role service", routes, tasks, shutdown)
            .await
    }
}
