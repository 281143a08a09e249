//! `bench stats`: the latency of every statistics endpoint through the public HTTP API
//! (NGINX → gateway → the owning service's rollup), against demo data (`seed demo`).
//!
//! It logs in as the admin (platform-wide statistics), as `customer0001` (their cards) and as
//! `merchant001` (their merchant and its API key), then for each endpoint sends `--warmup`
//! requests, then `--requests` requests from one client (the latency: p50, p99, max), then
//! `--requests` from `--concurrency` clients back to back (throughput, and p99 under that
//! load), and prints one `RESULT` line each, for `make bench-stats` to compare data sizes.
//! Any answer other than 200 fails the run.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::Datelike;
use serde_json::Value;

use crate::bench::{call, login, percentile};

/// Options of a run.
#[derive(Clone, Debug)]
pub struct Options {
    pub base: String,
    pub admin_email: String,
    pub admin_password: String,
    /// A name for the data set (`small`, `large`), printed in the RESULT lines.
    pub label: String,
    pub requests: usize,
    pub warmup: usize,
    pub concurrency: usize,
}

/// One endpoint to measure: a name without ids, the path and query, whose token.
struct Endpoint {
    name: String,
    path: String,
    token: Arc<str>,
}

/// The `items` of a list the caller may read.
async fn items(http: &reqwest::Client, url: String, token: &str) -> anyhow::Result<Vec<Value>> {
    let (status, mut body) =
        call(http, reqwest::Method::GET, url.clone(), Some(token), None).await?;
    if status != 200 {
        bail!("GET {url}: {status} {body}");
    }
    match body["items"].take() {
        Value::Array(items) => Ok(items),
        _ => bail!("GET {url}: no items in {body}"),
    }
}

fn id(item: &Value) -> anyhow::Result<String> {
    item["id"]
        .as_str()
        .map(str::to_owned)
        .context("an item without id")
}

async fn first_id(http: &reqwest::Client, url: String, token: &str) -> anyhow::Result<String> {
    let listed = items(http, url.clone(), token).await?;
    id(listed
        .first()
        .with_context(|| format!("GET {url} listed nothing (is the demo data seeded?)"))?)
}

/// The customer's first card whose ledger account is open (a card's account opens when saldo
/// consumes its card.created event).
async fn card_with_account(
    http: &reqwest::Client,
    base: &str,
    token: &str,
) -> anyhow::Result<String> {
    for card in items(http, format!("{base}/cards?page_size=100"), token).await? {
        let id = id(&card)?;
        let balance = format!("{base}/cards/{id}/balance");
        let (status, _) = call(http, reqwest::Method::GET, balance, Some(token), None).await?;
        if status == 200 {
            return Ok(id);
        }
    }
    bail!("the demo customer has no card with an open account (is the demo data seeded?)")
}

async fn endpoints(http: &reqwest::Client, o: &Options) -> anyhow::Result<Vec<Endpoint>> {
    let base = &o.base;
    let admin: Arc<str> = login(http, base, &o.admin_email, &o.admin_password)
        .await?
        .into();
    let customer: Arc<str> = login(
        http,
        base,
        "customer0001@demo.payments.local",
        crate::demo::DEMO_PASSWORD,
    )
    .await?
    .into();
    let owner: Arc<str> = login(
        http,
        base,
        "merchant001@demo.payments.local",
        crate::demo::DEMO_PASSWORD,
    )
    .await?
    .into();
    let card = card_with_account(http, base, &customer).await?;
    let merchant = first_id(http, format!("{base}/merchants"), &owner).await?;
    let key = first_id(
        http,
        format!("{base}/merchants/{merchant}/api-keys"),
        &owner,
    )
    .await?;

    let now = chrono::Utc::now();
    let (year, month) = (now.year(), now.month());
    let mut list = Vec::new();
    let mut add = |name: String, path: String, token: &Arc<str>| {
        list.push(Endpoint {
            name,
            path,
            token: token.clone(),
        });
    };
    let reports = [
        "monthly-amounts",
        "yearly-amounts",
        "monthly-methods",
        "yearly-methods",
        "monthly-status",
        "yearly-status",
    ];
    let mut scopes: Vec<(&str, &str, String, &Arc<str>)> = Vec::new();
    for kind in ["topups", "withdraws", "transfers", "payments"] {
        scopes.push((kind, "all", String::new(), &admin));
        scopes.push((kind, "card", format!("&card_id={card}"), &customer));
    }
    scopes.push((
        "transfers",
        "received",
        format!("&card_id={card}&direction=received"),
        &customer,
    ));
    scopes.push((
        "payments",
        "merchant",
        format!("&merchant_id={merchant}"),
        &owner,
    ));
    scopes.push(("payments", "api_key", format!("&api_key_id={key}"), &owner));
    for (kind, scope, query, token) in scopes {
        for report in reports {
            let month = if report == "monthly-status" {
                format!("&month={month}")
            } else {
                String::new()
            };
            add(
                format!("{kind}/{report} [{scope}]"),
                format!("/stats/{kind}/{report}?year={year}{month}{query}"),
                token,
            );
        }
    }
    for (scope, query, token) in [
        ("all", String::new(), &admin),
        ("card", format!("&card_id={card}"), &customer),
        ("merchant", format!("&merchant_id={merchant}"), &owner),
    ] {
        for report in ["monthly", "yearly", "monthly-total", "yearly-total"] {
            let month = if report == "monthly-total" {
                format!("&month={month}")
            } else {
                String::new()
            };
            add(
                format!("balances/{report} [{scope}]"),
                format!("/stats/balances/{report}?year={year}{month}{query}"),
                token,
            );
        }
    }
    add("dashboard [all]".into(), "/stats/dashboard".into(), &admin);
    add(
        "dashboard [card]".into(),
        format!("/stats/dashboard?card_id={card}"),
        &customer,
    );
    Ok(list)
}

/// Sends `n` GETs of `url` from `concurrency` clients; the latencies in µs, sorted.
async fn load(
    http: &reqwest::Client,
    url: &str,
    token: &Arc<str>,
    n: usize,
    concurrency: usize,
) -> anyhow::Result<Vec<u64>> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (http, url, token, next) = (http.clone(), url.to_owned(), token.clone(), next.clone());
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < n {
                let started = Instant::now();
                let response = http.get(&url).bearer_auth(&*token).send().await?;
                let status = response.status().as_u16();
                let body = response.bytes().await?;
                latencies.push(started.elapsed().as_micros() as u64);
                if status != 200 {
                    bail!("GET {url}: {status} {}", String::from_utf8_lossy(&body));
                }
            }
            Ok(latencies)
        });
    }
    let mut all = Vec::with_capacity(n);
    while let Some(done) = tasks.join_next().await {
        all.extend(done??);
    }
    all.sort_unstable();
    Ok(all)
}

/// Runs the benchmark and prints its figures.
pub async fn run(o: Options) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(o.concurrency.max(8))
        .timeout(Duration::from_secs(30))
        .build()?;
    let list = endpoints(&http, &o).await?;
    println!(
        "statistics endpoints through NGINX, data set {}: {} endpoints; each gets {} warm-up \
         requests, then {} requests from 1 client (latency), then {} from {} clients (throughput)",
        o.label,
        list.len(),
        o.warmup,
        o.requests,
        o.requests,
        o.concurrency
    );
    println!(
        "  {:<38} {:>8} {:>8} {:>8} | {:>9} {:>8}",
        "endpoint",
        "p50 ms",
        "p99 ms",
        "max ms",
        format!("c={} req/s", o.concurrency),
        "p99 ms"
    );
    let mut p99s = Vec::new();
    let started = Instant::now();
    for e in &list {
        let url = format!("{}{}", o.base, e.path);
        load(&http, &url, &e.token, o.warmup, 1).await?;
        let one = load(&http, &url, &e.token, o.requests, 1).await?;
        let (p50, p99, max) = (
            percentile(&one, 50.0),
            percentile(&one, 99.0),
            percentile(&one, 100.0),
        );
        let t = Instant::now();
        let many = load(&http, &url, &e.token, o.requests, o.concurrency).await?;
        let rate = many.len() as f64 / t.elapsed().as_secs_f64();
        let p99_many = percentile(&many, 99.0);
        p99s.push(p99);
        println!(
            "  {:<38} {p50:>8.2} {p99:>8.2} {max:>8.2} | {rate:>9.0} {p99_many:>8.2}",
            e.name
        );
        println!(
            "RESULT label={} endpoint={} p50_ms={p50:.2} p99_ms={p99:.2} max_ms={max:.2} \
             rps_c{}={rate:.0} p99_c{}_ms={p99_many:.2}",
            o.label,
            e.name.replace(' ', "_"),
            o.concurrency,
            o.concurrency
        );
    }
    p99s.sort_by(f64::total_cmp);
    println!(
        "SUMMARY label={} endpoints={} worst_p99_ms={:.2} median_p99_ms={:.2} seconds={:.0}",
        o.label,
        list.len(),
        p99s.last().copied().unwrap_or(0.0),
        p99s.get(p99s.len() / 2).copied().unwrap_or(0.0),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
