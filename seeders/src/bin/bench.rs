//! `bench transfers [--base URL] [--customers N] [--concurrency C] [--rate R] [--duration S]`
//! `bench stats [--base URL] [--label NAME] [--requests N] [--warmup N] [--concurrency C]`
//!
//! Load generators of `make bench` (`deploy/local/bench.sh`) and `make bench-stats`
//! (`deploy/local/bench-stats.sh`). The admin login comes from `ADMIN_EMAIL` /
//! `ADMIN_PASSWORD`.

use std::time::Duration;

use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let which = args.next();
    let flags: Vec<(String, String)> = {
        let mut flags = Vec::new();
        while let Some(flag) = args.next() {
            let value = args
                .next()
                .with_context(|| format!("{flag} needs a value"))?;
            flags.push((flag, value));
        }
        flags
    };
    let base = "http://127.0.0.1:8080/api/v1".to_owned();
    let admin_email = platform::config::optional("ADMIN_EMAIL", "admin@payments.local");
    let admin_password = platform::config::required("ADMIN_PASSWORD")?;
    match which.as_deref() {
        Some("transfers") => {
            let mut options = seeders::bench::Options {
                base,
                admin_email,
                admin_password,
                customers: 40,
                concurrency: 32,
                rate: None,
                duration: Duration::from_secs(20),
            };
            for (flag, value) in flags {
                match flag.as_str() {
                    "--base" => options.base = value,
                    "--customers" => options.customers = value.parse()?,
                    "--concurrency" => options.concurrency = value.parse()?,
                    "--rate" => options.rate = Some(value.parse()?),
                    "--duration" => options.duration = Duration::from_secs(value.parse()?),
                    other => anyhow::bail!("unknown flag {other}"),
                }
            }
            seeders::bench::run(options).await
        }
        Some("stats") => {
            let mut options = seeders::bench_stats::Options {
                base,
                admin_email,
                admin_password,
                label: "demo".to_owned(),
                requests: 1_000,
                warmup: 50,
                concurrency: 4,
            };
            for (flag, value) in flags {
                match flag.as_str() {
                    "--base" => options.base = value,
                    "--label" => options.label = value,
                    "--requests" => options.requests = value.parse()?,
                    "--warmup" => options.warmup = value.parse()?,
                    "--concurrency" => options.concurrency = value.parse()?,
                    other => anyhow::bail!("unknown flag {other}"),
                }
            }
            seeders::bench_stats::run(options).await
        }
        other => anyhow::bail!("unknown benchmark {other:?}; available: transfers, stats"),
    }
}
