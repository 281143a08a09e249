//! The shape every service process shares: connect to PostgreSQL (applying the schema's
//! migrations when configured) and Redis, bind the gRPC and admin listeners, then serve the
//! service's gRPC routes — with health and reflection — next to its background tasks (outbox
//! relay, consumers, recovery) until shutdown, and wait for all of them to finish.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use sqlx::PgPool;
use tokio::net::TcpListener;

use crate::config::CommonConfig;
use crate::shutdown::Shutdown;

/// A background task of a service, run until shutdown.
pub type Task = (
    &'static str,
    Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>,
);

/// A task that cannot fail (it logs its own errors and retries).
pub fn task(name: &'static str, run: impl Future<Output = ()> + Send + 'static) -> Task {
    (
        name,
        Box::pin(async move {
            run.await;
            Ok(())
        }),
    )
}

/// A task whose failure is reported when the process stops.
pub fn fallible_task(
    name: &'static str,
    run: impl Future<Output = anyhow::Result<()>> + Send + 'static,
) -> Task {
    (name, Box::pin(run))
}

/// Applies `schema`'s shared tables and migrations (the `migrate` subcommand and start-up).
pub async fn migrate(config: &CommonConfig, schema: &crate::db::Schema) -> anyhow::Result<()> {
    let pool = crate::db::connect(config.database_url.expose(), schema.name, 2).await?;
    crate::db::migrate(&pool, schema).await
}

/// The connections and listeners of a service process.
pub struct Foundation {
    /// The pool, with `search_path` set to the service's schema.
    pub pool: PgPool,
    pub redis: deadpool_redis::Pool,
    grpc: TcpListener,
    admin: TcpListener,
    edge_limit: crate::edge_limit::EdgeLimit,
}

impl Foundation {
    /// Migrates (if configured), connects and binds.
    pub async fn prepare(
        config: &CommonConfig,
        schema: &crate::db::Schema,
    ) -> anyhow::Result<Self> {
        if config.migrate_on_start {
            migrate(config, schema).await?;
        }
        let pool = crate::db::connect(
            config.database_url.expose(),
            schema.name,
            config.database_max_connections,
        )
        .await?;
        let redis = crate::redis::pool(config.redis_url.expose())?;
        let grpc = match &config.grpc_listener {
            Some(listener) => listener.take()?,
            None => crate::config::bind(config.grpc_addr, "gRPC").await?,
        };
        let admin = crate::config::bind(config.admin_addr, "admin").await?;
        let edge_limit = crate::edge_limit::EdgeLimit::new(
            redis.clone(),
            crate::auth::Authenticator::new(&config.jwt, None),
            config.edge_rate_limit_per_minute,
        );
        Ok(Self {
            pool,
            redis,
            grpc,
            admin,
            edge_limit,
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

    /// Serves `routes` and runs `tasks` until `shutdown` fires; then drains in-flight calls,
    /// stops the tasks and the admin server.
    pub async fn serve(
        self,
        name: &str,
        routes: tonic::service::Routes,
        tasks: Vec<Task>,
        shutdown: Shutdown,
    ) -> anyhow::Result<()> {
        let readiness = crate::admin::Readiness::new()
            .with_postgres(self.pool.clone())
            .with_redis(self.redis.clone());
        let admin = tokio::spawn(crate::admin::serve(self.admin, readiness, shutdown.clone()));
        let tasks: Vec<_> = tasks
            .into_iter()
            .map(|(task, run)| (task, tokio::spawn(run)))
            .collect();
        let (_reporter, health, reflection, reflection_alpha) =
            crate::grpc::health_and_reflection().await?;
        let router = crate::grpc::server()
            .layer(crate::edge_limit::EdgeLimitLayer(Some(self.edge_limit)))
            .add_routes(routes)
            .add_service(health)
            .add_service(reflection)
            .add_service(reflection_alpha);
        tracing::info!(addr = %self.grpc.local_addr()?, "{name} listening");
        let served = crate::grpc::serve(router, self.grpc, shutdown.clone()).await;
        shutdown.trigger();
        for (task, handle) in tasks {
            match handle.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(task, error = format!("{e:#}"), "task failed"),
                Err(e) => tracing::error!(task, error = %e, "task panicked"),
            }
        }
        admin.await??;
        served
    }
}
