//! Money movements — topup, withdraw and transfer — orchestrated the same way, so the three
//! services share this crate and differ only in their proto mapping:
//!
//! 1. validate the request; an `Idempotency-Key` seen before from the same caller returns
//!    the original result (same request), IDEMPOTENCY_KEY_REUSED (different request) or
//!    IDEMPOTENCY_KEY_IN_PROGRESS (still running) without touching anything;
//! 2. check the cards with the card service (owner, trashed, expired, currency);
//! 3. record the movement as `pending` with its key and request fingerprint;
//! 4. post it to the ledger with the movement id as the posting id;
//! 5. record `succeeded` or `failed` and queue the completion event in the same transaction.
//!
//! A crash between 3 and 5 leaves a pending row; [`Movements::recover_once`] re-posts it
//! under the same id (the ledger returns the original result if it was already applied) and
//! completes it, so money moves at most once. Completed rows are immutable (a trigger).

pub mod app;
pub mod error;
pub mod stats;
pub mod upstream;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use events::Envelope;
use events::payloads::movement as ev;
use platform::FieldViolation;
use platform::auth::{Authenticator, Principal, Subject};
use platform::pagination::Page;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

pub use error::MovementError;
pub use upstream::{CardInfo, Outcome, Side, Upstream};

/// The top-up and withdraw methods the platform knows (banks, e-wallets, retail networks and
/// card schemes), as in the reference platform.
pub const DEFAULT_METHODS: &[&str] = &[
    "alfamart",
    "indomart",
    "lawson",
    "dana",
    "ovo",
    "gopay",
    "linkaja",
    "jenius",
    "fastpay",
    "kudo",
    "bri",
    "mandiri",
    "bca",
    "bni",
    "bukopin",
    "e-banking",
    "visa",
    "mastercard",
    "discover",
    "american express",
    "paypal",
];

/// The three kinds of movement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Money from outside onto a card (method's system account → card).
    Topup,
    /// Money from a card to outside (card → method's system account).
    Withdraw,
    /// Money from one card to another.
    Transfer,
}

impl Kind {
    /// `topup`, `withdraw`, `transfer` (also the ledger posting kind).
    pub fn name(self) -> &'static str {
        match self {
            Self::Topup => "topup",
            Self::Withdraw => "withdraw",
            Self::Transfer => "transfer",
        }
    }

    fn table(self) -> &'static str {
        match self {
            Self::Topup => "topups",
            Self::Withdraw => "withdraws",
            Self::Transfer => "transfers",
        }
    }

    /// The topic of its completion events.
    pub fn topic(self) -> &'static str {
        match self {
            Self::Topup => events::topics::TOPUP_EVENTS,
            Self::Withdraw => events::topics::WITHDRAW_EVENTS,
            Self::Transfer => events::topics::TRANSFER_EVENTS,
        }
    }

    /// Permission to read everyone's movements of this kind.
    pub fn read_permission(self) -> &'static str {
        match self {
            Self::Topup => "topups.read",
            Self::Withdraw => "withdraws.read",
            Self::Transfer => "transfers.read",
        }
    }

    /// Permission to move money from (or onto) anyone's card.
    pub fn write_permission(self) -> &'static str {
        match self {
            Self::Topup => "topups.write",
            Self::Withdraw => "withdraws.write",
            Self::Transfer => "transfers.write",
        }
    }

    fn has_method(self) -> bool {
        !matches!(self, Self::Transfer)
    }

    /// The request field naming the (source) card.
    fn card_field(self) -> &'static str {
        match self {
            Self::Transfer => "from_card_number",
            _ => "card_number",
        }
    }
}

/// Limits and catalogue of one kind, from `<PREFIX>_MIN_AMOUNT`, `<PREFIX>_MAX_AMOUNT` and
/// `<PREFIX>_METHODS`.
#[derive(Clone, Debug)]
pub struct Rules {
    pub min_amount: i64,
    pub max_amount: i64,
    pub methods: Vec<String>,
}

impl Rules {
    /// Reads the rules of `kind` from the environment.
    pub fn from_env(kind: Kind) -> anyhow::Result<Self> {
        let prefix = kind.name().to_uppercase();
        let min_amount = platform::config::parsed(&format!("{prefix}_MIN_AMOUNT"), 100_i64)?;
        let max_amount =
            platform::config::parsed(&format!("{prefix}_MAX_AMOUNT"), 10_000_000_000_i64)?;
        anyhow::ensure!(
            0 < min_amount && min_amount <= max_amount,
            "{prefix}_MIN_AMOUNT must be positive and not above {prefix}_MAX_AMOUNT"
        );
        let methods =
            platform::config::optional(&format!("{prefix}_METHODS"), &DEFAULT_METHODS.join(","))
                .split(',')
                .map(|m| m.trim().to_lowercase())
                .filter(|m| !m.is_empty())
                .collect();
        Ok(Self {
            min_amount,
            max_amount,
            methods,
        })
    }
}

/// A recorded movement.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Movement {
    pub id: Uuid,
    pub requested_by: String,
    pub idempotency_key: String,
    pub fingerprint: Vec<u8>,
    pub user_id: Uuid,
    pub card_id: Uuid,
    pub masked_card_number: String,
    pub method: Option<String>,
    pub to_card_id: Option<Uuid>,
    pub to_user_id: Option<Uuid>,
    pub masked_to_card_number: Option<String>,
    pub amount: i64,
    pub currency: String,
    pub status: String,
    pub failure_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    /// Recorded with a past `effective_at` (an import): the ledger keeps that time too.
    pub backdated: bool,
}

const COLUMNS: &str = "id, requested_by, idempotency_key, fingerprint, user_id, card_id,
    masked_card_number, method, to_card_id, to_user_id, masked_to_card_number, amount,
    currency, status, failure_reason, created_at, completed_at, backdated";

/// A create request, as the caller sent it.
#[derive(Clone, Debug, Default)]
pub struct NewMovement {
    pub idempotency_key: String,
    /// The card topped up / withdrawn from / transferred from.
    pub card_number: String,
    /// Transfers: the receiving card.
    pub to_card_number: Option<String>,
    /// Topups and withdraws.
    pub method: Option<String>,
    pub amount: i64,
    /// Backdated imports and demo data (`ledger.backdate`): when it happened; `None` = now.
    pub effective_at: Option<DateTime<Utc>>,
}

/// Filters of a list.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// pending, succeeded, failed.
    pub status: Option<&'static str>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub card_id: Option<Uuid>,
    /// Admins: one user's; customers: ignored unless it is themselves.
    pub user_id: Option<Uuid>,
    /// Transfers with `card_id`: `Some(true)` outgoing only, `Some(false)` incoming only.
    pub outgoing: Option<bool>,
    /// Topups and withdraws: one method.
    pub method: Option<String>,
}

/// What the idempotency rules need of a recorded money request (a movement, a payment, a
/// refund): its request fingerprint and its outcome.
pub trait Recorded {
    fn id(&self) -> Uuid;
    fn fingerprint(&self) -> &[u8];
    /// pending, succeeded or failed.
    fn status(&self) -> &str;
    fn failure_reason(&self) -> Option<&str>;
}

impl Recorded for Movement {
    fn id(&self) -> Uuid {
        self.id
    }
    fn fingerprint(&self) -> &[u8] {
        &self.fingerprint
    }
    fn status(&self) -> &str {
        &self.status
    }
    fn failure_reason(&self) -> Option<&str> {
        self.failure_reason.as_deref()
    }
}

/// The answer to a request whose idempotency key was seen before: another request under the
/// key is IDEMPOTENCY_KEY_REUSED, a running one IDEMPOTENCY_KEY_IN_PROGRESS, a finished one
/// its original outcome.
pub fn replay<T: Recorded>(
    kind: &'static str,
    existing: T,
    fingerprint: &[u8],
) -> Result<T, MovementError> {
    if existing.fingerprint() != fingerprint {
        return Err(MovementError::KeyReused);
    }
    if existing.status() == "pending" {
        return Err(MovementError::KeyInProgress);
    }
    metrics::counter!("movement_idempotent_replays_total", "kind" => kind).increment(1);
    respond(kind, existing)
}

/// A completed record as the caller sees it: failed ones are errors carrying their reason.
pub fn respond<T: Recorded>(kind: &'static str, record: T) -> Result<T, MovementError> {
    if record.status() == "failed" {
        Err(MovementError::Rejected {
            kind,
            id: record.id(),
            reason: record.failure_reason().unwrap_or_default().to_owned(),
        })
    } else {
        Ok(record)
    }
}

/// `pending` / `succeeded` / `failed` ↔ `payments.common.v1.MovementStatus`.
pub fn status_to_proto(status: &str) -> i32 {
    use proto::common::v1::MovementStatus;
    let status = match status {
        "pending" => MovementStatus::Pending,
        "succeeded" => MovementStatus::Succeeded,
        "failed" => MovementStatus::Failed,
        _ => MovementStatus::Unspecified,
    };
    status as i32
}

/// The status filter of a list request (UNSPECIFIED = any).
pub fn status_from_proto(value: i32) -> Option<&'static str> {
    use proto::common::v1::MovementStatus;
    match MovementStatus::try_from(value) {
        Ok(MovementStatus::Pending) => Some("pending"),
        Ok(MovementStatus::Succeeded) => Some("succeeded"),
        Ok(MovementStatus::Failed) => Some("failed"),
        _ => None,
    }
}

fn subject(caller: &Principal) -> String {
    match &caller.subject {
        Subject::User(id) => id.to_string(),
        Subject::Service(name) => format!("service:{name}"),
    }
}

fn check_card_number(field: &'static str, number: &str) -> Result<(), FieldViolation> {
    if number.len() == 16 && number.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(FieldViolation::new(field, "must be a 16-digit card number"))
    }
}

/// The orchestrator of one kind of movement.
#[derive(Clone)]
pub struct Movements {
    kind: Kind,
    pool: PgPool,
    authenticator: Authenticator,
    upstream: Upstream,
    rules: Arc<Rules>,
}

impl Movements {
    pub fn new(
        kind: Kind,
        pool: PgPool,
        authenticator: Authenticator,
        upstream: Upstream,
        rules: Rules,
    ) -> Self {
        Self {
            kind,
            pool,
            authenticator,
            upstream,
            rules: Arc::new(rules),
        }
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn authenticator(&self) -> &Authenticator {
        &self.authenticator
    }

    fn validate(&self, request: &NewMovement) -> Result<(), MovementError> {
        let mut violations = Vec::new();
        let key = &request.idempotency_key;
        if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
            violations.push(FieldViolation::new(
                "idempotency_key",
                "is required: 1-255 visible ASCII characters (HTTP: the Idempotency-Key header)",
            ));
        }
        let card_field = self.kind.card_field();
        if let Err(v) = check_card_number(card_field, &request.card_number) {
            violations.push(v);
        }
        if self.kind == Kind::Transfer {
            let to = request.to_card_number.as_deref().unwrap_or_default();
            if let Err(v) = check_card_number("to_card_number", to) {
                violations.push(v);
            } else if to == request.card_number {
                violations.push(FieldViolation::new(
                    "to_card_number",
                    "must differ from from_card_number: a transfer to the same card moves nothing",
                ));
            }
        }
        if self.kind.has_method() {
            let method = request.method.as_deref().unwrap_or_default();
            if !self.rules.methods.iter().any(|m| m == method) {
                violations.push(FieldViolation::new(
                    "method",
                    format!("must be one of {}", self.rules.methods.join(", ")),
                ));
            }
        }
        if request.amount <= 0 {
            violations.push(FieldViolation::new(
                "amount",
                "must be a positive number of minor units",
            ));
        } else if request.amount < self.rules.min_amount || request.amount > self.rules.max_amount {
            violations.push(FieldViolation::new(
                "amount",
                format!(
                    "must be between {} and {} minor units",
                    self.rules.min_amount, self.rules.max_amount
                ),
            ));
        }
        if violations.is_empty() {
            Ok(())
        } else {
            Err(MovementError::Invalid(violations))
        }
    }

    fn fingerprint(request: &NewMovement) -> Vec<u8> {
        let mut hash = Sha256::new();
        for part in [
            request.card_number.as_str(),
            request.to_card_number.as_deref().unwrap_or(""),
            request.method.as_deref().unwrap_or(""),
            &request.amount.to_string(),
        ] {
            hash.update(part.as_bytes());
            hash.update([0]);
        }
        hash.finalize().to_vec()
    }

    async fn by_key(
        &self,
        requested_by: &str,
        key: &str,
    ) -> Result<Option<Movement>, MovementError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM {} WHERE requested_by = $1 AND idempotency_key = $2",
            self.kind.table()
        ))
        .bind(requested_by)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The answer to a request whose key was seen before.
    fn settle(&self, existing: Movement, fingerprint: &[u8]) -> Result<Movement, MovementError> {
        replay(self.kind.name(), existing, fingerprint)
    }

    /// A completed movement as the caller sees it: failed ones are errors.
    fn respond(&self, movement: Movement) -> Result<Movement, MovementError> {
        respond(self.kind.name(), movement)
    }

    fn check_card(&self, field: &'static str, card: &CardInfo) -> Result<(), MovementError> {
        if card.trashed {
            Err(MovementError::CardInactive(field))
        } else if card.expired {
            Err(MovementError::CardExpired(field))
        } else {
            Ok(())
        }
    }

    /// Creates (or replays) a movement. See the crate docs.
    pub async fn create(
        &self,
        caller: &Principal,
        request: NewMovement,
    ) -> Result<Movement, MovementError> {
        self.validate(&request)?;
        let started = std::time::Instant::now();
        let requested_by = subject(caller);
        let fingerprint = Self::fingerprint(&request);
        // The key lookup and the card lookups run concurrently; a known key wins whatever the
        // cards say now, so a replay returns the original answer.
        let card_field = self.kind.card_field();
        let receiver = async {
            match &request.to_card_number {
                Some(number) if self.kind == Kind::Transfer => {
                    Ok(Some(self.upstream.card("to_card_number", number).await?))
                }
                _ => Ok::<_, MovementError>(None),
            }
        };
        let cards = async {
            tokio::try_join!(
                self.upstream.card(card_field, &request.card_number),
                receiver
            )
        };
        let (existing, cards) =
            tokio::join!(self.by_key(&requested_by, &request.idempotency_key), cards);
        if let Some(existing) = existing? {
            return self.settle(existing, &fingerprint);
        }
        let (card, receiver) = cards?;
        if caller.user_id() != Some(card.user_id) && !caller.has(self.kind.write_permission()) {
            return Err(MovementError::CardNotOwned(card_field));
        }
        self.check_card(card_field, &card)?;
        if let Some(to) = &receiver {
            self.check_card("to_card_number", to)?;
            if to.currency != card.currency {
                return Err(MovementError::CurrencyMismatch(
                    card.currency.clone(),
                    to.currency.clone(),
                ));
            }
        }

        let id = Uuid::now_v7();
        let inserted: Option<Movement> = sqlx::query_as(&format!(
            "INSERT INTO {} (id, requested_by, idempotency_key, fingerprint, user_id, card_id,
                 masked_card_number, method, to_card_id, to_user_id, masked_to_card_number,
                 amount, currency, created_at, backdated)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,
                     COALESCE($14, now()), $14 IS NOT NULL)
             ON CONFLICT (requested_by, idempotency_key) DO NOTHING
             RETURNING {COLUMNS}",
            self.kind.table()
        ))
        .bind(id)
        .bind(&requested_by)
        .bind(&request.idempotency_key)
        .bind(&fingerprint)
        .bind(card.user_id)
        .bind(card.id)
        .bind(&card.masked_number)
        .bind(&request.method)
        .bind(receiver.as_ref().map(|r| r.id))
        .bind(receiver.as_ref().map(|r| r.user_id))
        .bind(receiver.as_ref().map(|r| r.masked_number.clone()))
        .bind(request.amount)
        .bind(&card.currency)
        .bind(request.effective_at)
        .fetch_optional(&self.pool)
        .await?;
        let Some(pending) = inserted else {
            // A concurrent request with the same key won the insert.
            let existing = self
                .by_key(&requested_by, &request.idempotency_key)
                .await?
                .ok_or_else(|| MovementError::Internal(anyhow::anyhow!("key vanished")))?;
            return self.settle(existing, &fingerprint);
        };
        platform::failpoint::hit(&format!("{}.after_pending", self.kind.name()));

        let outcome = match self.post(&pending).await {
            Ok(outcome) => outcome,
            Err(MovementError::AccountNotReady) => {
                // The ledger recorded nothing: drop the intent so the key can be retried.
                sqlx::query(&format!(
                    "DELETE FROM {} WHERE id = $1 AND status = 'pending'",
                    self.kind.table()
                ))
                .bind(pending.id)
                .execute(&self.pool)
                .await?;
                return Err(MovementError::AccountNotReady);
            }
            Err(e) => return Err(e),
        };
        platform::failpoint::hit(&format!("{}.after_posting", self.kind.name()));
        let movement = self.complete(&pending, &outcome).await?;
        metrics::histogram!("movement_duration_seconds", "kind" => self.kind.name())
            .record(started.elapsed().as_secs_f64());
        self.respond(movement)
    }

    /// Posts a recorded movement under its own id.
    async fn post(&self, m: &Movement) -> Result<Outcome, MovementError> {
        let method = m.method.clone().unwrap_or_default();
        let (debit, credit, description) = match self.kind {
            Kind::Topup => (
                Side::System(format!("topup:{method}")),
                Side::Card(m.card_id),
                format!("top-up via {method}"),
            ),
            Kind::Withdraw => (
                Side::Card(m.card_id),
                Side::System(format!("withdraw:{method}")),
                format!("withdraw to {method}"),
            ),
            Kind::Transfer => {
                let to = m.to_card_id.ok_or_else(|| {
                    MovementError::Internal(anyhow::anyhow!("transfer {} has no receiver", m.id))
                })?;
                (
                    Side::Card(m.card_id),
                    Side::Card(to),
                    format!(
                        "transfer {} -> {}",
                        m.masked_card_number,
                        m.masked_to_card_number.as_deref().unwrap_or("?")
                    ),
                )
            }
        };
        self.upstream
            .post(
                m.id,
                self.kind.name(),
                debit,
                credit,
                m.amount,
                &m.currency,
                description,
                m.backdated.then_some(m.created_at),
            )
            .await
    }

    /// Records the ledger's outcome (once) with its completion event: one statement, so the
    /// update and the outbox row commit together without a multi-round-trip transaction.
    async fn complete(
        &self,
        pending: &Movement,
        outcome: &Outcome,
    ) -> Result<Movement, MovementError> {
        let (status, reason) = match outcome {
            Outcome::Posted => ("succeeded", None),
            Outcome::Rejected(reason) => ("failed", Some(reason.clone())),
        };
        // A backdated movement completes at its own time, so its history reads in order.
        let completed_at = if pending.backdated {
            pending.created_at
        } else {
            Utc::now()
        };
        let mut done = pending.clone();
        done.status = status.to_owned();
        done.failure_reason = reason.clone();
        done.completed_at = Some(completed_at);
        let event = self.event(&done)?;
        let (payload, headers) =
            events::outbox::encode(&event).map_err(|e| MovementError::Internal(e.into()))?;
        let completed: Option<Movement> = sqlx::query_as(&format!(
            "WITH done AS (
                 UPDATE {} SET status = $2, failure_reason = $3, completed_at = $4
                 WHERE id = $1 AND status = 'pending' RETURNING {COLUMNS}),
             event AS (
                 INSERT INTO outbox (event_id, topic, partition_key, event_type, payload, headers)
                 SELECT $5, $6, $7, $8, $9, $10 FROM done RETURNING 1)
             SELECT done.*, pg_notify('outbox_' || current_schema(), '') IS NULL AS notified
             FROM done",
            self.kind.table()
        ))
        .bind(pending.id)
        .bind(status)
        .bind(&reason)
        .bind(completed_at)
        .bind(event.id)
        .bind(self.kind.topic())
        .bind(&event.subject)
        .bind(&event.event_type)
        .bind(payload)
        .bind(headers)
        .fetch_optional(&self.pool)
        .await?;
        match completed {
            Some(movement) => {
                metrics::counter!("movements_total", "kind" => self.kind.name(), "status" => status)
                    .increment(1);
                tracing::info!(kind = self.kind.name(), id = %movement.id, status,
                    reason = ?movement.failure_reason, amount = movement.amount, "movement completed");
                Ok(movement)
            }
            // Completed by someone else (recovery and the original request racing): theirs.
            None => self.load(pending.id).await,
        }
    }

    fn event(&self, m: &Movement) -> Result<Envelope, MovementError> {
        let data = ev::Movement {
            id: m.id,
            kind: self.kind.name().to_owned(),
            status: m.status.clone(),
            failure_reason: m.failure_reason.clone(),
            amount: m.amount,
            currency: m.currency.clone(),
            method: m.method.clone(),
            card_id: m.card_id,
            user_id: m.user_id,
            masked_card_number: m.masked_card_number.clone(),
            to_card_id: m.to_card_id,
            to_user_id: m.to_user_id,
            masked_to_card_number: m.masked_to_card_number.clone(),
            created_at: m.created_at,
            completed_at: m.completed_at.unwrap_or_else(Utc::now),
        };
        let event_type = ev::event_type(self.kind.name(), m.status == "succeeded");
        Envelope::new(
            &format!("{}-service", self.kind.name()),
            &event_type,
            m.id,
            &data,
        )
        .map_err(|e| MovementError::Internal(e.into()))
    }

    async fn load(&self, id: Uuid) -> Result<Movement, MovementError> {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM {} WHERE id = $1",
            self.kind.table()
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(MovementError::NotFound(self.kind.name()))
    }

    fn visible(&self, caller: &Principal, m: &Movement) -> bool {
        let me = caller.user_id();
        me.is_some() && (me == Some(m.user_id) || me == m.to_user_id)
            || caller.has(self.kind.read_permission())
    }

    /// One movement, if the caller is a party to it or may read all.
    pub async fn get(&self, caller: &Principal, id: Uuid) -> Result<Movement, MovementError> {
        let movement = self.load(id).await?;
        if self.visible(caller, &movement) {
            Ok(movement)
        } else {
            Err(MovementError::NotFound(self.kind.name()))
        }
    }

    /// A page of movements, newest first. Customers see the ones they are a party to.
    pub async fn list(
        &self,
        caller: &Principal,
        filter: Filter,
        page: Page,
    ) -> Result<(Vec<Movement>, i64), MovementError> {
        let party = if caller.has(self.kind.read_permission()) {
            filter.user_id
        } else {
            match (caller.user_id(), filter.user_id) {
                (Some(me), None) => Some(me),
                (Some(me), Some(other)) if me == other => Some(me),
                _ => {
                    return Err(platform::auth::AuthError::MissingPermission(
                        self.kind.read_permission().to_owned(),
                    )
                    .into());
                }
            }
        };
        let direction = match filter.outgoing {
            None => "both",
            Some(true) => "out",
            Some(false) => "in",
        };
        let predicate = "WHERE ($1::uuid IS NULL OR user_id = $1 OR to_user_id = $1)
              AND ($2::uuid IS NULL OR (card_id = $2 AND $3 <> 'in')
                   OR (to_card_id = $2 AND $3 <> 'out'))
              AND ($4::text IS NULL OR status = $4)
              AND ($5::timestamptz IS NULL OR created_at >= $5)
              AND ($6::timestamptz IS NULL OR created_at < $6)
              AND ($7::text IS NULL OR method = $7)";
        let table = self.kind.table();
        let mut conn = self.pool.acquire().await?;
        let total: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table} {predicate}"))
            .bind(party)
            .bind(filter.card_id)
            .bind(direction)
            .bind(filter.status)
            .bind(filter.from)
            .bind(filter.to)
            .bind(&filter.method)
            .fetch_one(&mut *conn)
            .await?;
        let rows = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM {table} {predicate}
             ORDER BY created_at DESC, id DESC LIMIT $8 OFFSET $9"
        ))
        .bind(party)
        .bind(filter.card_id)
        .bind(direction)
        .bind(filter.status)
        .bind(filter.from)
        .bind(filter.to)
        .bind(&filter.method)
        .bind(page.limit())
        .bind(page.offset())
        .fetch_all(&mut *conn)
        .await?;
        Ok((rows, total))
    }

    /// Finishes movements left pending for longer than `grace` (a crash, a timeout): each is
    /// re-posted under its own id — the ledger applies it or returns what it did before —
    /// and completed. Returns how many were completed.
    pub async fn recover_once(&self, grace: Duration) -> Result<usize, MovementError> {
        let grace =
            chrono::Duration::from_std(grace).map_err(|e| MovementError::Internal(e.into()))?;
        let stale: Vec<Movement> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM {} WHERE status = 'pending' AND created_at < $1
             ORDER BY created_at LIMIT 100",
            self.kind.table()
        ))
        .bind(Utc::now() - grace)
        .fetch_all(&self.pool)
        .await?;
        let mut completed = 0;
        for movement in stale {
            let outcome = match self.post(&movement).await {
                Ok(outcome) => outcome,
                Err(MovementError::AccountNotReady)
                    if Utc::now() - movement.created_at > chrono::Duration::hours(1) =>
                {
                    Outcome::Rejected("ACCOUNT_NOT_FOUND".to_owned())
                }
                Err(e) => {
                    tracing::warn!(id = %movement.id, error = %platform::error::DisplayChain(&e),
                        "recovery could not post yet");
                    continue;
                }
            };
            self.complete(&movement, &outcome).await?;
            metrics::counter!("movement_recovered_total", "kind" => self.kind.name()).increment(1);
            tracing::warn!(kind = self.kind.name(), id = %movement.id, ?outcome,
                "pending movement recovered");
            completed += 1;
        }
        Ok(completed)
    }

    /// Runs [`Self::recover_once`] every `interval` until shutdown.
    pub async fn run_recovery(
        self,
        interval: Duration,
        grace: Duration,
        shutdown: platform::shutdown::Shutdown,
    ) {
        loop {
            if let Err(e) = self.recover_once(grace).await {
                tracing::error!(error = %platform::error::DisplayChain(&e), "recovery round failed");
            }
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = shutdown.wait() => return,
            }
        }
    }
}
