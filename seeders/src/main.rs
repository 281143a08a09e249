//! `seed admin` — ensure the bootstrap admin exists (`ADMIN_EMAIL`, `ADMIN_PASSWORD`).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let target = seeders::Target::from_env()?;
    match std::env::args().nth(1).as_deref() {
        Some("admin") | None => {
            let email = platform::config::optional("ADMIN_EMAIL", "admin@payments.local");
            let password = platform::config::required("ADMIN_PASSWORD")?;
            match seeders::ensure_admin(&target, &email, &password).await? {
                seeders::AdminOutcome::Created(id) => println!("admin {email} created (id {id})"),
                seeders::AdminOutcome::AlreadyExisted(id) => {
                    println!("admin {email} already exists (id {id}); password left unchanged")
                }
            }
            Ok(())
        }
        Some(other) => anyhow::bail!("unknown seed {other:?}; available: admin"),
    }
}
