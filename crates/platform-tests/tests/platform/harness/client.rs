//! Talking to a platform over HTTP through NGINX, and the identity steps every test needs
//! (log in, register, verify, reset a password).

use super::*;

impl Platform {
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
                jwt: jwt_for("seeder"),
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
            jwt: jwt_for("seeder"),
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
