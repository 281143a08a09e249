//! `saldo-service [serve|migrate|reconcile|rebuild-stats]`

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = platform::telemetry::init("saldo-service")?;
    let config = saldo_service::Config::from_env()?;
    match std::env::args().nth(1).as_deref() {
        None | Some("serve") => {
            let app = saldo_service::Application::build(config).await?;
            app.run(platform::shutdown::Shutdown::on_os_signals()).await
        }
        Some("migrate") => saldo_service::migrate(&config.common).await,
        Some("rebuild-stats") => saldo_service::rebuild_stats(&config).await,
        Some("reconcile") => {
            let report = saldo_service::reconcile(&config.common).await?;
            println!(
                "postings={} journal_lines={} accounts={} journal_sum={} unbalanced_postings={} \
                 negative_card_balances={} mismatched_accounts={}",
                report.postings,
                report.journal_lines,
                report.accounts,
                report.journal_sum,
                report.unbalanced_postings,
                report.negative_card_balances,
                report.mismatches.len()
            );
            for (id, cached, journal) in &report.mismatches {
                println!("  account {id}: cached balance {cached}, journal says {journal}");
            }
            if report.balanced() {
                println!("the books balance");
                Ok(())
            } else {
                anyhow::bail!("the books do NOT balance")
            }
        }
        Some(other) => {
            anyhow::bail!(
                "unknown command {other:?}; use serve, migrate, reconcile or rebuild-stats"
            )
        }
    }
}
