//! `transaction-service [serve|migrate|rebuild-stats]`

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = platform::telemetry::init("transaction-service")?;
    let config = transaction_service::Config::from_env()?;
    match std::env::args().nth(1).as_deref() {
        None | Some("serve") => {
            let app = transaction_service::Application::build(config).await?;
            app.run(platform::shutdown::Shutdown::on_os_signals()).await
        }
        Some("migrate") => transaction_service::migrate(&config.common).await,
        Some("rebuild-stats") => transaction_service::rebuild_stats(&config).await,
        Some(other) => {
            anyhow::bail!("unknown command {other:?}; use serve, migrate or rebuild-stats")
        }
    }
}
