//! The attacker's view: each test plays one class of attack through NGINX (HTTP and the public
//! gRPC port) against the real platform and asserts the secure answer — and that nothing
//! moved. Concurrency attacks use at least 40 parallel attempts.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use crate::harness::{PASSWORD, Platform, email};
use reqwest::StatusCode;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

/// An HTTP client whose connections come from `address` (another loopback address: to NGINX,
/// another client).
fn client_from(address: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::from(address)))
        .build()
        .unwrap()
}

async fn post_as(
    client: &reqwest::Client,
    p: &Platform,
    path: &str,
    token: Option<&str>,
    body: &Value,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut request = client.post(format!("{}{path}", p.base)).json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Fires `n` copies of a request at once; returns every answer.
async fn burst(
    p: &Arc<Platform>,
    client: &reqwest::Client,
    n: usize,
    path: &'static str,
    body: impl Fn(usize) -> Value,
) -> Vec<(StatusCode, reqwest::header::HeaderMap, Value)> {
    let attempts: Vec<_> = (0..n)
        .map(|i| {
            let (p, client, body) = (p.clone(), client.clone(), body(i));
            tokio::spawn(async move { post_as(&client, &p, path, None, &body).await })
        })
        .collect();
    let mut answers = Vec::new();
    for attempt in attempts {
        answers.push(attempt.await.unwrap());
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_password_guesses_get_no_more_than_five_answers() {
    let p = Arc::new(Platform::start().await);
    let address = email("guessed");
    p.verified_customer(&address).await;
    let attacker = client_from([127, 0, 0, 21]);

    let answers = burst(
        &p,
        &attacker,
        40,
        "/auth/login",
        |i| json!({"email": address, "password": format!("Wrong-Guess-{i}")}),
    )
    .await;
    let checked = answers
        .iter()
        .filter(|(s, _, _)| *s == StatusCode::UNAUTHORIZED)
        .count();
    let locked = answers
        .iter()
        .filter(|(s, h, b)| {
            *s == StatusCode::TOO_MANY_REQUESTS
                && h.contains_key("retry-after")
                && b["error"]["reason"] == "ACCOUNT_LOCKED"
        })
        .count();
    assert!(checked <= 5, "{checked} guesses were checked");
    assert_eq!(checked + locked, 40, "{answers:?}");

    // The attacker's address stays locked out of the account, even with the right password…
    let (status, _, body) = post_as(
        &attacker,
        &p,
        "/auth/login",
        None,
        &json!({"email": address, "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    // …but the owner, elsewhere, is not: the lockout is no denial of service.
    let owner = client_from([127, 0, 0, 22]);
    let (status, _, body) = post_as(
        &owner,
        &p,
        "/auth/login",
        None,
        &json!({"email": address, "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // A password reset is the owner's way back in from anywhere: it clears every lock.
    p.reset_password(&address, "Brand-New-Secret-9").await;
    let (status, _, body) = post_as(
        &attacker,
        &p,
        "/auth/login",
        None,
        &json!({"email": address, "password": "Brand-New-Secret-9"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_anonymous_logins_is_refused_not_hashed_without_bound() {
    let p = Arc::new(
        Platform::start_with(crate::harness::Options {
            password_hash_concurrency: 1,
            password_hash_queue: 2,
            ..Default::default()
        })
        .await,
    );
    let client = client_from([127, 0, 0, 23]);
    let answers = burst(&p, &client, 48, "/auth/login", |i| {
        json!({"email": format!("nobody-{i}-{}@example.com", testkit::unique("x")), "password": "Whatever-123"})
    })
    .await;
    let busy: Vec<_> = answers
        .iter()
        .filter(|(s, _, _)| *s == StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    // At most one hash runs and two wait: nearly everything else is turned away at once.
    assert!(busy.len() >= 40, "{} of 48 refused", busy.len());
    for (_, headers, body) in &busy {
        assert!(headers.contains_key("retry-after"), "{body}");
        assert_eq!(body["error"]["reason"], "BUSY");
    }
    for (status, _, body) in &answers {
        assert!(
            *status == StatusCode::SERVICE_UNAVAILABLE || *status == StatusCode::UNAUTHORIZED,
            "{status}: {body}"
        );
    }
    // Once the burst is over, logins are served again.
    let address = email("after-burst");
    p.verified_customer(&address).await;
}

/// Two logins of one customer: (access, refresh) of each.
async fn two_sessions(p: &Platform, address: &str, password: &str) -> Vec<(String, String)> {
    let mut sessions = Vec::new();
    for _ in 0..2 {
        let tokens = p.login(address, password).await;
        sessions.push((
            tokens["access_token"].as_str().unwrap().to_owned(),
            tokens["refresh_token"].as_str().unwrap().to_owned(),
        ));
    }
    sessions
}

/// Every access token is refused at once and no refresh token works any more.
async fn assert_sessions_ended(p: &Platform, sessions: &[(String, String)]) {
    for (access, refresh) in sessions {
        let (status, body) = p.get("/auth/me", Some(access)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        let (status, body) = p
            .post("/auth/refresh", None, json!({"refresh_token": refresh}))
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_password_reset_ends_every_session_at_once() {
    let p = Platform::start().await;
    let address = email("reset-ends");
    p.verified_customer(&address).await;
    let sessions = two_sessions(&p, &address, PASSWORD).await;
    p.reset_password(&address, "Reset-Secret-321").await;
    assert_sessions_ended(&p, &sessions).await;
    // A token issued after the reset works.
    let fresh = p.login(&address, "Reset-Secret-321").await;
    let (status, _) = p.get("/auth/me", fresh["access_token"].as_str()).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stolen_session_cannot_change_the_password_or_email_without_the_password() {
    let p = Platform::start().await;
    let address = email("takeover");
    let (id, _) = p.verified_customer(&address).await;
    let sessions = two_sessions(&p, &address, PASSWORD).await;
    let stolen = sessions[0].0.clone();
    let path = format!("/users/{id}");

    // Without, or with a wrong, current password: refused, field named, nothing changed.
    for (body, why) in [
        (json!({"password": "Attacker-Pass-1"}), "is required"),
        (json!({"email": "attacker@example.com"}), "is required"),
        (
            json!({"email": "attacker@example.com", "current_password": "Guess-1234"}),
            "does not match",
        ),
    ] {
        let (status, reply) = p.call("PATCH", &path, Some(&stolen), Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
        assert_eq!(reply["error"]["details"][0]["field"], "current_password");
        assert!(
            reply["error"]["details"][0]["description"]
                .as_str()
                .unwrap()
                .contains(why),
            "{reply}"
        );
    }
    let (_, me) = p.get("/auth/me", Some(&stolen)).await;
    assert_eq!(me["user"]["email"], address.as_str());

    // The owner changes the email with the password: every session ends at once, the new
    // address must be verified again, and the old address is told.
    let new_address = email("moved");
    let (status, reply) = p
        .call(
            "PATCH",
            &path,
            Some(&stolen),
            Some(json!({"email": new_address, "current_password": PASSWORD})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["email_verified"], false);
    assert_sessions_ended(&p, &sessions).await;
    let notice = p
        .smtp
        .wait_for(
            &address,
            "Subject: The email address of your account was changed",
            WAIT,
        )
        .await
        .unwrap();
    assert!(notice.contains(&new_address), "{notice}");
    // Unverified again, the account cannot log in until the new address is verified.
    let (status, reply) = p
        .post(
            "/auth/login",
            None,
            json!({"email": new_address, "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{reply}");
    assert_eq!(reply["error"]["reason"], "EMAIL_NOT_VERIFIED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn trashing_a_user_revoking_a_role_and_logout_everywhere_end_tokens_at_once() {
    let p = Platform::start().await;
    let admin = p.admin_token().await;

    // Trash: the user's live access token is refused at once, and refresh too.
    let address = email("trashed");
    let (id, _) = p.verified_customer(&address).await;
    let sessions = two_sessions(&p, &address, PASSWORD).await;
    let (status, body) = p
        .post(&format!("/users/{id}/trash"), Some(&admin), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_sessions_ended(&p, &sessions).await;

    // A revoked role: the token carrying it stops working at once.
    let (helper_id, helper) = p.customer(&admin).await;
    let (status, body) = p
        .post(
            &format!("/users/{helper_id}/roles"),
            Some(&admin),
            json!({"role": "admin"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    drop(helper);
    let helper_email = {
        let (_, user) = p.get(&format!("/users/{helper_id}"), Some(&admin)).await;
        user["email"].as_str().unwrap().to_owned()
    };
    let empowered = p.login(&helper_email, PASSWORD).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = p.get("/users", Some(&empowered)).await;
    assert_eq!(status, StatusCode::OK, "the role works while held");
    let (status, body) = p
        .call(
            "DELETE",
            &format!("/users/{helper_id}/roles/admin"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = p.get("/users", Some(&empowered)).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the revoked role's token is dead"
    );

    // Logout everywhere.
    let address = email("everywhere");
    p.verified_customer(&address).await;
    let sessions = two_sessions(&p, &address, PASSWORD).await;
    let (status, body) = p
        .post(
            "/auth/logout",
            Some(&sessions[0].0),
            json!({"all_sessions": true}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_sessions_ended(&p, &sessions).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_seeder_never_promotes_an_account_it_did_not_create() {
    let p = Platform::start().await;
    // Someone registers the address the operator will use for the admin…
    let address = email("would-be-admin");
    let (id, tokens) = p.verified_customer(&address).await;
    let target = seeders::Target {
        user_service_url: p.user_grpc.clone(),
        role_service_url: p.role_grpc.clone(),
        jwt: crate::harness::jwt_for("seeder"),
    };
    // …and the seeder refuses, loudly, instead of promoting them.
    let refused = seeders::ensure_admin(&target, &address, "Operator-Chosen-1")
        .await
        .unwrap_err();
    assert!(
        format!("{refused:#}").contains("refusing to promote"),
        "{refused:#}"
    );
    let (_, roles) = p
        .get(
            &format!("/users/{id}/roles"),
            tokens["access_token"].as_str(),
        )
        .await;
    assert!(
        !roles.to_string().contains("\"admin\""),
        "the account was promoted: {roles}"
    );
    // An account the seeder created stays its own: running it again is fine.
    let admin = email("real-admin");
    seeders::ensure_admin(&target, &admin, "Operator-Chosen-1")
        .await
        .unwrap();
    seeders::ensure_admin(&target, &admin, "Operator-Chosen-1")
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delegated_permissions_do_not_reach_admin() {
    let p = Platform::start().await;
    let admin = p.admin_token().await;
    let (_, admin_me) = p.get("/auth/me", Some(&admin)).await;
    let admin_id = admin_me["user"]["id"].as_str().unwrap().to_owned();

    // A support role that may assign roles and manage users, given to a customer.
    let (status, body) = p
        .post(
            "/roles",
            Some(&admin),
            json!({"name": "support", "description": "helpdesk",
                   "permissions": ["roles.assign", "roles.read", "users.read", "users.write"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = p
        .post(
            "/roles",
            Some(&admin),
            json!({"name": "auditor", "description": "reads the ledger",
                   "permissions": ["saldo.read"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (support_id, _, support_email) = p.customer_with_email(&admin).await;
    let (status, body) = p
        .post(
            &format!("/users/{support_id}/roles"),
            Some(&admin),
            json!({"role": "support"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let support = p.login(&support_email, PASSWORD).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // Assigning admin to themselves, or a role with permissions they do not hold: refused.
    for role in ["admin", "auditor"] {
        let (status, body) = p
            .post(
                &format!("/users/{support_id}/roles"),
                Some(&support),
                json!({"role": role}),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{role}: {body}");
    }
    // Changing an admin's password or email, or trashing an admin: refused.
    let (status, body) = p
        .call(
            "PATCH",
            &format!("/users/{admin_id}"),
            Some(&support),
            Some(json!({"password": "Support-Owns-You-1"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = p
        .call(
            "PATCH",
            &format!("/users/{admin_id}"),
            Some(&support),
            Some(json!({"email": "support@example.com"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // The system customer role's permissions are fixed, even for an admin.
    let (_, roles) = p.get("/roles?search=customer", Some(&admin)).await;
    let customer_role = roles["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "customer")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = p
        .call(
            "PATCH",
            &format!("/roles/{customer_role}"),
            Some(&admin),
            Some(json!({"permissions": ["users.write"]})),
        )
        .await;
    assert!(status.is_client_error(), "{status}: {body}");
    // Nothing moved: the admin still logs in with the old password; the support user holds
    // only what they were given.
    p.login(crate::harness::ADMIN_EMAIL, crate::harness::ADMIN_PASSWORD)
        .await;
    let (_, grants) = p
        .get(&format!("/users/{support_id}/roles"), Some(&admin))
        .await;
    let held = grants.to_string();
    assert!(
        held.contains("\"support\"")
            && !held.contains("\"admin\"")
            && !held.contains("\"auditor\""),
        "{grants}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_internal_rpc_is_not_reachable_through_the_edge() {
    use proto::user::v1::auth_service_client::AuthServiceClient;

    let p = Platform::start().await;
    let edge =
        tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{}", p.nginx.grpc_port))
            .unwrap()
            .connect()
            .await
            .unwrap();
    // Every internal method (the list the allow-list test holds NGINX to), called by its path.
    for path in proto::INTERNAL_METHODS {
        let mut grpc = tonic::client::Grpc::new(edge.clone());
        grpc.ready().await.unwrap();
        let status = grpc
            .unary::<(), (), _>(
                tonic::Request::new(()),
                path.parse().unwrap(),
                tonic_prost::ProstCodec::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unimplemented, "{path}");
    }
    // A public method is served: wrong credentials get the service's own answer.
    let status = AuthServiceClient::new(edge)
        .login(proto::user::v1::LoginRequest {
            email: "nobody@example.com".into(),
            password: "Whatever-123".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stolen_workload_key_signs_only_what_its_workload_may() {
    use platform::auth::TokenIssuer;
    use proto::saldo::v1::saldo_service_client::SaldoServiceClient;

    let p = Platform::start().await;
    let admin = p.admin_token().await;
    let (status, me) = p.get("/auth/me", Some(&admin)).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    let admin_id = uuid::Uuid::parse_str(me["user"]["id"].as_str().unwrap()).unwrap();
    let perms: Vec<String> = me["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert!(perms.iter().any(|p| p == "users.write"), "{me}");

    // The card service's key (a compromised card pod, say) minting the admin's own token,
    // with the admin's permissions: only the user service's key signs users' tokens.
    let card = TokenIssuer::new(&crate::harness::jwt_for("card-service")).unwrap();
    let forged = card
        .access_token(admin_id, vec!["admin".into()], perms.clone())
        .unwrap();
    let (status, body) = p.get("/users", Some(forged.token.expose())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["reason"], "INVALID_TOKEN");
    // The old scheme, HS256 with a shared secret, is not accepted at all.
    let hs256 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": admin_id, "iss": "payments-platform", "aud": "payments-api",
                "exp": chrono::Utc::now().timestamp() + 600, "iat": chrono::Utc::now().timestamp(),
                "jti": uuid::Uuid::now_v7(), "typ": "access", "roles": ["admin"], "perms": perms}),
        &jsonwebtoken::EncodingKey::from_secret(&[7; 48]),
    )
    .unwrap();
    let (status, _) = p.get("/users", Some(&hs256)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // On the internal network, straight at the ledger: the card service's key cannot post
    // (its grants do not include saldo.post), nor speak for the topup service.
    let ledger = SaldoServiceClient::new(platform::grpc::channel(&p.saldo_grpc).unwrap());
    let post = |token: String| {
        let mut ledger = ledger.clone();
        async move {
            ledger
                .post(platform::grpc::outgoing(
                    proto::saldo::v1::PostRequest {
                        posting_id: uuid::Uuid::now_v7().to_string(),
                        kind: "topup".into(),
                        amount: 0,
                        currency: "IDR".into(),
                        ..Default::default()
                    },
                    Some(&token),
                    Duration::from_secs(5),
                ))
                .await
                .unwrap_err()
        }
    };
    let beyond = card.service_token(&["saldo.post"]).unwrap();
    let refused = post(beyond.token.expose().to_owned()).await;
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");
    let mut impostor = crate::harness::jwt_for("card-service");
    impostor.key_id = "topup-service".into();
    let posing = TokenIssuer::new(&impostor)
        .unwrap()
        .service_token(&["saldo.post"])
        .unwrap();
    let refused = post(posing.token.expose().to_owned()).await;
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");
    // The topup service's own key may post: the same request gets as far as validation.
    let topup = TokenIssuer::new(&crate::harness::jwt_for("topup-service"))
        .unwrap()
        .service_token(&["saldo.post"])
        .unwrap();
    let validated = post(topup.token.expose().to_owned()).await;
    assert_eq!(
        validated.code(),
        tonic::Code::InvalidArgument,
        "{validated:?}"
    );
    // And the gateway, facing the internet, holds no key at all.
    assert!(crate::harness::jwt_for("gateway").signing_key.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_made_up_api_key_does_not_buy_a_fresh_rate_limit_bucket() {
    let p = Platform::start_with(crate::harness::Options {
        rate_limit_per_minute: 30,
        ..Default::default()
    })
    .await;
    let client = client_from([127, 0, 0, 24]);
    let mut limited = 0;
    for i in 0..60 {
        let response = client
            .get(format!("{}/payments", p.base))
            .header("X-Api-Key", format!("pk_made_up_{i}"))
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(response.headers().contains_key("retry-after"));
            limited += 1;
        }
    }
    // One bucket for the address, whatever key is sent: at most 30 in the minute pass.
    assert!(limited >= 30, "{limited} of 60 limited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_platform_cannot_be_used_to_mail_bomb_an_address() {
    let p = Platform::start().await;
    let address = email("bombed");
    p.verified_customer(&address).await;
    for _ in 0..12 {
        let (status, _) = p
            .post("/auth/forgot-password", None, json!({"email": address}))
            .await;
        // The answer never changes (it says nothing about the address).
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    p.smtp
        .wait_for(&address, "Subject: Reset your password", WAIT)
        .await
        .unwrap();
    // Give the email service time to send whatever it was asked to.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let sent = p.smtp.find(&address, "Subject: Reset your password").len();
    assert!((1..=5).contains(&sent), "{sent} reset emails");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_time_tokens_never_travel_in_events() {
    let p = Platform::start().await;
    let address = email("secretless");
    let (status, _) = p.register(&address).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    // What Kafka (and the outbox, and the dead-letter topic) hold is an id, not a token.
    let reader =
        testkit::topic_reader(&events::topics::physical(events::topics::USER_EVENTS)).unwrap();
    let event = testkit::next_matching(&reader, WAIT, |v| {
        (v["type"] == "user.registered" && v["data"]["email"] == address.as_str())
            .then(|| v.clone())
    })
    .await
    .unwrap();
    assert!(event["data"].get("token").is_none(), "{event}");
    assert_eq!(event["version"], 2);
    let id = event["data"]["token_id"].as_str().unwrap();
    // The id alone verifies nothing.
    let (status, body) = p
        .post("/auth/verify-email", None, json!({"token": id}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // The link in the email works (the email service derives the token with its key).
    let mail = p
        .smtp
        .wait_for(&address, "Subject: Verify your email address", WAIT)
        .await
        .unwrap();
    let token = crate::harness::token_in_mail(&mail, "#token=");
    let (status, body) = p
        .post("/auth/verify-email", None, json!({"token": token}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // And the access log never saw it.
    assert!(!p.nginx.access_log().contains(&token));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn registration_does_not_reveal_a_taken_email() {
    let p = Platform::start().await;
    let address = email("taken");
    p.verified_customer(&address).await;
    let fresh = email("fresh");
    let mut answers = Vec::new();
    for candidate in [&address, &fresh] {
        answers.push(
            p.post(
                "/auth/register",
                None,
                json!({"email": candidate, "password": "Attacker-Pass-12", "first_name": "Eve", "last_name": "Probe"}),
            )
            .await,
        );
    }
    assert_eq!(
        answers[0], answers[1],
        "taken and new addresses answer alike"
    );
    assert_eq!(answers[0].0, StatusCode::ACCEPTED);
    // The owner is told; nothing of theirs changed.
    p.smtp
        .wait_for(
            &address,
            "Subject: Someone tried to register with your email address",
            WAIT,
        )
        .await
        .unwrap();
    p.login(&address, PASSWORD).await;
    let (status, _) = p
        .post(
            "/auth/login",
            None,
            json!({"email": address, "password": "Attacker-Pass-12"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn owners_cannot_undo_what_an_admin_decided() {
    let p = Platform::start().await;
    let admin = p.admin_token().await;
    let (_, owner) = p.customer(&admin).await;

    // A card an admin trashed stays trashed for its owner.
    let card = p.card(&owner, "IDR").await;
    let (status, body) = p
        .post(
            &format!("/cards/{}/trash", card.id),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = p
        .post(
            &format!("/cards/{}/restore", card.id),
            Some(&owner),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["reason"], "ADMIN_DECISION");
    // (A card the owner trashed themselves, they may restore.)
    let own = p.card(&owner, "IDR").await;
    for action in ["trash", "restore"] {
        let (status, body) = p
            .post(
                &format!("/cards/{}/{action}", own.id),
                Some(&owner),
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{action}: {body}");
    }

    // The owner may shorten the card's validity, not extend it.
    let (_, current) = p.get(&format!("/cards/{}", own.id), Some(&owner)).await;
    let year = current["expiry_year"].as_i64().unwrap();
    let month = current["expiry_month"].as_i64().unwrap();
    let (status, body) = p
        .call(
            "PATCH",
            &format!("/cards/{}", own.id),
            Some(&owner),
            Some(json!({"expiry_month": month, "expiry_year": year + 3})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["details"][0]["field"], "expiry_year");
    let (_, after) = p.get(&format!("/cards/{}", own.id), Some(&owner)).await;
    assert_eq!(after["expiry_year"].as_i64(), Some(year));

    // A reviewed document can no longer be trashed or deleted by its owner.
    let merchant = p.apply_merchant(&owner, "IDR").await;
    let (status, doc) = p
        .post(
            &format!("/merchants/{}/documents", merchant.id),
            Some(&owner),
            json!({"document_type": "tax_id", "document_url": "https://files.example/tax.pdf"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{doc}");
    let doc_id = doc["id"].as_str().unwrap();
    let (status, body) = p
        .post(
            &format!("/merchant-documents/{doc_id}/review"),
            Some(&admin),
            json!({"status": "approved", "note": "matches the registry"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = p
        .post(
            &format!("/merchant-documents/{doc_id}/trash"),
            Some(&owner),
            json!({}),
        )
        .await;
    assert_eq!(status.as_u16() / 100, 4, "{status}: {body}");
    assert_eq!(body["error"]["reason"], "DOCUMENT_ALREADY_REVIEWED");
    let (_, still) = p
        .get(&format!("/merchant-documents/{doc_id}"), Some(&owner))
        .await;
    assert_eq!(still["status"], "approved", "{still}");
    assert!(still["deleted_at"].is_null(), "{still}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_last_active_admin_cannot_be_removed_by_trashing_the_others() {
    let p = Platform::start().await;
    let admin = p.admin_token().await;
    let (_, me) = p.get("/auth/me", Some(&admin)).await;
    let admin_id = me["user"]["id"].as_str().unwrap().to_owned();
    // A second admin, then trashed: they hold the role but cannot administer anything.
    let (second, _) = p.customer(&admin).await;
    let (status, body) = p
        .post(
            &format!("/users/{second}/roles"),
            Some(&admin),
            json!({"role": "admin"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = p
        .post(&format!("/users/{second}/trash"), Some(&admin), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = p
        .call(
            "DELETE",
            &format!("/users/{admin_id}/roles/admin"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status.as_u16() / 100, 4, "{status}: {body}");
    assert_eq!(body["error"]["reason"], "LAST_ADMIN", "{body}");
    let (status, _) = p.get("/users", Some(&admin)).await;
    assert_eq!(status, StatusCode::OK, "still an admin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_merchant_key_guessing_cvvs_across_cards_is_stopped() {
    let p = Arc::new(
        Platform::start_with(crate::harness::Options {
            cvv_failures_per_key: 10,
            ..Default::default()
        })
        .await,
    );
    let admin = p.admin_token().await;
    let (_, owner) = p.customer(&admin).await;
    let merchant = p.active_merchant(&admin, &owner, "IDR").await;
    // Forty cards of forty customers, each with money on it.
    let mut cards = Vec::new();
    for _ in 0..40 {
        let (_, customer) = p.customer(&admin).await;
        let card = p.card(&customer, "IDR").await;
        let (status, body) = p.topup(&customer, &card.number, 10_000).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(body["status"], "succeeded", "{body}");
        cards.push(card);
    }
    // One CVV, tried on every card at once with one key.
    let attempts: Vec<_> = cards
        .iter()
        .enumerate()
        .map(|(i, card)| {
            let (p, key, number) = (p.clone(), merchant.key.clone(), card.number.clone());
            let cvv = if card.cvv == "123" { "124" } else { "123" };
            tokio::spawn(async move {
                p.pay(
                    &key,
                    &format!("guess-{i}"),
                    json!({"card_number": number, "cvv": cvv, "amount": 1_000, "method": "visa"}),
                )
                .await
            })
        })
        .collect();
    let mut checked = 0;
    let mut throttled = 0;
    for attempt in attempts {
        let (status, body, _) = attempt.await.unwrap();
        match body["error"]["reason"].as_str() {
            Some("CVV_MISMATCH") => checked += 1,
            Some("API_KEY_CVV_THROTTLED") => {
                assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
                throttled += 1;
            }
            other => panic!("unexpected {status} {other:?}: {body}"),
        }
    }
    assert!(checked <= 10, "{checked} CVVs were checked");
    assert_eq!(checked + throttled, 40);
    // Nothing moved: the merchant got nothing.
    assert_eq!(p.merchant_balance(&owner, &merchant.id).await, 0);
    p.assert_books_balance(&admin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_edge_speaks_tls_with_hsts_for_http_and_grpc() {
    use proto::user::v1::auth_service_client::AuthServiceClient;

    let p = Platform::start().await;
    let ca = p.nginx.ca_certificate();
    // HTTPS, trusting only the platform's local CA.
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .build()
        .unwrap();
    let response = client
        .get(format!(
            "https://localhost:{}/api/v1/openapi.json",
            p.nginx.https_port
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let hsts = response.headers()["strict-transport-security"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(hsts.contains("max-age=31536000"), "{hsts}");
    // A login over TLS works like over the loopback quick-start port.
    let address = email("over-tls");
    p.verified_customer(&address).await;
    let login = client
        .post(format!(
            "https://localhost:{}/api/v1/auth/login",
            p.nginx.https_port
        ))
        .json(&json!({"email": address, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    // Without the CA, a client refuses the connection (nobody can pass for the platform
    // with another certificate, and the platform's is not a public one).
    let stranger = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .build()
        .unwrap();
    assert!(
        stranger
            .get(format!("https://localhost:{}/healthz", p.nginx.https_port))
            .send()
            .await
            .is_err()
    );

    // gRPC over TLS.
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(&ca))
        .domain_name("localhost");
    let channel = tonic::transport::Endpoint::from_shared(format!(
        "https://localhost:{}",
        p.nginx.grpcs_port
    ))
    .unwrap()
    .tls_config(tls)
    .unwrap()
    .connect()
    .await
    .unwrap();
    let tokens = AuthServiceClient::new(channel)
        .login(proto::user::v1::LoginRequest {
            email: address.clone(),
            password: PASSWORD.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!tokens.access_token.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn card_numbers_are_encrypted_at_rest_and_cvvs_are_not_stored() {
    let p = Platform::start().await;
    let admin = p.admin_token().await;
    let (_, owner) = p.customer(&admin).await;
    let (_, stranger) = p.customer(&admin).await;
    let card = p.card(&owner, "IDR").await;

    // What the database holds: no number, no CVV, nothing derived from them in clear.
    let db = sqlx::PgPool::connect(&p.database_url).await.unwrap();
    let stored: String =
        sqlx::query_scalar("SELECT row_to_json(c)::text FROM card_svc.cards c WHERE id = $1::uuid")
            .bind(&card.id)
            .fetch_one(&db)
            .await
            .unwrap();
    assert!(!stored.contains(&card.number), "{stored}");
    let row: (Option<String>, Option<Vec<u8>>, Vec<u8>, String) = sqlx::query_as(
        "SELECT number, cvv_hash, pan_ciphertext, pan_last4 FROM card_svc.cards WHERE id = $1::uuid",
    )
    .bind(&card.id)
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!((row.0, row.1), (None, None), "no number, no CVV hash");
    assert!(!String::from_utf8_lossy(&row.2).contains(&card.number[..8]));
    assert_eq!(row.3, &card.number[12..]);
    let everywhere: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM card_svc.outbox WHERE payload::text LIKE '%' || $1 || '%'",
    )
    .bind(&card.number)
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(everywhere, 0, "no number in the card service's events");

    // The owner sees the number and can have the CVV shown (derived on demand); nobody else.
    let (_, shown) = p.get(&format!("/cards/{}", card.id), Some(&owner)).await;
    assert_eq!(shown["number"], card.number.as_str());
    let (status, cvv) = p
        .get(&format!("/cards/{}/cvv", card.id), Some(&owner))
        .await;
    assert_eq!(status, StatusCode::OK, "{cvv}");
    assert_eq!(
        cvv["cvv"],
        card.cvv.as_str(),
        "the CVV issued is the one derived"
    );
    for token in [&stranger, &admin] {
        let (status, body) = p.get(&format!("/cards/{}/cvv", card.id), Some(token)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    }

    // A card stored before encryption at rest (number and CVV hash in clear) is sealed when
    // the card service starts; it keeps working by number, with its derived CVV.
    let legacy = uuid::Uuid::now_v7();
    let (_, me) = p.get("/auth/me", Some(&owner)).await;
    let owner_id = me["user"]["id"]
        .as_str()
        .unwrap()
        .parse::<uuid::Uuid>()
        .unwrap();
    let legacy_number = "4000001234567899";
    sqlx::query(
        "INSERT INTO card_svc.cards (id, user_id, number, brand, card_type, currency,
             expiry_month, expiry_year, cvv_hash, cvv_period)
         VALUES ($1, $2, $3, 'visa', 'debit', 'IDR', 12, 2030, '\\x00', 203012)",
    )
    .bind(legacy)
    .bind(owner_id)
    .bind(legacy_number)
    .execute(&db)
    .await
    .unwrap();
    let restarted = card_service::Application::build(card_service::Config {
        common: crate::harness::common(
            "card-service",
            &p.database_url,
            &platform::config::BoundListener::loopback().unwrap(),
        ),
        user_service_url: p.user_grpc.clone(),
        saldo_service_url: p.saldo_grpc.clone(),
        cvv_key: platform::Secret::new(crate::harness::CVV_KEY.to_owned()),
        pan_key: platform::Secret::new(crate::harness::PAN_KEY.to_owned()),
        currencies: vec!["IDR".into()],
        cvv_lockout: card_service::service::CvvLockout {
            max_attempts: 3,
            lock_for: Duration::from_secs(600),
            per_key_max_failures: 20,
            per_key_window: Duration::from_secs(3600),
        },
    })
    .await
    .unwrap();
    drop(restarted);
    let sealed: (Option<String>, Option<Vec<u8>>) =
        sqlx::query_as("SELECT number, cvv_hash FROM card_svc.cards WHERE id = $1")
            .bind(legacy)
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(sealed, (None, None));
    let (status, found) = p
        .post(
            "/cards/lookup",
            Some(&owner),
            json!({"number": legacy_number}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["id"], legacy.to_string());
    let (_, cvv) = p.get(&format!("/cards/{legacy}/cvv"), Some(&owner)).await;
    assert_eq!(cvv["cvv"].as_str().unwrap().len(), 3, "{cvv}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_public_grpc_port_limits_each_principal() {
    use proto::user::v1::auth_service_client::AuthServiceClient;

    let p = Platform::start_with(crate::harness::Options {
        edge_rate_limit_per_minute: 20,
        ..Default::default()
    })
    .await;
    let edge =
        tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{}", p.nginx.grpc_port))
            .unwrap()
            .local_address(Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 25))))
            .connect()
            .await
            .unwrap();
    let mut client = AuthServiceClient::new(edge);
    let mut limited = 0;
    for _ in 0..40 {
        match client.me(proto::user::v1::MeRequest::default()).await {
            Err(s) if s.code() == tonic::Code::ResourceExhausted => {
                assert!(s.metadata().get("retry-after").is_some(), "{s:?}");
                limited += 1;
            }
            Err(s) => assert_eq!(s.code(), tonic::Code::Unauthenticated, "{s:?}"),
            Ok(_) => panic!("me without a token answered"),
        }
    }
    // Anonymous: one bucket for the address, 20 calls in the minute.
    assert!(limited >= 20, "{limited} of 40 limited");
    // The gateway's own calls to the same service are not edge calls: still served.
    let address = email("after-edge-limit");
    p.verified_customer(&address).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_service_database_role_reaches_only_its_own_schema() {
    let p = Platform::start().await;
    // The roles `make run` gives the services (deploy/local/service-roles.sh), on this test's
    // database, whose schemas the admin role migrated (as an older local database was).
    let (server, database) = p.database_url.rsplit_once('/').unwrap();
    let passwords = std::env::temp_dir().join(testkit::unique("db-roles"));
    let out = std::process::Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../deploy/local/service-roles.sh"
        ))
        .arg(format!("{server}/postgres"))
        .arg(database)
        .arg(&passwords)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let roles = String::from_utf8(out.stdout).unwrap();
    let password = roles
        .lines()
        .find_map(|l| l.strip_prefix("card_svc "))
        .unwrap()
        .to_owned();
    let host = server.rsplit_once('@').map_or(server, |(_, h)| h);
    let url = format!("postgres://card_svc:{password}@{host}/{database}");
    let card = platform::db::connect(&url, "card_svc", 2).await.unwrap();

    // Its own schema: readable, writable, and it can migrate it.
    let cards: i64 = sqlx::query_scalar("SELECT count(*) FROM cards")
        .fetch_one(&card)
        .await
        .unwrap();
    assert!(cards >= 0);
    platform::db::migrate(&card, &card_service::DATABASE)
        .await
        .unwrap();
    // Everything else: refused.
    for sql in [
        "SELECT count(*) FROM user_svc.users",
        "SELECT count(*) FROM saldo_svc.journal_lines",
        "UPDATE saldo_svc.accounts SET balance = balance + 1",
        "CREATE TABLE public.stolen (x int)",
        "CREATE SCHEMA stolen",
    ] {
        let error = sqlx::query(sql).execute(&card).await.unwrap_err();
        assert!(
            error.to_string().contains("permission denied"),
            "{sql}: {error}"
        );
    }
    let _ = std::fs::remove_dir_all(passwords);
}
