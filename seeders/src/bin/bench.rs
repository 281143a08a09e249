//! `bench transfers [--base URL] [--customers N] [--concurrency C] [--rate R] [--duration S]`
//!
//! Load generator of `make bench` (see `deploy/local/bench.sh`). The admin login comes from
//! `ADMIN_EMAIL` / `ADMIN_PASSWORD`.

use std::time::Duration;

use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("transfers") => {}
        other => anyhow::bail!("unknown benchmark {other:?}; available: transfers"),
    }
    let mut options = seeders::bench::Options {
        base: "http://127.0.0.1:8080/api/v1".to_owned(),
        admin_email: platform::config::optional("ADMIN_EMAIL", "admin@payments.local"),
        admin_password: platform::config::required("ADMIN_PASSWORD")?,
        customers: 40,
        concurrency: 32,
        rate: None,
        duration: Duration::from_secs(20),
    };
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
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
