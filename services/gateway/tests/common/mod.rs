//! Boots the platform for one test: a fresh database, every domain service built so far, the
//! gateway and NGINX (from the project's template), all on loopback with real PostgreSQL,
//! Redis and the Kafka-compatible broker.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(dead_code)]

pub mod contract;

use std::time::Duration;

use platform::auth::JwtConfig;
use platform::config::CommonConfig;
use platform::shutdown::Shutdown;
use reqwest::StatusCode;
use serde_json::{Value, json};

pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const ADMIN_PASSWORD: &str = "Demo-Platform-2026!";
pub const PASSWORD: &str = "Correct-Horse-42";

pub fn jwt() -> JwtConfig {
    JwtConfig {
        secret: platform::Secret::new(testkit::JWT_SECRET.to_owned()),
        issuer: "payments-platform".into(),
        audience: "payments-api".into(),
        access_ttl: Duration::from_secs(900),
    }
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
        }
    }
}

/// Settings of a movement service in tests: fast recovery, default limits.
pub fn movement_config(
    kind: movement::Kind,
    database_url: &str,
    port: u16,
    card_url: &str,
    saldo_url: &str,
) -> movement::app::Config {
    movement::app::Config {
        common: common(&format!("{}-service", kind.name()), database_url, port),
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
    }
}

pub struct Platform {
    pub nginx: testkit::Nginx,
    pub smtp: testkit::Smtp,
    pub merchant_grpc: String,
    pub transaction_grpc: String,
    pub topup_grpc: String,
    pub withdraw_grpc: String,
    pub base: String,
    pub http: reqwest::Client,
    pub user_grpc: String,
    pub role_grpc: String,
    pub card_grpc: String,
    pub saldo_grpc: String,
    pub transfer_grpc: String,
    pub database_url: String,
    shutdown: Shutdown,
}

impl Drop for Platform {
    /// Stops the services, then checks every event they published against the catalogue
    /// (on a thread of its own: this runs inside the test's runtime).
    fn drop(&mut self) {
        self.shutdown.trigger();
        if std::thread::panicking() {
            return;
        }
        let url = self.database_url.clone();
        let checked = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|rt| rt.block_on(contract::published_events_match_the_catalogue(&url)))
        })
        .join();
        match checked {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("{e:#}"),
            Err(_) => panic!("checking the published events panicked"),
        }
    }
}

/// Calls per principal and minute through the public gRPC port, for the services built next
/// (one platform per test process).
static EDGE_LIMIT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1_000_000);

pub fn common(name: &str, database_url: &str, grpc_port: u16) -> CommonConfig {
    CommonConfig {
        service_name: name.into(),
        grpc_addr: format!("127.0.0.1:{grpc_port}").parse().unwrap(),
        admin_addr: "127.0.0.1:0".parse().unwrap(),
        database_url: platform::Secret::new(database_url.to_owned()),
        database_max_connections: 6,
        redis_url: platform::Secret::new(testkit::redis_url()),
        kafka_brokers: testkit::kafka_brokers(),
        jwt: jwt(),
        migrate_on_start: true,
        edge_rate_limit_per_minute: EDGE_LIMIT.load(std::sync::atomic::Ordering::Relaxed),
    }
}

impl Platform {
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> Self {
        EDGE_LIMIT.store(
            options.edge_rate_limit_per_minute,
            std::sync::atomic::Ordering::Relaxed,
        );
        // Tracing as in the binaries, so trace ids exist and propagate (one per process).
        static TELEMETRY: std::sync::OnceLock<Option<platform::telemetry::TelemetryGuard>> =
            std::sync::OnceLock::new();
        TELEMETRY.get_or_init(|| platform::telemetry::init("platform-tests").ok());
        // Topics of its own: consumers never wait behind other tests' events (one process
        // per test under nextest; a second platform of the same test shares them).
        events::topics::set_namespace(&format!("{}.", testkit::unique("t")));
        let database_url = testkit::fresh_database().await.unwrap();
        let shutdown = Shutdown::new();
        let (user_port, role_port) = (testkit::free_port(), testkit::free_port());
        let user_url = format!("http://127.0.0.1:{user_port}");
        let role_url = format!("http://127.0.0.1:{role_port}");

        let role = role_service::Application::build(role_service::Config {
            common: common("role-service", &database_url, role_port),
            user_service_url: user_url.clone(),
            user_events_group: testkit::unique("role-user-events"),
        })
        .await
        .unwrap();
        tokio::spawn(role.run(shutdown.clone()));

        let user = user_service::Application::build(user_service::Config {
            common: common("user-service", &database_url, user_port),
            role_service_url: role_url.clone(),
            lifetimes: user_service::service::TokenLifetimes {
                refresh: Duration::from_secs(3600),
                verification: Duration::from_secs(3600),
                password_reset: Duration::from_secs(3600),
            },
            login_max_failures: options.login_max_failures,
            login_failure_window: Duration::from_secs(900),
            login_lockout: Duration::from_secs(900),
            link_key: link_key(),
            password_hash_concurrency: options.password_hash_concurrency,
            password_hash_queue: options.password_hash_queue,
            password_hash_wait: Duration::from_secs(5),
            emails_per_recipient_per_hour: options.emails_per_recipient_per_hour,
        })
        .await
        .unwrap();
        tokio::spawn(user.run(shutdown.clone()));

        let [
            card_port,
            saldo_port,
            topup_port,
            withdraw_port,
            transfer_port,
        ] = std::array::from_fn(|_| testkit::free_port());
        let url = |port: u16| format!("http://127.0.0.1:{port}");
        let (card_url, saldo_url) = (url(card_port), url(saldo_port));

        let smtp = testkit::Smtp::start().await.unwrap();
        let [merchant_port, transaction_port, email_port] =
            std::array::from_fn(|_| testkit::free_port());

        let saldo = saldo_service::Application::build(saldo_service::Config {
            common: common("saldo-service", &database_url, saldo_port),
            card_events_group: testkit::unique("saldo-card-events"),
            stats_time_zone: "UTC".into(),
            stats_group: testkit::unique("saldo-stats"),
        })
        .await
        .unwrap();
        tokio::spawn(saldo.run(shutdown.clone()));

        let card = card_service::Application::build(card_service::Config {
            common: common("card-service", &database_url, card_port),
            user_service_url: user_url.clone(),
            saldo_service_url: saldo_url.clone(),
            cvv_key: platform::Secret::new(CVV_KEY.to_owned()),
            pan_key: platform::Secret::new(PAN_KEY.to_owned()),
            currencies: vec!["IDR".into(), "USD".into()],
            cvv_lockout: card_service::service::CvvLockout {
                max_attempts: 3,
                lock_for: Duration::from_secs(600),
                per_key_max_failures: options.cvv_failures_per_key,
                per_key_window: Duration::from_secs(3600),
            },
        })
        .await
        .unwrap();
        tokio::spawn(card.run(shutdown.clone()));

        let merchant = merchant_service::Application::build(merchant_service::Config {
            common: common("merchant-service", &database_url, merchant_port),
            user_service_url: user_url.clone(),
            saldo_service_url: saldo_url.clone(),
            currencies: vec!["IDR".into(), "USD".into()],
        })
        .await
        .unwrap();
        tokio::spawn(merchant.run(shutdown.clone()));

        let transaction = transaction_service::Application::build(transaction_service::Config {
            common: common("transaction-service", &database_url, transaction_port),
            card_service_url: card_url.clone(),
            saldo_service_url: saldo_url.clone(),
            merchant_service_url: url(merchant_port),
            rules: transaction_service::payments::Rules {
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
            stats_group: testkit::unique("payment-stats"),
        })
        .await
        .unwrap();
        tokio::spawn(transaction.run(shutdown.clone()));

        let email = email_service::Application::build(email_service::Config {
            common: common("email-service", &database_url, email_port),
            user_service_url: user_url.clone(),
            smtp: email_service::mailer::SmtpConfig {
                host: "127.0.0.1".into(),
                port: smtp.port(),
                tls: email_service::mailer::TlsMode::None,
                credentials: None,
                timeout: Duration::from_secs(5),
                from: "Payments <no-reply@payments.test>".into(),
            },
            settings: email_service::handler::Settings {
                brand: "Payments".into(),
                base_url: "http://payments.test".into(),
                max_attempts: options.email_max_attempts,
                link_key: link_key(),
            },
            templates_dir: None,
            group: testkit::unique("email"),
            dead_letter_topic: options.dead_letter_topic.clone(),
            retry_initial: Duration::from_millis(200),
            retry_max: Duration::from_secs(1),
            concurrency: 8,
        })
        .await
        .unwrap();
        tokio::spawn(email.run(shutdown.clone()));

        let topup = topup_service::build(movement_config(
            movement::Kind::Topup,
            &database_url,
            topup_port,
            &card_url,
            &saldo_url,
        ))
        .await
        .unwrap();
        let routes = topup_service::routes(&topup);
        tokio::spawn(topup.run(routes, shutdown.clone()));
        let withdraw = withdraw_service::build(movement_config(
            movement::Kind::Withdraw,
            &database_url,
            withdraw_port,
            &card_url,
            &saldo_url,
        ))
        .await
        .unwrap();
        let routes = withdraw_service::routes(&withdraw);
        tokio::spawn(withdraw.run(routes, shutdown.clone()));
        let transfer = transfer_service::build(movement_config(
            movement::Kind::Transfer,
            &database_url,
            transfer_port,
            &card_url,
            &saldo_url,
        ))
        .await
        .unwrap();
        let routes = transfer_service::routes(&transfer);
        tokio::spawn(transfer.run(routes, shutdown.clone()));

        let gateway = gateway::Application::build(gateway::Config {
            http_addr: "127.0.0.1:0".parse().unwrap(),
            admin_addr: "127.0.0.1:0".parse().unwrap(),
            user_service_url: user_url.clone(),
            role_service_url: role_url.clone(),
            card_service_url: card_url.clone(),
            saldo_service_url: saldo_url.clone(),
            topup_service_url: url(topup_port),
            withdraw_service_url: url(withdraw_port),
            transfer_service_url: url(transfer_port),
            merchant_service_url: url(merchant_port),
            transaction_service_url: url(transaction_port),
            redis_url: platform::Secret::new(testkit::redis_url()),
            jwt: jwt(),
            rate_limit_per_minute: options.rate_limit_per_minute,
            rate_limit_anonymous_per_minute: options.rate_limit_per_minute,
            grpc_deadline: Duration::from_secs(10),
            body_limit_bytes: 64 * 1024,
            kafka_brokers: testkit::kafka_brokers(),
        })
        .await
        .unwrap();
        let gateway_addr = gateway.http_addr();
        tokio::spawn(gateway.run(shutdown.clone()));

        let nginx = testkit::Nginx::start(
            &gateway_addr.to_string(),
            &[
                ("USER_GRPC_UPSTREAM", format!("127.0.0.1:{user_port}")),
                ("ROLE_GRPC_UPSTREAM", format!("127.0.0.1:{role_port}")),
                ("CARD_GRPC_UPSTREAM", format!("127.0.0.1:{card_port}")),
                ("SALDO_GRPC_UPSTREAM", format!("127.0.0.1:{saldo_port}")),
                ("TOPUP_GRPC_UPSTREAM", format!("127.0.0.1:{topup_port}")),
                (
                    "WITHDRAW_GRPC_UPSTREAM",
                    format!("127.0.0.1:{withdraw_port}"),
                ),
                (
                    "TRANSFER_GRPC_UPSTREAM",
                    format!("127.0.0.1:{transfer_port}"),
                ),
                (
                    "MERCHANT_GRPC_UPSTREAM",
                    format!("127.0.0.1:{merchant_port}"),
                ),
                (
                    "TRANSACTION_GRPC_UPSTREAM",
                    format!("127.0.0.1:{transaction_port}"),
                ),
            ],
        )
        .await
        .unwrap();
        let base = format!("{}/api/v1", nginx.url());
        Self {
            nginx,
            smtp,
            merchant_grpc: url(merchant_port),
            transaction_grpc: url(transaction_port),
            topup_grpc: url(topup_port),
            withdraw_grpc: url(withdraw_port),
            base,
            http: reqwest::Client::new(),
            user_grpc: user_url,
            role_grpc: role_url,
            card_grpc: card_url,
            saldo_grpc: saldo_url,
            transfer_grpc: url(transfer_port),
            database_url,
            shutdown,
        }
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call_with(method, path, token, body, &[]).await
    }

    pub async fn call_with(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.call("POST", path, token, Some(body)).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.call("GET", path, token, None).await
    }

    /// Where the demo seeder finds every service of this platform.
    pub fn demo_services(&self) -> seeders::demo::Services {
        seeders::demo::Services {
            target: seeders::Target {
                user_service_url: self.user_grpc.clone(),
                role_service_url: self.role_grpc.clone(),
                jwt: jwt(),
            },
            card: self.card_grpc.clone(),
            saldo: self.saldo_grpc.clone(),
            topup: self.topup_grpc.clone(),
            withdraw: self.withdraw_grpc.clone(),
            transfer: self.transfer_grpc.clone(),
            merchant: self.merchant_grpc.clone(),
            transaction: self.transaction_grpc.clone(),
        }
    }

    /// Ensures the admin through the seeder and logs in.
    pub async fn admin_token(&self) -> String {
        let target = seeders::Target {
            user_service_url: self.user_grpc.clone(),
            role_service_url: self.role_grpc.clone(),
            jwt: jwt(),
        };
        seeders::ensure_admin(&target, ADMIN_EMAIL, ADMIN_PASSWORD)
            .await
            .unwrap();
        self.login(ADMIN_EMAIL, ADMIN_PASSWORD).await["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn login(&self, email: &str, password: &str) -> Value {
        let (status, body) = self
            .post(
                "/auth/login",
                None,
                json!({"email": email, "password": password}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "login failed: {body}");
        body
    }

    /// The one-time token of the newest `event_type` event for `email` on the user topic:
    /// the event carries only the token's id, and the token is derived from it with the key
    /// the email service holds (as the email service does for the link it mails).
    pub async fn token_from_event(&self, event_type: &str, email: &str) -> String {
        let reader =
            testkit::topic_reader(&events::topics::physical(events::topics::USER_EVENTS)).unwrap();
        let mut found = None;
        // Read until no newer matching event arrives for a moment; keep the last match.
        while let Ok(token) = testkit::next_matching(
            &reader,
            Duration::from_secs(if found.is_some() { 1 } else { 20 }),
            |v| {
                (v["type"] == event_type && v["data"]["email"] == email).then(|| {
                    assert!(v["data"].get("token").is_none(), "a token in an event: {v}");
                    let purpose = if event_type == events::payloads::user::PASSWORD_RESET_REQUESTED
                    {
                        platform::link_token::RESET_PASSWORD
                    } else {
                        platform::link_token::VERIFY_EMAIL
                    };
                    let id = v["data"]["token_id"].as_str().unwrap().parse().unwrap();
                    link_key().token(purpose, id)
                })
            },
        )
        .await
        {
            found = Some(token);
        }
        found.unwrap_or_else(|| panic!("no {event_type} event for {email}"))
    }

    /// Self-registration of `email` with [`PASSWORD`].
    pub async fn register(&self, email: &str) -> (StatusCode, Value) {
        self.post(
            "/auth/register",
            None,
            json!({"email": email, "password": PASSWORD, "first_name": "Ana", "last_name": "Silva"}),
        )
        .await
    }

    /// Asks for a password reset of `email` and sets `new_password` with the token.
    pub async fn reset_password(&self, email: &str, new_password: &str) {
        let (status, _) = self
            .post("/auth/forgot-password", None, json!({"email": email}))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        let token = self
            .token_from_event("user.password_reset_requested", email)
            .await;
        let (status, body) = self
            .post(
                "/auth/reset-password",
                None,
                json!({"token": token, "new_password": new_password}),
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    }

    /// Registers, verifies (token from the Kafka event) and waits for the customer role.
    pub async fn verified_customer(&self, email: &str) -> (String, Value) {
        let (status, body) = self.register(email).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let token = self.token_from_event("user.registered", email).await;
        let (status, body) = self
            .post("/auth/verify-email", None, json!({"token": token}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["email_verified"], true);
        let id = body["id"].as_str().unwrap().to_owned();
        let tokens = self.login(email, PASSWORD).await;
        let access = tokens["access_token"].as_str().unwrap().to_owned();
        testkit::eventually(
            Duration::from_secs(20),
            "customer role assigned",
            || async {
                let (_, roles) = self.get(&format!("/users/{id}/roles"), Some(&access)).await;
                roles["roles"]
                    .as_array()
                    .filter(|r| r.iter().any(|r| r["name"] == "customer"))
                    .map(|_| ())
            },
        )
        .await;
        // Log in again so the access token carries the role.
        (id, self.login(email, PASSWORD).await)
    }
}

/// The one-time token of the first link in `mail` that starts with `link` (up to `#token=`).
pub fn token_in_mail(mail: &str, link: &str) -> String {
    let at = mail
        .find(link)
        .unwrap_or_else(|| panic!("no {link} in {mail}"))
        + link.len();
    mail[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_' || *c == '.')
        .collect()
}

pub fn email(prefix: &str) -> String {
    format!("{}@example.com", testkit::unique(prefix))
}

/// A merchant as the tests use it.
#[derive(Clone, Debug)]
pub struct Merchant {
    pub id: String,
    pub name: String,
    pub key: String,
    pub key_id: String,
}

/// A card as the tests use it.
#[derive(Clone, Debug)]
pub struct Card {
    pub id: String,
    pub number: String,
    pub cvv: String,
}

impl Platform {
    /// An admin-created, verified customer; returns (user id, access token).
    pub async fn customer(&self, admin: &str) -> (String, String) {
        let (id, token, _) = self.customer_with_email(admin).await;
        (id, token)
    }

    /// Like [`Self::customer`], with the customer's email address.
    pub async fn customer_with_email(&self, admin: &str) -> (String, String, String) {
        let email = email("customer");
        let (status, body) = self
            .post(
                "/users",
                Some(admin),
                json!({"email": email, "password": PASSWORD, "first_name": "Cara",
                       "last_name": "Money", "email_verified": true}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let id = body["id"].as_str().unwrap().to_owned();
        let token = self.login(&email, PASSWORD).await["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        (id, token, email)
    }

    /// A merchant of the user behind `owner_token`, approved by `admin`, with its settlement
    /// account open and one API key.
    pub async fn active_merchant(
        &self,
        admin: &str,
        owner_token: &str,
        currency: &str,
    ) -> Merchant {
        let merchant = self.apply_merchant(owner_token, currency).await;
        let (status, body) = self
            .post(
                &format!("/merchants/{}/status", merchant.id),
                Some(admin),
                json!({"status": "active"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        testkit::eventually(
            Duration::from_secs(20),
            "merchant account opened",
            || async {
                let (status, _) = self
                    .get(
                        &format!("/merchants/{}/balance", merchant.id),
                        Some(owner_token),
                    )
                    .await;
                (status == StatusCode::OK).then_some(())
            },
        )
        .await;
        merchant
    }

    /// A pending merchant with one API key.
    pub async fn apply_merchant(&self, owner_token: &str, currency: &str) -> Merchant {
        let name = format!("Shop {}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let (status, body) = self
            .post(
                "/merchants",
                Some(owner_token),
                json!({"name": name, "currency": currency, "website": "https://shop.example"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["status"], "pending");
        let id = body["id"].as_str().unwrap().to_owned();
        let (status, key) = self
            .post(
                &format!("/merchants/{id}/api-keys"),
                Some(owner_token),
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{key}");
        Merchant {
            id,
            name,
            key: key["api_key"].as_str().unwrap().to_owned(),
            key_id: key["key"]["id"].as_str().unwrap().to_owned(),
        }
    }

    /// A payment by a merchant's key; returns the status, body and response headers.
    pub async fn pay(
        &self,
        api_key: &str,
        idempotency_key: &str,
        body: Value,
    ) -> (StatusCode, Value, reqwest::header::HeaderMap) {
        let response = self
            .http
            .post(format!("{}/payments", self.base))
            .header("X-Api-Key", api_key)
            .header("Idempotency-Key", idempotency_key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
            headers,
        )
    }

    /// A refund by a merchant's key.
    pub async fn refund(
        &self,
        api_key: &str,
        payment_id: &str,
        idempotency_key: &str,
        amount: i64,
    ) -> (StatusCode, Value) {
        self.call_with(
            "POST",
            &format!("/payments/{payment_id}/refunds"),
            None,
            Some(json!({"amount": amount, "reason": "customer returned the goods"})),
            &[("X-Api-Key", api_key), ("Idempotency-Key", idempotency_key)],
        )
        .await
    }

    /// The merchant's settlement balance.
    pub async fn merchant_balance(&self, token: &str, merchant_id: &str) -> i64 {
        let (status, body) = self
            .get(&format!("/merchants/{merchant_id}/balance"), Some(token))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["balance"].as_i64().unwrap()
    }

    /// Creates a card and waits until its ledger account is open (via Kafka).
    pub async fn card(&self, token: &str, currency: &str) -> Card {
        let (status, body) = self
            .post(
                "/cards",
                Some(token),
                json!({"brand": "visa", "card_type": "debit", "currency": currency}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let card = Card {
            id: body["card"]["id"].as_str().unwrap().to_owned(),
            number: body["card"]["number"].as_str().unwrap().to_owned(),
            cvv: body["cvv"].as_str().unwrap().to_owned(),
        };
        testkit::eventually(Duration::from_secs(20), "card account opened", || async {
            let (status, _) = self
                .get(&format!("/cards/{}/balance", card.id), Some(token))
                .await;
            (status == StatusCode::OK).then_some(())
        })
        .await;
        card
    }

    pub async fn balance(&self, token: &str, card_id: &str) -> i64 {
        let (status, body) = self
            .get(&format!("/cards/{card_id}/balance"), Some(token))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["balance"].as_i64().unwrap()
    }

    /// POST with an Idempotency-Key.
    pub async fn post_idem(
        &self,
        path: &str,
        token: &str,
        key: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        self.call_with(
            "POST",
            path,
            Some(token),
            Some(body),
            &[("Idempotency-Key", key)],
        )
        .await
    }

    pub async fn topup(&self, token: &str, number: &str, amount: i64) -> (StatusCode, Value) {
        let key = uuid::Uuid::new_v4().to_string();
        self.post_idem(
            "/topups",
            token,
            &key,
            json!({"card_number": number, "amount": amount, "method": "bca"}),
        )
        .await
    }

    pub async fn transfer(
        &self,
        token: &str,
        from: &str,
        to: &str,
        amount: i64,
    ) -> (StatusCode, Value) {
        let key = uuid::Uuid::new_v4().to_string();
        self.post_idem(
            "/transfers",
            token,
            &key,
            json!({"from_card_number": from, "to_card_number": to, "amount": amount}),
        )
        .await
    }

    pub async fn withdraw(&self, token: &str, number: &str, amount: i64) -> (StatusCode, Value) {
        let key = uuid::Uuid::new_v4().to_string();
        self.post_idem(
            "/withdraws",
            token,
            &key,
            json!({"card_number": number, "amount": amount, "method": "mandiri"}),
        )
        .await
    }

    /// The ledger's reconciliation, asserted balanced.
    pub async fn assert_books_balance(&self, admin: &str) -> Value {
        let (status, report) = self.get("/ledger/reconcile", Some(admin)).await;
        assert_eq!(status, StatusCode::OK, "{report}");
        assert_eq!(report["balanced"], true, "books do not balance: {report}");
        assert_eq!(report["journal_sum"], 0);
        report
    }
}
