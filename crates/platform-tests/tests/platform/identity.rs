//! Identity end to end: NGINX → gateway → gRPC → PostgreSQL/Redis → outbox → broker → role
//! service consumer.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use crate::harness::{PASSWORD, Platform, email};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn register_verify_login_refresh_logout_through_nginx() {
    let p = Platform::start().await;
    let address = email("ana");
    let (id, tokens) = p.verified_customer(&address).await;
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    assert_eq!(tokens["token_type"], "Bearer");

    let (status, me) = p.get("/auth/me", Some(access)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["user"]["id"], id.as_str());
    assert_eq!(me["user"]["email"], address.as_str());
    assert_eq!(
        me["roles"],
        json!(["customer"]),
        "self-registration grants only customer"
    );

    let (status, rotated) = p
        .post("/auth/refresh", None, json!({"refresh_token": refresh}))
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    assert_ne!(rotated["refresh_token"], tokens["refresh_token"]);
    let new_access = rotated["access_token"].as_str().unwrap();
    let new_refresh = rotated["refresh_token"].as_str().unwrap();

    let (status, _) = p
        .post(
            "/auth/logout",
            Some(new_access),
            json!({"refresh_token": new_refresh}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = p.get("/auth/me", Some(new_access)).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a logged-out access token is refused: {body}"
    );
    assert_eq!(body["error"]["reason"], "TOKEN_REVOKED");
    let (status, body) = p
        .post("/auth/refresh", None, json!({"refresh_token": new_refresh}))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unverified_accounts_cannot_log_in() {
    let p = Platform::start().await;
    let address = email("unverified");
    let (status, _) = p
        .post(
            "/auth/register",
            None,
            json!({"email": address, "password": PASSWORD, "first_name": "A", "last_name": "B"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, body) = p
        .post(
            "/auth/login",
            None,
            json!({"email": address, "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["reason"], "EMAIL_NOT_VERIFIED");
    let (status, body) = p
        .post(
            "/auth/register",
            None,
            json!({"email": address, "password": PASSWORD, "first_name": "A", "last_name": "B"}),
        )
        .await;
    // A taken address answers like a new one (registration reveals no accounts); the
    // unverified owner gets a fresh verification link instead.
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body, json!({"status": "accepted"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn password_reset_replaces_the_password_and_ends_sessions() {
    let p = Platform::start().await;
    let address = email("reset");
    let (_, tokens) = p.verified_customer(&address).await;
    let (status, _) = p
        .post("/auth/forgot-password", None, json!({"email": address}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, _) = p
        .post(
            "/auth/forgot-password",
            None,
            json!({"email": email("nobody")}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "unknown emails are not revealed"
    );
    let token = p
        .token_from_event("user.password_reset_requested", &address)
        .await;

    let (status, body) = p
        .post(
            "/auth/reset-password",
            None,
            json!({"token": token, "new_password": "weak"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["details"][0]["field"], "new_password");
    // The failed attempt consumed nothing? It did: tokens are single use, so ask again.
    p.reset_password(&address, "New-Secret-Pass-9").await;
    let (status, _) = p
        .post(
            "/auth/reset-password",
            None,
            json!({"token": token, "new_password": "Other-Secret-Pass-9"}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "reset tokens are single use"
    );

    let (status, _) = p
        .post(
            "/auth/login",
            None,
            json!({"email": address, "password": PASSWORD}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the old password no longer works"
    );
    p.login(&address, "New-Secret-Pass-9").await;
    let (status, _) = p
        .post(
            "/auth/refresh",
            None,
            json!({"refresh_token": tokens["refresh_token"]}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "sessions from before the reset are revoked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn repeated_failed_logins_lock_the_account() {
    let p = Platform::start_with(crate::harness::Options {
        login_max_failures: 3,
        ..Default::default()
    })
    .await;
    let address = email("lock");
    p.verified_customer(&address).await;
    for _ in 0..2 {
        let (status, body) = p
            .post(
                "/auth/login",
                None,
                json!({"email": address, "password": "Wrong-Password-1"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["error"]["reason"], "INVALID_CREDENTIALS");
    }
    let (status, _) = p
        .post(
            "/auth/login",
            None,
            json!({"email": address, "password": "Wrong-Password-1"}),
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let response = p
        .http
        .post(format!("{}/auth/login", p.base))
        .json(&json!({"email": address, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "even the right password waits"
    );
    assert!(response.headers().get("retry-after").is_some());
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["reason"], "ACCOUNT_LOCKED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn token_misuse_is_refused() {
    let p = Platform::start().await;
    let (_, tokens) = p.verified_customer(&email("misuse")).await;
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();

    let (status, _) = p.get("/auth/me", Some(refresh)).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a refresh token is not an access token"
    );

    let mut tampered = access.to_owned();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let (status, body) = p.get("/auth/me", Some(&tampered)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["reason"], "INVALID_TOKEN");

    let mut short = crate::harness::jwt_for("user-service");
    short.access_ttl = Duration::from_secs(0);
    let expired = platform::auth::TokenIssuer::new(&short)
        .unwrap()
        .access_token(uuid::Uuid::now_v7(), vec![], vec![])
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = p.get("/auth/me", Some(expired.token.expose())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["reason"], "TOKEN_EXPIRED");

    // Rotation, then replay of the first refresh token: the whole family is revoked.
    let (status, rotated) = p
        .post("/auth/refresh", None, json!({"refresh_token": refresh}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = p
        .post("/auth/refresh", None, json!({"refresh_token": refresh}))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["reason"], "REFRESH_TOKEN_REUSED");
    let (status, _) = p
        .post(
            "/auth/refresh",
            None,
            json!({"refresh_token": rotated["refresh_token"]}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the rotated token died with its family"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn customers_cannot_administer_and_admins_can() {
    let p = Platform::start().await;
    let admin = p.admin_token().await;
    let ana_email = email("ana");
    let (ana_id, ana) = p.verified_customer(&ana_email).await;
    let (bob_id, _) = p.verified_customer(&email("bob")).await;
    let ana = ana["access_token"].as_str().unwrap();

    let (status, _) = p.get("/users", Some(ana)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = p.get(&format!("/users/{bob_id}"), Some(ana)).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another user's account is invisible"
    );
    let (status, me) = p.get(&format!("/users/{ana_id}"), Some(ana)).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    let (status, _) = p
        .post("/roles", Some(ana), json!({"name": "auditor"}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = p
        .post(
            &format!("/users/{ana_id}/roles"),
            Some(ana),
            json!({"role": "admin"}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "nobody grants themselves admin"
    );

    let (status, page) = p.get("/users?page_size=50", Some(&admin)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page["page"]["total_items"].as_u64().unwrap() >= 3);
    let (status, found) = p
        .get(&format!("/users?search={}", &ana_email[..12]), Some(&admin))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(found["items"][0]["email"], ana_email.as_str());

    let (status, role) = p
        .post(
            "/roles",
            Some(&admin),
            json!({"name": "auditor", "permissions": ["users.read"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{role}");
    let (status, body) = p
        .post(
            "/roles",
            Some(&admin),
            json!({"name": "bad", "permissions": ["money.print"]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["details"][0]["field"], "permissions");
    let (status, roles) = p
        .post(
            &format!("/users/{ana_id}/roles"),
            Some(&admin),
            json!({"role": "auditor"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{roles}");
    let ana = p.login(&ana_email, PASSWORD).await;
    let (status, _) = p.get("/users", ana["access_token"].as_str()).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the new role's permission is in the next token"
    );

    // Lifecycle: trash, list trashed, restore, trash, delete permanently.
    let (status, body) = p
        .call("DELETE", &format!("/users/{bob_id}"), Some(&admin), None)
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "only trashed users are deleted: {body}"
    );
    let (status, trashed) = p
        .post(&format!("/users/{bob_id}/trash"), Some(&admin), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(trashed["deleted_at"].is_string());
    let (_, list) = p.get("/users?status=trashed", Some(&admin)).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let (status, _) = p
        .post(&format!("/users/{bob_id}/restore"), Some(&admin), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    p.post(&format!("/users/{bob_id}/trash"), Some(&admin), json!({}))
        .await;
    let (status, _) = p
        .call("DELETE", &format!("/users/{bob_id}"), Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = p.get(&format!("/users/{bob_id}"), Some(&admin)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = p
        .post(
            "/roles/00000000-0000-7000-8000-000000000001/trash",
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "system roles stay: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_names_the_field_and_writes_nothing() {
    let p = Platform::start().await;
    let admin = p.admin_token().await;
    let cases = [
        (
            json!({"email": "not-an-email", "password": PASSWORD, "first_name": "A", "last_name": "B"}),
            "email",
        ),
        (
            json!({"email": email("weak"), "password": "password", "first_name": "A", "last_name": "B"}),
            "password",
        ),
        (
            json!({"email": email("x"), "password": PASSWORD, "first_name": "A", "last_name": "B", "role": "admin"}),
            "role",
        ),
        (
            json!({"email": email("x"), "password": PASSWORD, "first_name": 5, "last_name": "B"}),
            "first_name",
        ),
        (
            json!({"email": email("x"), "password": PASSWORD, "first_name": "A"}),
            "last_name",
        ),
        (
            json!({"email": email("x"), "password": PASSWORD, "first_name": " ", "last_name": "B"}),
            "first_name",
        ),
    ];
    for (body, field) in cases {
        let (status, error) = p.post("/auth/register", None, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} -> {error}");
        assert_eq!(error["error"]["details"][0]["field"], field, "{error}");
        assert!(!error["error"]["request_id"].as_str().unwrap().is_empty());
    }
    // Larger than the gateway's 64 KiB, within NGINX's 1 MiB: the gateway reads it to its
    // end before it answers 413 (answering earlier made NGINX report a 502 now and then).
    for _ in 0..5 {
        let huge = "x".repeat(200 * 1024);
        let (status, error) = p.post("/auth/register", None, json!({"email": huge})).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{error}");
        assert_eq!(error["error"]["reason"], "PAYLOAD_TOO_LARGE");
    }
    let response = p
        .http
        .post(format!("{}/auth/login", p.base))
        .body("email=a")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, error) = p.get("/users?page_size=1000", Some(&admin)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["error"]["details"][0]["field"], "page_size");
    let (status, error) = p.get("/users?colour=blue", Some(&admin)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["error"]["details"][0]["field"], "colour");
    let (status, error) = p.get("/users/not-a-uuid", Some(&admin)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["error"]["details"][0]["field"], "id");

    let (_, page) = p.get("/users?page_size=100", Some(&admin)).await;
    assert_eq!(
        page["page"]["total_items"], 1,
        "only the admin exists: {page}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_gateway_rate_limits_each_principal() {
    let p = Platform::start_with(crate::harness::Options {
        rate_limit_per_minute: 5,
        ..Default::default()
    })
    .await;
    let mut limited = None;
    for _ in 0..8 {
        let response = p
            .http
            .get(format!("{}/auth/me", p.base))
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(response);
            break;
        }
    }
    let response = limited.expect("the sixth request within a minute is limited");
    assert!(response.headers().get("retry-after").is_some());
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["reason"], "RATE_LIMITED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn openapi_document_describes_the_api() {
    let p = Platform::start().await;
    let (status, doc) = p.get("/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/v1/auth/login",
        "/api/v1/users/{id}",
        "/api/v1/roles",
        "/api/v1/users/{id}/roles/{role}",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
    let response = p.http.get(format!("{}/docs", p.base)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get("x-request-id").is_some());
    // Swagger UI's assets come from the platform, never from a third-party CDN.
    let page = response.text().await.unwrap();
    assert!(!page.contains("https://"), "{page}");
    assert!(page.contains("/api/v1/docs/swagger-ui-bundle.js"), "{page}");
    let bundle = p
        .http
        .get(format!("{}/docs/swagger-ui-bundle.js", p.base))
        .send()
        .await
        .unwrap();
    assert_eq!(bundle.status(), StatusCode::OK);
    assert!(bundle.text().await.unwrap().len() > 100_000);

    // The event catalogue sits next to it, through NGINX, without a login.
    let (status, events) = p.get("/asyncapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(events["asyncapi"].as_str().unwrap().starts_with("3."));
    for message in [
        "user.registered.v2",
        "payment.succeeded.v1",
        "balance.changed.v1",
    ] {
        let schema = &events["components"]["schemas"][message];
        assert_eq!(schema["type"], "object", "{message} has no schema");
        assert!(
            schema["properties"]["data"].is_object(),
            "{message} describes no data"
        );
    }
    assert_eq!(
        events["channels"]["payments_transaction_events"]["address"],
        "payments.transaction.events"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grpc_is_served_through_nginx() {
    use proto::user::v1::LoginRequest;
    use proto::user::v1::auth_service_client::AuthServiceClient;
    let p = Platform::start().await;
    p.admin_token().await;
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{}", p.nginx.grpc_port))
            .unwrap()
            .connect()
            .await
            .unwrap();
    let tokens = AuthServiceClient::new(channel)
        .login(LoginRequest {
            email: crate::harness::ADMIN_EMAIL.into(),
            password: crate::harness::ADMIN_PASSWORD.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!tokens.access_token.is_empty());
}
