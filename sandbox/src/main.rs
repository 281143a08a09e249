//! `sandbox-provider`: one payment provider, as its own process. See the crate docs.

use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = sandbox_provider::Config::from_env()?;
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    // The first line on stdout is the bound address (tests bind port 0 and read it).
    println!("listening on {}", listener.local_addr()?);
    let name = config.name.clone();
    let app = sandbox_provider::Sandbox::start(config).await?;
    tracing::info!(provider = %name, "sandbox provider ready");
    axum::serve(listener, app.router())
        .with_graceful_shutdown(async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
            }
        })
        .await?;
    Ok(())
}
