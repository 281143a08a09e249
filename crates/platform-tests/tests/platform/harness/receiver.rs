//! A merchant's webhook receiver: a real HTTP server on loopback that records every request,
//! answers what the test scripts (200 by default), can go down (its port refuses connections)
//! and come back on the same port, and checks signatures as a merchant would.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus, header};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::task::JoinHandle;

use super::*;

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub event: Value,
    /// What the receiver answered.
    pub answered: u16,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    pub fn event_type(&self) -> &str {
        self.event["type"].as_str().unwrap_or_default()
    }

    pub fn event_id(&self) -> &str {
        self.event["id"].as_str().unwrap_or_default()
    }
}

#[derive(Default)]
struct Recorded {
    received: Mutex<Vec<Received>>,
    script: Mutex<VecDeque<u16>>,
}

pub struct Receiver {
    pub url: String,
    port: u16,
    recorded: Arc<Recorded>,
    server: Mutex<Option<JoinHandle<()>>>,
}

async fn record(
    State(recorded): State<Arc<Recorded>>,
    headers: HeaderMap,
    body: Bytes,
) -> (
    AxumStatus,
    [(header::HeaderName, &'static str); 1],
    &'static str,
) {
    let answered = recorded.script.lock().unwrap().pop_front().unwrap_or(200);
    recorded.received.lock().unwrap().push(Received {
        event: serde_json::from_slice(&body).unwrap_or(Value::Null),
        headers,
        body: body.to_vec(),
        answered,
    });
    // Every answer closes its connection: when the receiver goes down, nothing is left open.
    (
        AxumStatus::from_u16(answered).unwrap(),
        [(header::CONNECTION, "close")],
        "ok",
    )
}

impl Receiver {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let receiver = Self {
            url: format!("http://127.0.0.1:{port}/webhooks"),
            port,
            recorded: Arc::new(Recorded::default()),
            server: Mutex::new(None),
        };
        receiver.serve(listener);
        receiver
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let app = axum::Router::new()
            .route("/webhooks", axum::routing::post(record))
            .with_state(self.recorded.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        *self.server.lock().unwrap() = Some(server);
    }

    /// The next requests are answered with these statuses, in order (then 200 again).
    pub fn answer_next(&self, statuses: &[u16]) {
        self.recorded.script.lock().unwrap().extend(statuses);
    }

    /// Stops listening: connections to its port are refused.
    pub async fn go_down(&self) {
        if let Some(server) = self.server.lock().unwrap().take() {
            server.abort();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    /// Listens again on the same port.
    pub async fn come_back(&self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .unwrap();
        self.serve(listener);
    }

    pub fn received(&self) -> Vec<Received> {
        self.recorded.received.lock().unwrap().clone()
    }

    /// The requests it answered with a 2xx: the events it has.
    pub fn accepted(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| (200..300).contains(&r.answered))
            .collect()
    }

    /// Waits until it has accepted `count` requests; returns them.
    pub async fn wait_for_accepted(&self, count: usize, within: Duration) -> Vec<Received> {
        testkit::eventually(within, &format!("{count} webhooks accepted"), || async {
            let accepted = self.accepted();
            (accepted.len() >= count).then_some(accepted)
        })
        .await
    }
}

/// Whether `received` carries a valid signature under `secret`, checked as the README tells
/// merchants to: HMAC-SHA256 of `"<t>.<body>"`, any `v1` matching, `t` within 5 minutes.
pub fn signed_with(received: &Received, secret: &str) -> bool {
    let header = received.header("payments-signature");
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", t)) => timestamp = Some(t),
            Some(("v1", v)) => signatures.push(v),
            _ => {}
        }
    }
    let Some(timestamp) = timestamp else {
        return false;
    };
    let fresh = timestamp
        .parse::<i64>()
        .is_ok_and(|t| (chrono::Utc::now().timestamp() - t).abs() <= 300);
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(&received.body);
    fresh
        && signatures.iter().any(|s| {
            hex::decode(s).is_ok_and(|expected| mac.clone().verify_slice(&expected).is_ok())
        })
}
