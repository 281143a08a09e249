//! `seed demo`: deterministic demo data through the services' gRPC APIs, so every balance
//! comes from real ledger postings. Known logins (customers and merchant owners), two cards
//! per customer, active and pending merchants with documents and API keys, and 24 months of
//! top-ups, transfers, withdraws, payments and refunds, each recorded at its own past time
//! (`effective_at`, which needs the `saldo.backdate` permission only this tool's token has).
//!
//! Idempotency keys are derived from the run's plan, so a second run replays instead of
//! repeating; a finished run leaves a marker account and later runs stop right away. A run
//! that stopped part-way can simply be started again: it issues new cards (the old ones' CVVs
//! are gone) and skips the months already seeded. The actors (users, cards, merchants) are
//! [`actors`]', the dated history [`history`]'s.
//!
//! Why one file of ~410 lines: the plan (what to create, in which order, with which keys) is
//! read as one script; the actors and the history are in their own modules.

mod actors;
mod history;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike, TimeZone, Utc};
use platform::auth::TokenIssuer;
use proto::card::v1::card_service_client::CardServiceClient;
use proto::merchant::v1::merchant_document_service_client::MerchantDocumentServiceClient;
use proto::merchant::v1::merchant_service_client::MerchantServiceClient;
use proto::role::v1::role_service_client::RoleServiceClient;
use proto::saldo::v1::saldo_service_client::SaldoServiceClient;
use proto::topup::v1::topup_service_client::TopupServiceClient;
use proto::transaction::v1::transaction_service_client::TransactionServiceClient;
use proto::transfer::v1::transfer_service_client::TransferServiceClient;
use proto::user::v1::user_service_client::UserServiceClient;
use proto::withdraw::v1::withdraw_service_client::WithdrawServiceClient;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tonic::transport::Channel;

use self::actors::{
    ensure_merchant, ensure_user, find_user, issue_card, wait_account, wait_merchant_account,
};
use self::history::{Op, month_done, run_month};
use crate::Target;

/// The password of every demo login (customers and merchant owners).
pub const DEMO_PASSWORD: &str = "Demo-Customer-2026!";
const MARKER: &str = "demo-seed-complete@demo.payments.local";
const DEADLINE: Duration = Duration::from_secs(20);

/// What the seeder may do: its grants (`platform::auth::keys::SERVICE_GRANTS`).
fn permissions() -> &'static [&'static str] {
    platform::auth::keys::grants("seeder")
}

/// How much to seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Size {
    /// 8 customers, 3 merchants, about 1 500 operations: seconds.
    Small,
    /// 2 000 customers, 40 merchants, 1 000 000 payments: for benchmarks (long; progress shown).
    Large,
}

impl Size {
    fn customers(self) -> usize {
        match self {
            Self::Small => 8,
            Self::Large => 2_000,
        }
    }

    fn merchants(self) -> usize {
        match self {
            Self::Small => 2,
            Self::Large => 40,
        }
    }

    /// How many payments to seed (spread over 24 months, each month rounded up).
    pub fn payments(self) -> usize {
        match self {
            Self::Small => 8 * 24 * 3,
            Self::Large => 1_000_000,
        }
    }

    fn concurrency(self) -> usize {
        match self {
            Self::Small => 8,
            Self::Large => 64,
        }
    }
}

impl std::str::FromStr for Size {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s {
            "small" => Ok(Self::Small),
            "large" => Ok(Self::Large),
            other => anyhow::bail!("unknown size {other:?}; use small or large"),
        }
    }
}

/// Where every service is.
#[derive(Clone, Debug)]
pub struct Services {
    pub target: Target,
    pub card: String,
    pub saldo: String,
    pub topup: String,
    pub withdraw: String,
    pub transfer: String,
    pub merchant: String,
    pub transaction: String,
}

impl Services {
    /// From the `*_SERVICE_URL` variables (defaults: the local ports).
    pub fn from_env() -> anyhow::Result<Self> {
        use platform::config::optional;
        Ok(Self {
            target: Target::from_env()?,
            card: optional("CARD_SERVICE_URL", &platform::ports::CARD.local_url()),
            saldo: optional("SALDO_SERVICE_URL", &platform::ports::SALDO.local_url()),
            topup: optional("TOPUP_SERVICE_URL", &platform::ports::TOPUP.local_url()),
            transfer: optional(
                "TRANSFER_SERVICE_URL",
                &platform::ports::TRANSFER.local_url(),
            ),
            withdraw: optional(
                "WITHDRAW_SERVICE_URL",
                &platform::ports::WITHDRAW.local_url(),
            ),
            merchant: optional(
                "MERCHANT_SERVICE_URL",
                &platform::ports::MERCHANT.local_url(),
            ),
            transaction: optional(
                "TRANSACTION_SERVICE_URL",
                &platform::ports::TRANSACTION.local_url(),
            ),
        })
    }
}

/// What a run did.
#[derive(Debug, Default)]
pub struct Summary {
    pub customers: usize,
    pub merchants: usize,
    pub operations: u64,
    pub failed_as_planned: u64,
    pub already_present: bool,
}

#[derive(Clone)]
pub(super) struct Clients {
    users: UserServiceClient<Channel>,
    roles: RoleServiceClient<Channel>,
    cards: CardServiceClient<Channel>,
    saldo: SaldoServiceClient<Channel>,
    topups: TopupServiceClient<Channel>,
    withdraws: WithdrawServiceClient<Channel>,
    transfers: TransferServiceClient<Channel>,
    merchants: MerchantServiceClient<Channel>,
    documents: MerchantDocumentServiceClient<Channel>,
    payments: TransactionServiceClient<Channel>,
    issuer: Arc<platform::auth::ServiceToken>,
}

impl Clients {
    fn bearer(&self) -> anyhow::Result<String> {
        self.issuer.bearer()
    }

    fn request<T>(&self, message: T) -> anyhow::Result<tonic::Request<T>> {
        Ok(platform::grpc::outgoing(
            message,
            Some(&self.bearer()?),
            DEADLINE,
        ))
    }
}

#[derive(Clone, Debug)]
pub(super) struct DemoCard {
    id: String,
    number: String,
    cvv: String,
}

#[derive(Clone, Debug)]
pub(super) struct DemoMerchant {
    id: String,
    key: String,
}

pub(super) fn ts(at: DateTime<Utc>) -> Option<prost_types::Timestamp> {
    Some(platform::time::to_proto(at))
}

/// The first instant of the month `back` months before `now`'s month.
pub(super) fn month_start(now: DateTime<Utc>, back: u32) -> DateTime<Utc> {
    let months = now.year() * 12 + now.month0() as i32 - back as i32;
    Utc.with_ymd_and_hms(
        months.div_euclid(12),
        months.rem_euclid(12) as u32 + 1,
        1,
        0,
        0,
        0,
    )
    .single()
    .unwrap_or(now)
}

/// Seeds `size` into the platform at `services`; prints progress to stderr.
pub async fn run(services: &Services, size: Size) -> anyhow::Result<Summary> {
    let issuer = TokenIssuer::new(&services.target.jwt)?;
    let channel = |url: &str| platform::grpc::channel(url);
    let merchant_channel = channel(&services.merchant)?;
    let c = Clients {
        users: UserServiceClient::new(channel(&services.target.user_service_url)?),
        roles: RoleServiceClient::new(channel(&services.target.role_service_url)?),
        cards: CardServiceClient::new(channel(&services.card)?),
        saldo: SaldoServiceClient::new(channel(&services.saldo)?),
        topups: TopupServiceClient::new(channel(&services.topup)?),
        withdraws: WithdrawServiceClient::new(channel(&services.withdraw)?),
        transfers: TransferServiceClient::new(channel(&services.transfer)?),
        merchants: MerchantServiceClient::new(merchant_channel.clone()),
        documents: MerchantDocumentServiceClient::new(merchant_channel),
        payments: TransactionServiceClient::new(channel(&services.transaction)?),
        issuer: Arc::new(platform::auth::ServiceToken::new(issuer, permissions())),
    };
    if find_user(&c, MARKER).await?.is_some() {
        eprintln!("demo data is already present (marker {MARKER}); nothing to do");
        return Ok(Summary {
            already_present: true,
            ..Summary::default()
        });
    }
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(2026);
    // An earlier run that stopped part-way left its customers (but no marker). Their cards'
    // CVVs were shown to that run only, so this one issues new cards and skips the months that
    // run finished (see `month_done`).
    let resumed = find_user(&c, "customer0001@demo.payments.local")
        .await?
        .is_some();
    if resumed {
        eprintln!("resuming an interrupted run: new cards, finished months skipped");
    }

    // People: customers with two cards each, merchant owners.
    let mut cards: Vec<[DemoCard; 2]> = Vec::new();
    for i in 0..size.customers() {
        let email = format!("customer{:04}@demo.payments.local", i + 1);
        let id = ensure_user(&c, &email, "Customer", &format!("{:04}", i + 1)).await?;
        cards.push([issue_card(&c, &id).await?, issue_card(&c, &id).await?]);
        if (i + 1) % 100 == 0 {
            eprintln!("  {} customers", i + 1);
        }
    }
    for pair in &cards {
        for card in pair {
            wait_account(&c, &card.id).await?;
        }
    }
    eprintln!("{} customers with 2 cards each", cards.len());

    let mut merchants = Vec::new();
    let names = [
        "Kopi Kenangan Demo",
        "Gramedia Demo",
        "Bengkel Demo",
        "Warung Demo",
    ];
    for i in 0..size.merchants() + 1 {
        let owner_email = format!("merchant{:03}@demo.payments.local", i + 1);
        let owner = ensure_user(&c, &owner_email, "Merchant", &format!("Owner {}", i + 1)).await?;
        let _ = c
            .roles
            .clone()
            .assign_role(c.request(proto::role::v1::AssignRoleRequest {
                user_id: owner.clone(),
                role: "merchant".into(),
            })?)
            .await;
        let name = format!("{} {}", names[i % names.len()], i + 1);
        // The last one stays pending, for the review queue.
        let active = i < size.merchants();
        merchants.push((ensure_merchant(&c, &owner, &name, active).await?, active));
    }
    let active: Vec<DemoMerchant> = merchants
        .iter()
        .filter(|(_, a)| *a)
        .map(|(m, _)| m.clone())
        .collect();
    for m in &active {
        wait_merchant_account(&c, &m.id).await?;
    }
    eprintln!(
        "{} merchants ({} active, 1 pending)",
        merchants.len(),
        active.len()
    );

    // 24 months of money, oldest first so balances grow in time order.
    let now = Utc::now();
    let done = Arc::new(AtomicU64::new(0));
    let planned_failures = Arc::new(AtomicU64::new(0));
    let payments_per_month = size.payments().div_ceil(24);
    for back in (0..24u32).rev() {
        let start = month_start(now, back);
        let end = if back == 0 {
            now - chrono::Duration::minutes(5)
        } else {
            month_start(now, back - 1)
        };
        let span = (end - start).num_seconds().max(60);
        let at = |rng: &mut StdRng| start + chrono::Duration::seconds(rng.gen_range(0..span));
        let mut ops: Vec<Op> = Vec::new();
        for (i, pair) in cards.iter().enumerate() {
            ops.push(Op::Topup {
                card: pair[0].clone(),
                amount: rng.gen_range(50..500) * 10_000,
                method: ["bca", "mandiri", "gopay", "ovo", "dana"][rng.gen_range(0..5)],
                at: start + chrono::Duration::seconds(rng.gen_range(0..3600)),
                key: format!("demo-topup-{back}-{i}"),
            });
            let peer = &cards[(i + 1 + rng.gen_range(0..cards.len().max(2) - 1)) % cards.len()];
            if !std::ptr::eq(peer, pair) {
                ops.push(Op::Transfer {
                    from: pair[0].clone(),
                    to: peer[1].clone(),
                    amount: rng.gen_range(1..100) * 1_000,
                    at: at(&mut rng),
                    key: format!("demo-transfer-{back}-{i}"),
                });
            }
            if rng.gen_bool(0.4) {
                ops.push(Op::Withdraw {
                    card: pair[0].clone(),
                    amount: rng.gen_range(1..50) * 10_000,
                    method: ["bca", "bni", "mandiri"][rng.gen_range(0..3)],
                    at: at(&mut rng),
                    key: format!("demo-withdraw-{back}-{i}"),
                });
            }
        }
        for n in 0..payments_per_month {
            let customer = rng.gen_range(0..cards.len());
            let merchant = &active[rng.gen_range(0..active.len())];
            let amount = rng.gen_range(5..300) * 1_000;
            let refund = rng.gen_bool(0.08).then(|| amount / rng.gen_range(1..4));
            ops.push(Op::Payment {
                card: cards[customer][0].clone(),
                merchant: merchant.clone(),
                amount,
                method: ["visa", "mastercard", "gopay", "ovo", "dana", "paypal"]
                    [rng.gen_range(0..6)],
                at: at(&mut rng),
                key: format!("demo-payment-{back}-{n}"),
                refund,
            });
        }
        ops.sort_by_key(Op::at);
        if resumed && month_done(&c, &ops).await? {
            eprintln!(
                "  {}: seeded by the interrupted run; skipped",
                start.format("%Y-%m")
            );
            continue;
        }
        run_month(&c, ops, size.concurrency(), &done, &planned_failures).await?;
        eprintln!(
            "  {}: {} operations so far ({:.0}/s)",
            start.format("%Y-%m"),
            done.load(Ordering::Relaxed),
            done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64().max(0.001)
        );
    }

    ensure_user(&c, MARKER, "Demo", "Marker").await?;
    Ok(Summary {
        customers: cards.len(),
        merchants: merchants.len(),
        operations: done.load(Ordering::Relaxed),
        failed_as_planned: planned_failures.load(Ordering::Relaxed),
        already_present: false,
    })
}
