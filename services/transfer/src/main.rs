//! `transfer-service [serve|migrate|rebuild-stats]`

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = platform::telemetry::init("transfer-service")?;
    let config = transfer_service::config()?;
    match std::env::args().nth(1).as_deref() {
        None | Some("serve") => {
            let app = transfer_service::build(config).await?;
            let routes = transfer_service::routes(&app);
            app.run(routes, platform::shutdown::Shutdown::on_os_signals())
                .await
        }
        Some("migrate") => transfer_service::migrate(&config.common).await,
        Some("rebuild-stats") => {
            movement::app::rebuild_stats(
                movement::Kind::Transfer,
                &config,
                transfer_service::SCHEMA,
            )
            .await
        }
        Some(other) => {
            anyhow::bail!("unknown command {other:?}; use serve, migrate or rebuild-stats")
        }
    }
}
