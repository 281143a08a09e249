//! The platform's provider adapter (`crates/providers`) against the sandbox provider running
//! as its own process: outcomes, signed callbacks, idempotency, the error table, failover only
//! when the first provider has definitely not taken the operation, the circuit breaker, the
//! settlement report and a restart.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::HeaderMap;
use chrono::Utc;
use providers::ProviderConfig;
use providers::sandbox::SandboxProvider;
use providers::{
    BreakerConfig, BreakerState, OperationKind, OperationRequest, Provider, ProviderStatus, Router,
    SubmitError,
};
use serde_json::json;
use tokio::sync::mpsc;
use uuid::Uuid;

async fn sandbox(name: &str) -> testkit::sandbox::SandboxProvider {
    testkit::sandbox::SandboxProvider::start_with(
        env!("CARGO_BIN_EXE_sandbox-provider").into(),
        name,
        50,
    )
    .await
    .unwrap()
}

fn adapter(s: &testkit::sandbox::SandboxProvider) -> SandboxProvider {
    SandboxProvider::new(ProviderConfig {
        name: s.name.clone(),
        dialect: providers::Dialect::Sandbox,
        base_url: s.base_url.clone(),
        api_key: s.api_key.clone(),
        webhook_secret: s.webhook_secret.clone(),
        tolerance: Duration::from_secs(300),
        timeout: Duration::from_millis(1500),
    })
    .unwrap()
}

/// An HTTP receiver of callbacks: every (signature header, body) it got.
async fn receiver() -> (
    String,
    mpsc::UnboundedReceiver<(HashMap<String, String>, Bytes)>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/callback",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let tx = tx.clone();
            async move {
                let headers: HashMap<String, String> = headers
                    .iter()
                    .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
                    .collect();
                let _ = tx.send((headers, body));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/callback", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, rx)
}

fn charge(amount: i64, method: &str, callback_url: &str) -> OperationRequest {
    OperationRequest {
        kind: OperationKind::Charge,
        reference: Uuid::now_v7(),
        amount,
        currency: "IDR".into(),
        method: method.into(),
        callback_url: callback_url.into(),
    }
}

async fn next(
    rx: &mut mpsc::UnboundedReceiver<(HashMap<String, String>, Bytes)>,
) -> (HashMap<String, String>, Bytes) {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("no callback within 10 s")
        .unwrap()
}

#[tokio::test]
async fn a_charge_is_decided_later_and_its_callback_is_signed_and_verifiable() {
    let s = sandbox("sandpay").await;
    let p = adapter(&s);
    let (url, mut callbacks) = receiver().await;
    let request = charge(150_000, "bca", &url);

    let created = p.create(&request).await.unwrap();
    assert_eq!(
        created.status,
        ProviderStatus::Pending,
        "outcomes are asynchronous"
    );
    assert_eq!(created.reference, request.reference.to_string());
    // A retry (same idempotency key, derived from our id) is the same operation.
    let again = p.create(&request).await.unwrap();
    assert_eq!(again.provider_reference, created.provider_reference);
    assert_eq!(s.operations().await.unwrap().len(), 1, "charged once");

    let (signature, body) = next(&mut callbacks).await;
    let event = p.verify_callback(&signature, &body, Utc::now()).unwrap();
    assert_eq!(event.operation.status, ProviderStatus::Succeeded);
    assert_eq!(
        event.operation.provider_reference,
        created.provider_reference
    );
    assert_eq!(event.operation.amount, 150_000);
    // Another provider's secret (or a tampered body) does not verify.
    let other = sandbox("other").await;
    assert!(
        adapter(&other)
            .verify_callback(&signature, &body, Utc::now())
            .is_err()
    );
    // Replayed outside the tolerance window: refused.
    assert!(matches!(
        p.verify_callback(&signature, &body, Utc::now() + chrono::Duration::minutes(6)),
        Err(providers::CallbackError::Stale)
    ));

    let status = p
        .status(OperationKind::Charge, &request.reference.to_string())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.status, ProviderStatus::Succeeded);
    assert!(
        p.status(OperationKind::Payout, &request.reference.to_string())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        p.status(OperationKind::Charge, "never-sent")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn scripted_declines_duplicates_and_early_callbacks() {
    let s = sandbox("sandpay").await;
    let p = adapter(&s);
    let (url, mut callbacks) = receiver().await;
    s.script(json!({"match": {"amount": 7_001}, "scenario": {"outcome": "decline", "failure_code": "insufficient_funds"}}))
        .await
        .unwrap();
    s.script(json!({"match": {"amount": 7_002}, "scenario": {"callback": "twice"}}))
        .await
        .unwrap();
    s.script(json!({"match": {"amount": 7_003}, "scenario": {"callback": "before_response"}}))
        .await
        .unwrap();

    p.create(&charge(7_001, "bca", &url)).await.unwrap();
    let (sig, body) = next(&mut callbacks).await;
    let declined = p.verify_callback(&sig, &body, Utc::now()).unwrap();
    assert_eq!(
        declined.operation.status,
        ProviderStatus::Failed {
            code: "insufficient_funds".into(),
            message: "the payer's account has insufficient funds".into()
        }
    );

    p.create(&charge(7_002, "bca", &url)).await.unwrap();
    let (sig1, body1) = next(&mut callbacks).await;
    let (sig2, body2) = next(&mut callbacks).await;
    let first = p.verify_callback(&sig1, &body1, Utc::now()).unwrap();
    let second = p.verify_callback(&sig2, &body2, Utc::now()).unwrap();
    assert_eq!(
        first.event_id, second.event_id,
        "a duplicate is the same event"
    );

    let early = p.create(&charge(7_003, "bca", &url)).await.unwrap();
    assert_eq!(
        early.status,
        ProviderStatus::Succeeded,
        "decided before the answer"
    );
}

#[tokio::test]
async fn failover_happens_only_when_the_first_provider_has_not_taken_the_money() {
    let a = sandbox("alpha").await;
    let b = sandbox("beta").await;
    let (url, _callbacks) = receiver().await;
    let providers: Vec<Arc<dyn Provider>> = vec![Arc::new(adapter(&a)), Arc::new(adapter(&b))];
    let router = Router::new(
        providers,
        HashMap::from([(
            "bca".to_owned(),
            vec!["alpha".to_owned(), "beta".to_owned()],
        )]),
        BreakerConfig {
            failures: 100,
            open_for: Duration::from_secs(60),
        },
    )
    .unwrap();

    // Down (503 unavailable): not taken, so beta gets it.
    a.set_down(true).await.unwrap();
    let to_beta = router.submit(&charge(9_001, "bca", &url)).await.unwrap();
    assert_eq!(to_beta.operation.provider, "beta");
    assert_eq!(to_beta.passed_over[0].0, "alpha");
    a.set_down(false).await.unwrap();

    // A 500 after alpha recorded it: the status check finds it there; beta is never asked.
    a.script(json!({"match": {"amount": 9_002}, "scenario": {"http_status": 500, "record": true}}))
        .await
        .unwrap();
    let request = charge(9_002, "bca", &url);
    let kept = router.submit(&request).await.unwrap();
    assert_eq!(
        kept.operation.provider, "alpha",
        "no failover for money alpha may hold"
    );
    let at_beta = adapter(&b)
        .status(OperationKind::Charge, &request.reference.to_string())
        .await
        .unwrap();
    assert!(at_beta.is_none(), "beta never charged it");

    // A 500 without recording: the status check says not taken, so beta gets it.
    a.script(
        json!({"match": {"amount": 9_003}, "scenario": {"http_status": 500, "record": false}}),
    )
    .await
    .unwrap();
    let moved = router.submit(&charge(9_003, "bca", &url)).await.unwrap();
    assert_eq!(moved.operation.provider, "beta");

    // Alpha times out (answers after the adapter's 1.5 s) and then cannot answer its status
    // either (down): uncertain, kept with alpha, not failed over.
    a.script(json!({"match": {"amount": 9_004}, "scenario": {"respond_after_ms": 2_500}}))
        .await
        .unwrap();
    let request = charge(9_004, "bca", &url);
    let (submitted, ()) = tokio::join!(router.submit(&request), async {
        tokio::time::sleep(Duration::from_millis(1_200)).await;
        a.set_down(true).await.unwrap();
    });
    match submitted {
        Err(SubmitError::Uncertain { provider, .. }) => assert_eq!(provider, "alpha"),
        other => panic!("expected Uncertain, got {other:?}"),
    }
    let at_beta = adapter(&b)
        .status(OperationKind::Charge, &request.reference.to_string())
        .await
        .unwrap();
    assert!(at_beta.is_none());
}

#[tokio::test]
async fn the_breaker_opens_fails_fast_probes_half_open_and_closes() {
    let a = sandbox("alpha").await;
    let (url, _callbacks) = receiver().await;
    let router = Router::new(
        vec![Arc::new(adapter(&a)) as Arc<dyn Provider>],
        HashMap::from([("bca".to_owned(), vec!["alpha".to_owned()])]),
        BreakerConfig {
            failures: 3,
            open_for: Duration::from_millis(500),
        },
    )
    .unwrap();
    a.set_down(true).await.unwrap();
    for _ in 0..3 {
        assert!(matches!(
            router.submit(&charge(100, "bca", &url)).await,
            Err(SubmitError::Unavailable(_))
        ));
    }
    assert_eq!(
        router.breakers(),
        vec![("alpha".to_owned(), BreakerState::Open)]
    );
    let started = std::time::Instant::now();
    match router.submit(&charge(100, "bca", &url)).await {
        Err(SubmitError::Unavailable(why)) => assert!(why.contains("circuit open"), "{why}"),
        other => panic!("expected a fast failure, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_millis(50),
        "no request was sent"
    );

    a.set_down(false).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(router.breakers()[0].1, BreakerState::HalfOpen);
    let probed = router.submit(&charge(100, "bca", &url)).await.unwrap();
    assert_eq!(probed.operation.provider, "alpha");
    assert_eq!(router.breakers()[0].1, BreakerState::Closed);
}

#[tokio::test]
async fn the_settlement_report_lists_the_day_with_injected_mismatches_and_survives_a_restart() {
    let mut s = sandbox("sandpay").await;
    let p = adapter(&s);
    let (url, _callbacks) = receiver().await;
    let mut requests = Vec::new();
    let mut references = Vec::new();
    for amount in [1_000, 2_000, 3_000, 4_000] {
        let request = charge(amount, "bca", &url);
        p.create(&request).await.unwrap();
        references.push(request.reference.to_string());
        requests.push(request);
    }
    // Decided after 50 ms.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let today = Utc::now().date_naive();
    let clean = p.settlement(today).await.unwrap();
    assert_eq!(clean.len(), 4);
    assert_eq!(clean.iter().map(|l| l.amount).sum::<i64>(), 10_000);

    s.control(
        "settlement-adjustments",
        json!({"action": "drop", "reference": references[0]}),
    )
    .await
    .unwrap();
    s.control(
        "settlement-adjustments",
        json!({"action": "amount", "reference": references[1], "amount": 2_500}),
    )
    .await
    .unwrap();
    s.control(
        "settlement-adjustments",
        json!({"action": "duplicate", "reference": references[2]}),
    )
    .await
    .unwrap();
    s.control("settlement-adjustments", json!({"action": "extra", "reference": "not-ours", "kind": "charge", "amount": 99, "currency": "IDR", "date": today.to_string()})).await.unwrap();

    // Killed and started again: it remembers operations, keys and adjustments.
    s.restart().await.unwrap();
    let report = adapter(&s).settlement(today).await.unwrap();
    let count = |r: &str| report.iter().filter(|l| l.reference == r).count();
    assert_eq!(count(&references[0]), 0);
    assert_eq!(
        report
            .iter()
            .find(|l| l.reference == references[1])
            .unwrap()
            .amount,
        2_500
    );
    assert_eq!(count(&references[2]), 2);
    assert_eq!(count(&references[3]), 1);
    assert_eq!(count("not-ours"), 1);
    let replayed = adapter(&s).create(&requests[3]).await.unwrap();
    assert_eq!(
        replayed.status,
        ProviderStatus::Succeeded,
        "the same operation, remembered"
    );
    assert_eq!(
        s.operations().await.unwrap().len(),
        4,
        "a retry after the restart charged nothing new"
    );
}
