//! Boots the identity slice of the platform for one test: a fresh database, the role and user
//! services, the gateway and NGINX (from the project's template), all on loopback with real
//! PostgreSQL, Redis and the Kafka-compatible broker.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(dead_code)]

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

pub struct Options {
    pub rate_limit_per_minute: u64,
    pub login_max_failures: u32,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            rate_limit_per_minute: 10_000,
            login_max_failures: 5,
        }
    }
}

pub struct Platform {
    pub nginx: testkit::Nginx,
    pub base: String,
    pub http: reqwest::Client,
    pub user_grpc: String,
    pub role_grpc: String,
    pub database_url: String,
    shutdown: Shutdown,
}

impl Drop for Platform {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

fn common(name: &str, database_url: &str, grpc_port: u16) -> CommonConfig {
    CommonConfig {
        service_name: name.into(),
        grpc_addr: format!("127.0.0.1:{grpc_port}").parse().unwrap(),
        admin_addr: "127.0.0.1:0".parse().unwrap(),
        database_url: platform::Secret::new(database_url.to_owned()),
        database_max_connections: 10,
        redis_url: platform::Secret::new(testkit::redis_url()),
        kafka_brokers: testkit::kafka_brokers(),
        jwt: jwt(),
        migrate_on_start: true,
    }
}

impl Platform {
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> Self {
        let _ = platform::telemetry::install_metrics();
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
        })
        .await
        .unwrap();
        tokio::spawn(user.run(shutdown.clone()));

        let gateway = gateway::Application::build(gateway::Config {
            http_addr: "127.0.0.1:0".parse().unwrap(),
            admin_addr: "127.0.0.1:0".parse().unwrap(),
            user_service_url: user_url.clone(),
            role_service_url: role_url.clone(),
            redis_url: platform::Secret::new(testkit::redis_url()),
            jwt: jwt(),
            rate_limit_per_minute: options.rate_limit_per_minute,
            rate_limit_anonymous_per_minute: options.rate_limit_per_minute,
            grpc_deadline: Duration::from_secs(10),
            body_limit_bytes: 64 * 1024,
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
            ],
        )
        .await
        .unwrap();
        let base = format!("{}/api/v1", nginx.url());
        Self {
            nginx,
            base,
            http: reqwest::Client::new(),
            user_grpc: user_url,
            role_grpc: role_url,
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
        let mut request = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base));
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

    /// The one-time token of the newest `event_type` event for `email` on the user topic.
    pub async fn token_from_event(&self, event_type: &str, email: &str) -> String {
        let reader = testkit::topic_reader(events::topics::USER_EVENTS).unwrap();
        let mut found = None;
        // Read until no newer matching event arrives for a moment; keep the last match.
        while let Ok(token) = testkit::next_matching(
            &reader,
            Duration::from_secs(if found.is_some() { 1 } else { 20 }),
            |v| {
                (v["type"] == event_type && v["data"]["email"] == email)
                    .then(|| v["data"]["token"].as_str().unwrap().to_owned())
            },
        )
        .await
        {
            found = Some(token);
        }
        found.unwrap_or_else(|| panic!("no {event_type} event for {email}"))
    }

    /// Registers, verifies (token from the Kafka event) and waits for the customer role.
    pub async fn verified_customer(&self, email: &str) -> (String, Value) {
        let (status, body) = self
            .post("/auth/register", None, json!({"email": email, "password": PASSWORD, "first_name": "Ana", "last_name": "Silva"}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let id = body["id"].as_str().unwrap().to_owned();
        let token = self.token_from_event("user.registered", email).await;
        let (status, body) = self
            .post("/auth/verify-email", None, json!({"token": token}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["email_verified"], true);
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

pub fn email(prefix: &str) -> String {
    format!("{}@example.com", testkit::unique(prefix))
}
