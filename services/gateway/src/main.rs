//! `gateway`

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = platform::telemetry::init("gateway")?;
    let app = gateway::Application::build(gateway::Config::from_env()?).await?;
    app.run(platform::shutdown::Shutdown::on_os_signals()).await
}
