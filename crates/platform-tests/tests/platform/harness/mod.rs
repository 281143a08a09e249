//! The harness of the platform tests. [`boot`] starts a platform for one test: a fresh
//! database, every service, the gateway and NGINX (from the project's template), all on
//! loopback with real PostgreSQL, Redis, Apache Kafka and SMTP (the processes themselves are
//! `testkit`'s: db, kafka, nginx, smtp). [`client`] speaks HTTP to it as users do,
//! [`fixtures`] makes customers, cards and merchants, [`contract`] checks every published
//! event against the catalogue.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(dead_code)]

pub mod boot;
pub mod client;
pub mod contract;
pub mod fixtures;
pub mod receiver;

pub use boot::{Platform, common};
pub use client::{email, token_in_mail};
pub use fixtures::{Card, Merchant};

use std::time::Duration;

use platform::auth::JwtConfig;
use platform::config::{BoundListener, CommonConfig};
use platform::shutdown::Shutdown;
use reqwest::StatusCode;
use serde_json::{Value, json};

pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const ADMIN_PASSWORD: &str = "Demo-Platform-2026!";
pub const PASSWORD: &str = "Correct-Horse-42";

/// One Ed25519 key pair per signing workload, for this test process.
pub fn keys() -> &'static platform::auth::keys::GeneratedKeys {
    static KEYS: std::sync::OnceLock<platform::auth::keys::GeneratedKeys> =
        std::sync::OnceLock::new();
    KEYS.get_or_init(platform::auth::keys::GeneratedKeys::new)
}

/// The JWT settings of workload `name` (see [`platform::auth::keys::GeneratedKeys::config`]).
pub fn jwt_for(name: &str) -> JwtConfig {
    keys().config(name)
}

pub const CVV_KEY: &str = "test-cvv-key-test-cvv-key-0123456789";
pub const PAN_KEY: &str = "test-pan-key-test-pan-key-0123456789";

/// The key the user and email services derive one-time link tokens with.
pub fn link_key() -> platform::link_token::LinkTokenKey {
    platform::link_token::LinkTokenKey::new("test-one-time-token-key-0123456789abcdef").unwrap()
}

pub struct Options {
    pub rate_limit_per_minute: u64,
    pub login_max_failures: u32,
    /// Password hashes at once, and waiting.
    pub password_hash_concurrency: usize,
    pub password_hash_queue: usize,
    pub emails_per_recipient_per_hour: u32,
    /// CVV mismatches one merchant key may cause across cards per hour.
    pub cvv_failures_per_key: i32,
    /// Calls per principal and minute through the public gRPC port.
    pub edge_rate_limit_per_minute: u64,
    /// SMTP attempts per email before it is dead-lettered.
    pub email_max_attempts: i32,
    /// The dead-letter topic of the email consumer (tests that read it use their own).
    pub dead_letter_topic: Option<String>,
    /// Replicas of every service and of the gateway (`REPLICAS`, default 1).
    pub replicas: usize,
    /// Failed webhook attempts in a row that disable an endpoint (tests of other things
    /// never reach it).
    pub webhook_disable_after_failures: u32,
    /// Time a webhook receiver has to answer.
    pub webhook_timeout: Duration,
    /// How long an authorization holds money before the expiry job releases it.
    pub authorization_ttl: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            rate_limit_per_minute: 1_000_000,
            login_max_failures: 5,
            password_hash_concurrency: 4,
            password_hash_queue: 64,
            emails_per_recipient_per_hour: 5,
            cvv_failures_per_key: 20,
            edge_rate_limit_per_minute: 1_000_000,
            email_max_attempts: 50,
            dead_letter_topic: None,
            replicas: std::env::var("REPLICAS")
                .ok()
                .and_then(|r| r.parse().ok())
                .unwrap_or(1),
            webhook_disable_after_failures: 10_000,
            webhook_timeout: Duration::from_secs(5),
            authorization_ttl: Duration::from_secs(7 * 86_400),
        }
    }
}

/// Webhook settings of a test platform: the test's receivers listen on 127.0.0.1 over plain
/// HTTP (allowed for that host only), and retries come after a second or two, not hours.
pub fn webhook_config(group: &str, options: &Options) -> merchant_service::webhooks::WebhookConfig {
    merchant_service::webhooks::WebhookConfig {
        group: group.to_owned(),
        secrets_key: platform::Secret::new("webhook-secrets-key-of-the-test-platforms".to_owned()),
        retry_schedule: merchant_service::webhooks::parse_schedule("0.5,1,1,1.5,2,2,2,2,2,2")
            .unwrap(),
        disable_after_failures: options.webhook_disable_after_failures,
        disable_after: Duration::ZERO,
        allow_hosts: vec!["127.0.0.1".to_owned()],
        timeout: options.webhook_timeout,
        poll_interval: Duration::from_millis(100),
    }
}

/// Settings of a movement service in tests: fast recovery, default limits.
pub fn movement_config(
    kind: movement::Kind,
    database_url: &str,
    listener: &BoundListener,
    card_url: &str,
    saldo_url: &str,
    providers: Option<movement::provider::ProviderSettings>,
) -> movement::app::Config {
    movement::app::Config {
        common: common(&format!("{}-service", kind.name()), database_url, listener),
        card_service_url: card_url.to_owned(),
        saldo_service_url: saldo_url.to_owned(),
        rules: movement::Rules {
            min_amount: 100,
            max_amount: 100_000_000,
            methods: movement::DEFAULT_METHODS
                .iter()
                .map(|m| (*m).to_owned())
                .collect(),
        },
        recovery_interval: Duration::from_millis(500),
        recovery_grace: Duration::from_secs(2),
        stats_time_zone: "UTC".into(),
        stats_group: testkit::unique(&format!("{}-stats", kind.name())),
        providers,
    }
}

/// The method routed to `kilat` (the order-based API) first.
pub const KILAT_FIRST: &str = "gopay";

/// The platform's payment providers: two sandbox provider processes, every method routed to
/// `sandpay` first and `kilat` second (but [`KILAT_FIRST`]), callbacks through NGINX on
/// `nginx_http_port`.
pub fn provider_settings(
    sandpay: &testkit::sandbox::SandboxProvider,
    kilat: &testkit::sandbox::SandboxProvider,
    nginx_http_port: u16,
) -> movement::provider::ProviderSettings {
    let config = |s: &testkit::sandbox::SandboxProvider| providers::ProviderConfig {
        name: s.name.clone(),
        dialect: s.dialect.parse().unwrap(),
        base_url: s.base_url.clone(),
        api_key: s.api_key.clone(),
        webhook_secret: s.webhook_secret.clone(),
        tolerance: Duration::from_secs(300),
        timeout: Duration::from_secs(2),
    };
    movement::provider::ProviderSettings {
        providers: vec![config(sandpay), config(kilat)],
        routes: movement::DEFAULT_METHODS
            .iter()
            .map(|m| {
                let route = if *m == KILAT_FIRST {
                    vec![kilat.name.clone(), sandpay.name.clone()]
                } else {
                    vec![sandpay.name.clone(), kilat.name.clone()]
                };
                ((*m).to_owned(), route)
            })
            .collect(),
        breaker: providers::BreakerConfig {
            failures: 3,
            open_for: Duration::from_secs(2),
        },
        callback_base_url: format!("http://127.0.0.1:{nginx_http_port}"),
    }
}
