//! `bench transfers`: drives transfers through the public HTTP API (NGINX → gateway →
//! services) and prints throughput and latency percentiles.
//!
//! Setup creates `--customers` verified customers (as the admin), one IDR card each, and
//! tops every card up generously, all through the API. Then either
//! * closed loop (`--concurrency C`): C workers send transfers back to back for
//!   `--duration` seconds — the maximum throughput at that concurrency; or
//! * open loop (`--rate R`): R transfers per second on a fixed schedule, latency measured
//!   from the scheduled start (no coordinated omission) — latency at a given load.
//!
//! Every transfer moves 100..=1000 minor units from a random card to another random card with a
//! fresh `Idempotency-Key`, as the owner of the sending card.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rand::Rng;
use serde_json::{Value, json};

/// Options of a run.
#[derive(Clone, Debug)]
pub struct Options {
    pub base: String,
    pub admin_email: String,
    pub admin_password: String,
    pub customers: usize,
    pub concurrency: usize,
    pub rate: Option<u64>,
    pub duration: Duration,
}

struct Account {
    token: String,
    number: String,
}

pub(crate) async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: Option<&str>,
    body: Option<Value>,
) -> anyhow::Result<(u16, Value)> {
    let mut request = http.request(method, url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    Ok((status, body))
}

pub(crate) async fn login(
    http: &reqwest::Client,
    base: &str,
    email: &str,
    password: &str,
) -> anyhow::Result<String> {
    let (status, body) = call(
        http,
        reqwest::Method::POST,
        format!("{base}/auth/login"),
        None,
        Some(json!({"email": email, "password": password})),
    )
    .await?;
    if status != 200 {
        bail!("login of {email} failed: {status} {body}");
    }
    body["access_token"]
        .as_str()
        .map(str::to_owned)
        .context("no access_token")
}

async fn setup(http: &reqwest::Client, o: &Options) -> anyhow::Result<Vec<Account>> {
    let admin = login(http, &o.base, &o.admin_email, &o.admin_password).await?;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let mut accounts = Vec::new();
    for i in 0..o.customers {
        let email = format!("bench-{}-{i}@bench.local", &run[..8]);
        let password = "Bench-Password-2026!";
        let (status, body) = call(
            http,
            reqwest::Method::POST,
            format!("{}/users", o.base),
            Some(&admin),
            Some(
                json!({"email": email, "password": password, "first_name": "Bench",
                        "last_name": format!("Customer {i}"), "email_verified": true}),
            ),
        )
        .await?;
        if status != 201 {
            bail!("creating a customer failed: {status} {body}");
        }
        let token = login(http, &o.base, &email, password).await?;
        let (status, body) = call(
            http,
            reqwest::Method::POST,
            format!("{}/cards", o.base),
            Some(&token),
            Some(json!({"brand": "visa", "card_type": "debit", "currency": "IDR"})),
        )
        .await?;
        if status != 201 {
            bail!("creating a card failed: {status} {body}");
        }
        let number = body["card"]["number"]
            .as_str()
            .context("card number")?
            .to_owned();
        accounts.push(Account { token, number });
    }
    // Fund every card once its account is open (card.created travels through Kafka); the
    // retries reuse one Idempotency-Key, so a card is never funded twice.
    for account in &accounts {
        let key = uuid::Uuid::new_v4().to_string();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let response = http
                .post(format!("{}/topups", o.base))
                .bearer_auth(&account.token)
                .header("Idempotency-Key", &key)
                .json(&json!({"card_number": account.number, "amount": 1_000_000_000_i64, "method": "bca"}))
                .send()
                .await?;
            let status = response.status().as_u16();
            if status == 201 {
                break;
            }
            if status == 202 {
                // Charged at the sandbox provider: booked once it confirms.
                let pending: serde_json::Value = response.json().await?;
                let id = pending["id"].as_str().context("top-up id")?.to_owned();
                loop {
                    let now: serde_json::Value = http
                        .get(format!("{}/topups/{id}", o.base))
                        .bearer_auth(&account.token)
                        .send()
                        .await?
                        .json()
                        .await?;
                    match now["status"].as_str() {
                        Some("succeeded") => break,
                        Some("pending") if Instant::now() < deadline => {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        _ => bail!("funding a card failed at the provider: {now}"),
                    }
                }
                break;
            }
            let body = response.text().await.unwrap_or_default();
            if status != 409 || Instant::now() > deadline {
                bail!("funding a card failed: {status} {body}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(accounts)
}

async fn transfer(http: &reqwest::Client, base: &str, accounts: &[Account]) -> Result<u16, String> {
    let (from, to, amount) = {
        let mut rng = rand::thread_rng();
        let from = rng.gen_range(0..accounts.len());
        let to = (from + rng.gen_range(1..accounts.len())) % accounts.len();
        (from, to, rng.gen_range(100..=1_000_i64))
    };
    let response = http
        .post(format!("{base}/transfers"))
        .bearer_auth(&accounts[from].token)
        .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
        .json(&json!({"from_card_number": accounts[from].number,
                      "to_card_number": accounts[to].number, "amount": amount}))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let _ = response.bytes().await;
    Ok(status)
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u64>,
    by_status: std::collections::BTreeMap<String, u64>,
}

pub(crate) fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

/// Runs the benchmark and prints its figures.
pub async fn run(o: Options) -> anyhow::Result<()> {
    anyhow::ensure!(o.customers >= 2, "--customers must be at least 2");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(o.concurrency.max(64))
        .timeout(Duration::from_secs(30))
        .build()?;
    eprintln!(
        "setting up {} customers with funded cards through the API...",
        o.customers
    );
    let accounts = Arc::new(setup(&http, &o).await?);
    let started = Instant::now();
    let deadline = started + o.duration;
    let mut tasks = tokio::task::JoinSet::new();
    match o.rate {
        None => {
            for _ in 0..o.concurrency {
                let (http, accounts, base) = (http.clone(), accounts.clone(), o.base.clone());
                tasks.spawn(async move {
                    let mut tally = Tally::default();
                    while Instant::now() < deadline {
                        let t = Instant::now();
                        let status = transfer(&http, &base, &accounts).await;
                        tally.latencies_us.push(t.elapsed().as_micros() as u64);
                        let key = status
                            .map(|s| s.to_string())
                            .unwrap_or_else(|e| format!("error: {e}"));
                        *tally.by_status.entry(key).or_default() += 1;
                    }
                    tally
                });
            }
        }
        Some(rate) => {
            let interval = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
            let sent = Arc::new(AtomicU64::new(0));
            let mut next = Instant::now();
            while next < deadline {
                let (http, accounts, base) = (http.clone(), accounts.clone(), o.base.clone());
                let scheduled = next;
                sent.fetch_add(1, Ordering::Relaxed);
                tasks.spawn(async move {
                    let mut tally = Tally::default();
                    let status = transfer(&http, &base, &accounts).await;
                    tally
                        .latencies_us
                        .push(scheduled.elapsed().as_micros() as u64);
                    let key = status
                        .map(|s| s.to_string())
                        .unwrap_or_else(|e| format!("error: {e}"));
                    *tally.by_status.entry(key).or_default() += 1;
                    tally
                });
                next += interval;
                tokio::time::sleep_until(next.into()).await;
            }
        }
    }
    let mut all = Tally::default();
    while let Some(tally) = tasks.join_next().await {
        let tally = tally?;
        all.latencies_us.extend(tally.latencies_us);
        for (k, v) in tally.by_status {
            *all.by_status.entry(k).or_default() += v;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.latencies_us.sort_unstable();
    let ok = all.by_status.get("201").copied().unwrap_or(0);
    let mode = match o.rate {
        None => format!("closed loop, concurrency {}", o.concurrency),
        Some(r) => format!("open loop, {r} transfers/s offered"),
    };
    println!("transfers through NGINX ({mode}, {:.0} s)", elapsed);
    println!(
        "  completed      {}  ({} succeeded)",
        all.latencies_us.len(),
        ok
    );
    println!("  statuses       {:?}", all.by_status);
    println!("  throughput     {:.1} transfers/s", ok as f64 / elapsed);
    println!(
        "  latency ms     p50 {:.2}  p95 {:.2}  p99 {:.2}  max {:.2}",
        percentile(&all.latencies_us, 50.0),
        percentile(&all.latencies_us, 95.0),
        percentile(&all.latencies_us, 99.0),
        percentile(&all.latencies_us, 100.0)
    );
    println!(
        "RESULT throughput={:.1} p50_ms={:.2} p95_ms={:.2} p99_ms={:.2}",
        ok as f64 / elapsed,
        percentile(&all.latencies_us, 50.0),
        percentile(&all.latencies_us, 95.0),
        percentile(&all.latencies_us, 99.0)
    );
    Ok(())
}
