//! `merchant-service [serve|migrate]`

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = platform::telemetry::init("merchant-service")?;
    let config = merchant_service::Config::from_env()?;
    match std::env::args().nth(1).as_deref() {
        None | Some("serve") => {
            let app = merchant_service::Application::build(config).await?;
            app.run(platform::shutdown::Shutdown::on_os_signals()).await
        }
        Some("migrate") => merchant_service::migrate(&config.common).await,
        Some(other) => anyhow::bail!("unknown command {other:?}; use serve or migrate"),
    }
}
