//! The event contract, checked on every platform a test started: each event its services
//! published (every outbox row of every schema) must be in the catalogue
//! (`events::catalogue`, the AsyncAPI document) and valid against its JSON Schema.

use std::collections::HashMap;

use anyhow::Context;

/// Checks every event published into the database at `database_url`.
pub async fn published_events_match_the_catalogue(database_url: &str) -> anyhow::Result<usize> {
    // The platform's pools are closing as this runs; on a busy server a connection may be
    // refused for a moment ("too many clients"), which says nothing about the events.
    let mut attempts = 0;
    let pool = loop {
        match sqlx::PgPool::connect(database_url).await {
            Ok(pool) => break pool,
            Err(e) if attempts < 20 => {
                attempts += 1;
                eprintln!("contract check: connecting ({e}); retrying");
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e).context("connecting to check the published events"),
        }
    };
    let schemas: Vec<String> = sqlx::query_scalar(
        "SELECT table_schema FROM information_schema.tables WHERE table_name = 'outbox'",
    )
    .fetch_all(&pool)
    .await?;
    let mut validators: HashMap<(String, u64), jsonschema::Validator> = HashMap::new();
    let mut failures = Vec::new();
    let mut checked = 0;
    for schema in schemas {
        let rows: Vec<(String, serde_json::Value)> =
            sqlx::query_as(&format!("SELECT event_type, payload FROM {schema}.outbox"))
                .fetch_all(&pool)
                .await?;
        for (event_type, payload) in rows {
            checked += 1;
            let version = payload["version"].as_u64().unwrap_or(0);
            let key = (event_type.clone(), version);
            if !validators.contains_key(&key) {
                let Some(spec) = u32::try_from(version)
                    .ok()
                    .and_then(|v| events::catalogue::find(&event_type, v))
                else {
                    failures.push(format!(
                        "{event_type} v{version} ({schema}) is not in the catalogue"
                    ));
                    continue;
                };
                let validator = jsonschema::options()
                    .should_validate_formats(true)
                    .build(&spec.schema())
                    .with_context(|| format!("the schema of {event_type} v{version}"))?;
                validators.insert(key.clone(), validator);
            }
            if let Some(validator) = validators.get(&key)
                && let Err(error) = validator.validate(&payload)
            {
                failures.push(format!(
                    "{event_type} v{version} ({schema}): {error} at {}; payload {payload}",
                    error.instance_path()
                ));
            }
        }
    }
    pool.close().await;
    anyhow::ensure!(
        failures.is_empty(),
        "{} published event(s) break the contract:\n{}",
        failures.len(),
        failures.join("\n")
    );
    Ok(checked)
}
