//! Crash recovery: the real transfer-service process is killed (abort, like `kill -9`)
//! after recording a pending transfer and before the ledger posting, and — separately —
//! after the posting but before recording the outcome. After a restart the recovery task
//! finishes both, and money has moved exactly once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Stdio;
use std::time::Duration;

use platform::auth::{JwtConfig, TokenIssuer};
use platform::config::{BoundListener, CommonConfig};
use platform::shutdown::Shutdown;
use proto::card::v1::card_service_client::CardServiceClient;
use proto::card::v1::{CardType, CreateCardRequest};
use proto::common::v1::MovementStatus;
use proto::saldo::v1::saldo_service_client::SaldoServiceClient;
use proto::saldo::v1::{AccountRef, CardAccountRequest, PostRequest, account_ref::Target};
use proto::transfer::v1::transfer_service_client::TransferServiceClient;
use proto::transfer::v1::{CreateTransferRequest, TransferIdRequest};
use sqlx::PgPool;
use uuid::Uuid;

const CVV_KEY: &str = "test-cvv-key-test-cvv-key-0123456789";

/// This test's keys: one Ed25519 pair per signing workload.
fn keys() -> &'static platform::auth::keys::GeneratedKeys {
    static KEYS: std::sync::OnceLock<platform::auth::keys::GeneratedKeys> =
        std::sync::OnceLock::new();
    KEYS.get_or_init(platform::auth::keys::GeneratedKeys::new)
}

fn jwt_for(name: &str) -> JwtConfig {
    keys().config(name)
}

/// In-process services serve on a listener bound before any of them starts.
fn common(name: &str, database_url: &str, listener: &BoundListener) -> CommonConfig {
    CommonConfig {
        service_name: name.into(),
        grpc_addr: listener.local_addr(),
        admin_addr: "127.0.0.1:0".parse().unwrap(),
        database_url: platform::Secret::new(database_url.to_owned()),
        database_max_connections: 5,
        redis_url: platform::Secret::new(testkit::redis_url()),
        kafka_brokers: testkit::kafka_brokers(),
        jwt: jwt_for(name),
        migrate_on_start: true,
        edge_rate_limit_per_minute: 1_000_000,
        grpc_listener: Some(listener.clone()),
    }
}

fn bearer<T>(message: T, token: &str) -> tonic::Request<T> {
    platform::grpc::outgoing(message, Some(token), Duration::from_secs(10))
}

/// The transfer service as a child process.
struct TransferProcess {
    child: tokio::process::Child,
    url: String,
}

impl TransferProcess {
    async fn spawn(database_url: &str, card_url: &str, saldo_url: &str, failpoint: &str) -> Self {
        let port = testkit::free_port();
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_transfer-service"))
            .env("GRPC_ADDR", format!("127.0.0.1:{port}"))
            .env("ADMIN_ADDR", "127.0.0.1:0")
            .env("DATABASE_URL", database_url)
            .env("REDIS_URL", testkit::redis_url())
            .env("KAFKA_BROKERS", testkit::kafka_brokers())
            .env("JWT_PUBLIC_KEYS", keys().public_keys())
            .env(
                "JWT_SIGNING_KEY",
                keys().signing_key("transfer-service").unwrap_or_default(),
            )
            .env("CARD_SERVICE_URL", card_url)
            .env("SALDO_SERVICE_URL", saldo_url)
            .env("RECOVERY_INTERVAL_SECS", "1")
            .env("RECOVERY_GRACE_SECS", "1")
            .env("LOG_FORMAT", "text")
            .env(platform::failpoint::ENV, failpoint)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        testkit::eventually(
            Duration::from_secs(30),
            "transfer service listening",
            || async {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .ok()
                    .map(|_| ())
            },
        )
        .await;
        Self { child, url }
    }

    fn client(&self) -> TransferServiceClient<tonic::transport::Channel> {
        TransferServiceClient::new(platform::grpc::channel(&self.url).unwrap())
    }
}

struct World {
    pool: PgPool,
    database_url: String,
    card_url: String,
    saldo_url: String,
    customer: String,
    from: (String, String),
    to: (String, String),
    saldo: SaldoServiceClient<tonic::transport::Channel>,
    _shutdown: ShutdownOnDrop,
}

struct ShutdownOnDrop(Shutdown);
impl Drop for ShutdownOnDrop {
    fn drop(&mut self) {
        self.0.trigger();
    }
}

/// Card and saldo services in-process, two cards of one customer, the first funded with
/// 100 000 through a real ledger posting.
async fn world() -> World {
    let database_url = testkit::fresh_database().await.unwrap();
    let shutdown = Shutdown::new();
    let (card_listener, saldo_listener) = (
        BoundListener::loopback().unwrap(),
        BoundListener::loopback().unwrap(),
    );
    let card_url = format!("http://{}", card_listener.local_addr());
    let saldo_url = format!("http://{}", saldo_listener.local_addr());
    let saldo = saldo_service::Application::build(saldo_service::Config {
        common: common("saldo-service", &database_url, &saldo_listener),
        card_events_group: testkit::unique("crash-saldo"),
        stats_time_zone: "UTC".into(),
        stats_group: testkit::unique("saldo-stats"),
    })
    .await
    .unwrap();
    tokio::spawn(saldo.run(shutdown.clone()));
    let card = card_service::Application::build(card_service::Config {
        common: common("card-service", &database_url, &card_listener),
        user_service_url: "http://127.0.0.1:9".into(),
        saldo_service_url: saldo_url.clone(),
        cvv_key: platform::Secret::new(CVV_KEY.to_owned()),
        pan_key: platform::Secret::new("test-pan-key-test-pan-key-0123456789".to_owned()),
        currencies: vec!["IDR".into()],
        cvv_lockout: card_service::service::CvvLockout {
            max_attempts: 3,
            lock_for: std::time::Duration::from_secs(600),
            per_key_max_failures: 20,
            per_key_window: std::time::Duration::from_secs(3600),
        },
    })
    .await
    .unwrap();
    tokio::spawn(card.run(shutdown.clone()));

    let users = TokenIssuer::new(&jwt_for("user-service")).unwrap();
    let user = Uuid::now_v7();
    let customer = users
        .access_token(user, vec!["customer".into()], vec![])
        .unwrap()
        .token
        .expose()
        .to_owned();
    let cards = CardServiceClient::new(platform::grpc::channel(&card_url).unwrap());
    let saldo = SaldoServiceClient::new(platform::grpc::channel(&saldo_url).unwrap());
    let mut made = Vec::new();
    for _ in 0..2 {
        let created = cards
            .clone()
            .create_card(bearer(
                CreateCardRequest {
                    user_id: String::new(),
                    brand: "mastercard".into(),
                    card_type: CardType::Debit as i32,
                    currency: "IDR".into(),
                    valid_years: 3,
                },
                &customer,
            ))
            .await
            .unwrap()
            .into_inner()
            .card
            .unwrap();
        made.push((created.id, created.number));
    }
    for (id, _) in &made {
        let saldo = saldo.clone();
        testkit::eventually(Duration::from_secs(30), "card account opened", || {
            let mut saldo = saldo.clone();
            let customer = customer.clone();
            let id = id.clone();
            async move {
                saldo
                    .get_card_account(bearer(CardAccountRequest { card_id: id }, &customer))
                    .await
                    .ok()
                    .map(|_| ())
            }
        })
        .await;
    }
    // Funding the cards as the topup service would (it may post to the ledger).
    let poster = TokenIssuer::new(&jwt_for("topup-service"))
        .unwrap()
        .service_token(&["saldo.post"])
        .unwrap()
        .token
        .expose()
        .to_owned();
    saldo
        .clone()
        .post(bearer(
            PostRequest {
                posting_id: Uuid::now_v7().to_string(),
                kind: "topup".into(),
                debit: Some(AccountRef {
                    target: Some(Target::System("topup:bca".into())),
                }),
                credit: Some(AccountRef {
                    target: Some(Target::CardId(made[0].0.clone())),
                }),
                amount: 100_000,
                currency: "IDR".into(),
                description: "test funding".into(),
                effective_at: None,
                fee: None,
            },
            &poster,
        ))
        .await
        .unwrap();
    World {
        pool: PgPool::connect(&database_url).await.unwrap(),
        database_url,
        card_url,
        saldo_url,
        customer,
        from: made[0].clone(),
        to: made[1].clone(),
        saldo,
        _shutdown: ShutdownOnDrop(shutdown),
    }
}

impl World {
    async fn balance(&self, card_id: &str) -> i64 {
        self.saldo
            .clone()
            .get_card_account(bearer(
                CardAccountRequest {
                    card_id: card_id.to_owned(),
                },
                &self.customer,
            ))
            .await
            .unwrap()
            .into_inner()
            .balance
    }

    async fn transfers(&self) -> Vec<(Uuid, String)> {
        sqlx::query_as("SELECT id, status FROM transfer_svc.movements ORDER BY created_at")
            .fetch_all(&self.pool)
            .await
            .unwrap()
    }

    fn request(&self, key: &str, amount: i64) -> CreateTransferRequest {
        CreateTransferRequest {
            idempotency_key: key.to_owned(),
            from_card_number: self.from.1.clone(),
            to_card_number: self.to.1.clone(),
            amount,
            effective_at: None,
        }
    }

    /// Sends a transfer to a process armed with `failpoint`, which must die on it.
    async fn crash_on(&self, failpoint: &str, key: &str, amount: i64) {
        let mut process = TransferProcess::spawn(
            &self.database_url,
            &self.card_url,
            &self.saldo_url,
            failpoint,
        )
        .await;
        let result = process
            .client()
            .create_transfer(bearer(self.request(key, amount), &self.customer))
            .await;
        assert!(result.is_err(), "the process should have died: {result:?}");
        let status = tokio::time::timeout(Duration::from_secs(10), process.child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(!status.success(), "the process should have aborted");
    }

    /// Restarts the service without failpoints and waits until nothing is pending.
    async fn recover(&self) -> TransferProcess {
        let process =
            TransferProcess::spawn(&self.database_url, &self.card_url, &self.saldo_url, "").await;
        testkit::eventually(
            Duration::from_secs(30),
            "pending transfers recovered",
            || async {
                self.transfers()
                    .await
                    .iter()
                    .all(|(_, status)| status != "pending")
                    .then_some(())
            },
        )
        .await;
        process
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_recording_and_before_posting_the_transfer_completes_once() {
    let w = world().await;
    w.crash_on("transfer.after_pending", "crash-before", 30_000)
        .await;
    let pending = w.transfers().await;
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].1, "pending");
    assert_eq!(
        w.balance(&w.from.0).await,
        100_000,
        "nothing moved before the posting"
    );

    let process = w.recover().await;
    assert_eq!(w.transfers().await[0].1, "succeeded");
    assert_eq!(w.balance(&w.from.0).await, 70_000);
    assert_eq!(w.balance(&w.to.0).await, 30_000);

    // The client's retry with the same key gets the recovered transfer, not a second one.
    let replay = process
        .client()
        .create_transfer(bearer(w.request("crash-before", 30_000), &w.customer))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(replay.id, pending[0].0.to_string());
    assert_eq!(replay.status, MovementStatus::Succeeded as i32);
    assert_eq!(w.transfers().await.len(), 1);
    assert_eq!(w.balance(&w.from.0).await, 70_000);
    let report = saldo_service::repo::reconcile(&w.pool_in_saldo().await)
        .await
        .unwrap();
    assert!(report.balanced(), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_posting_and_before_recording_the_outcome_money_moves_once() {
    let w = world().await;
    w.crash_on("transfer.after_posting", "crash-after", 40_000)
        .await;
    let pending = w.transfers().await;
    assert_eq!(pending[0].1, "pending");
    assert_eq!(
        w.balance(&w.from.0).await,
        60_000,
        "the ledger applied the posting"
    );

    let process = w.recover().await;
    assert_eq!(w.transfers().await[0].1, "succeeded");
    assert_eq!(
        w.balance(&w.from.0).await,
        60_000,
        "recovery must not post twice"
    );
    assert_eq!(w.balance(&w.to.0).await, 40_000);
    let got = process
        .client()
        .get_transfer(bearer(
            TransferIdRequest {
                id: pending[0].0.to_string(),
            },
            &w.customer,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.status, MovementStatus::Succeeded as i32);
    let postings: i64 = sqlx::query_scalar("SELECT count(*) FROM saldo_svc.postings WHERE id = $1")
        .bind(pending[0].0)
        .fetch_one(&w.pool)
        .await
        .unwrap();
    assert_eq!(postings, 1);
    let report = saldo_service::repo::reconcile(&w.pool_in_saldo().await)
        .await
        .unwrap();
    assert!(report.balanced(), "{report:?}");
}

impl World {
    async fn pool_in_saldo(&self) -> PgPool {
        platform::db::connect(&self.database_url, saldo_service::SCHEMA, 2)
            .await
            .unwrap()
    }
}
