//! `withdraw-service [serve|migrate|rebuild-stats|reconcile-providers [YYYY-MM-DD]]`

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = platform::telemetry::init("withdraw-service")?;
    let config = withdraw_service::config()?;
    match std::env::args().nth(1).as_deref() {
        None | Some("serve") => {
            let app = withdraw_service::build(config).await?;
            let routes = withdraw_service::routes(&app);
            app.run(routes, platform::shutdown::Shutdown::on_os_signals())
                .await
        }
        Some("migrate") => withdraw_service::migrate(&config.common).await,
        Some("rebuild-stats") => {
            movement::app::rebuild_stats(
                movement::Kind::Withdraw,
                &config,
                withdraw_service::SCHEMA,
            )
            .await
        }
        Some("reconcile-providers") => {
            movement::app::reconcile_providers(
                movement::Kind::Withdraw,
                &config,
                withdraw_service::SCHEMA,
                std::env::args().nth(2).as_deref(),
            )
            .await
        }
        Some(other) => {
            anyhow::bail!(
                "unknown command {other:?}; use serve, migrate, rebuild-stats or reconcile-providers"
            )
        }
    }
}
