//! `seed admin` — ensure the bootstrap admin exists (`ADMIN_EMAIL`, `ADMIN_PASSWORD`).
//! `seed topics` — create the platform's Kafka topics (`KAFKA_BROKERS`, `KAFKA_REPLICATION`).
//! `seed demo [--size small|large]` — the admin, then demo data (see `seeders::demo`).
//!
//! Demo data logs in with a password printed in the README, and so does the documented local
//! admin password: both are refused unless `ALLOW_DEMO_CREDENTIALS=true` says this is a local
//! or demo installation (`make run`, Docker Compose and the `k8s-demo` overlay set
//! it; the base Kubernetes manifests do not).

/// Passwords printed in the README or the scripts.
const DOCUMENTED_PASSWORDS: &[&str] = &["Demo-Platform-2026!", seeders::demo::DEMO_PASSWORD];

fn demo_credentials_allowed() -> anyhow::Result<bool> {
    platform::config::parsed("ALLOW_DEMO_CREDENTIALS", false)
}

fn admin_password() -> anyhow::Result<String> {
    let password = platform::config::required("ADMIN_PASSWORD")?;
    anyhow::ensure!(
        !DOCUMENTED_PASSWORDS.contains(&password.as_str()) || demo_credentials_allowed()?,
        "ADMIN_PASSWORD is a password printed in the project's documentation; choose another \
         (or set ALLOW_DEMO_CREDENTIALS=true on a local or demo installation)"
    );
    Ok(password)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match std::env::args().nth(1).as_deref() {
        Some("topics") => {
            let brokers = platform::config::optional("KAFKA_BROKERS", "127.0.0.1:9092");
            let replication = platform::config::parsed("KAFKA_REPLICATION", 1_i32)?;
            events::topics::ensure(&brokers, events::topics::ALL, replication).await?;
            for topic in events::topics::ALL {
                println!("topic {} ({} partitions)", topic.name, topic.partitions);
            }
            Ok(())
        }
        Some("demo") => {
            let mut size = seeders::demo::Size::Small;
            let mut args = std::env::args().skip(2);
            while let Some(flag) = args.next() {
                match (flag.as_str(), args.next()) {
                    ("--size", Some(value)) => size = value.parse()?,
                    _ => anyhow::bail!("usage: seed demo [--size small|large]"),
                }
            }
            anyhow::ensure!(
                demo_credentials_allowed()?,
                "demo data logs in with the documented password {:?}: refused unless \
                 ALLOW_DEMO_CREDENTIALS=true (local and demo installations only)",
                seeders::demo::DEMO_PASSWORD
            );
            let services = seeders::demo::Services::from_env()?;
            let email = platform::config::optional("ADMIN_EMAIL", "admin@payments.local");
            let password = admin_password()?;
            seeders::ensure_admin(&services.target, &email, &password).await?;
            let summary = seeders::demo::run(&services, size).await?;
            if !summary.already_present {
                println!(
                    "demo data: {} customers (customer0001@demo.payments.local …), {} merchants \
                     (merchant001@demo.payments.local …), {} operations ({} refused as the \
                     data intends, e.g. insufficient funds); password {}",
                    summary.customers,
                    summary.merchants,
                    summary.operations,
                    summary.failed_as_planned,
                    seeders::demo::DEMO_PASSWORD
                );
            }
            Ok(())
        }
        Some("admin") | None => {
            let password = admin_password()?;
            let target = seeders::Target::from_env()?;
            let email = platform::config::optional("ADMIN_EMAIL", "admin@payments.local");
            match seeders::ensure_admin(&target, &email, &password).await? {
                seeders::AdminOutcome::Created(id) => println!("admin {email} created (id {id})"),
                seeders::AdminOutcome::AlreadyExisted(id) => {
                    println!("admin {email} already exists (id {id}); password left unchanged")
                }
            }
            Ok(())
        }
        Some(other) => anyhow::bail!("unknown seed {other:?}; available: admin, topics, demo"),
    }
}
