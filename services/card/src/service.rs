//! Use cases of the card service, with their SQL. Every change commits together with its
//! outbox event; the saldo service opens and closes accounts from those events.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Datelike, Utc};
use events::payloads::card as ev;
use events::{Envelope, topics};
use platform::FieldViolation;
use platform::auth::{Authenticator, Principal, ServiceToken};
use platform::pagination::{LifecycleFilter, Page};
use proto::saldo::v1::CardAccountRequest;
use proto::saldo::v1::saldo_service_client::SaldoServiceClient;
use proto::user::v1::GetUserRequest;
use proto::user::v1::user_service_client::UserServiceClient;
use sqlx::{PgConnection, PgPool};
use tonic::transport::Channel;
use uuid::Uuid;

use crate::error::CardError;
use crate::keys::{self, CardKeys, SealedPan};
use crate::number;

pub const CARDS_READ: &str = "cards.read";
pub const CARDS_WRITE: &str = "cards.write";
pub const CARDS_DELETE: &str = "cards.delete";
/// Services that take a customer's consent (the transaction service).
pub const CARDS_VERIFY: &str = "cards.verify";

const SOURCE: &str = "card-service";
const CALL_DEADLINE: Duration = Duration::from_secs(5);

/// A card row.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct CardRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub number: String,
    pub brand: String,
    pub card_type: String,
    pub currency: String,
    pub expiry_month: i16,
    pub expiry_year: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

impl CardRow {
    /// Whether the card's expiry month has passed at `now` (a card is valid through the
    /// last day of its expiry month).
    pub fn expired_at(&self, now: DateTime<Utc>) -> bool {
        let (year, month) = (now.year(), now.month());
        let expiry_month = u32::try_from(self.expiry_month).unwrap_or(0);
        (self.expiry_year, expiry_month) < (year, month)
    }

    /// Not trashed and not expired.
    pub fn usable(&self) -> bool {
        self.deleted_at.is_none() && !self.expired_at(Utc::now())
    }

    fn event_data(&self) -> ev::CardData {
        ev::CardData {
            card_id: self.id,
            user_id: self.user_id,
            masked_number: number::mask(&self.number),
            brand: self.brand.clone(),
            card_type: self.card_type.clone(),
            currency: self.currency.clone(),
            expiry_month: u32::try_from(self.expiry_month).unwrap_or(0),
            expiry_year: self.expiry_year,
        }
    }
}

/// The columns of a card as stored: the number sealed (see [`crate::keys`]).
const CARD_COLUMNS: &str = "id, user_id, pan_ciphertext, pan_key, brand, card_type, currency,
        expiry_month, expiry_year, created_at, updated_at, deleted_at";

const SELECT_CARD: &str = "SELECT id, user_id, pan_ciphertext, pan_key, brand, card_type,
        currency, expiry_month, expiry_year, created_at, updated_at, deleted_at FROM cards";

/// A card row as stored; [`Cards::reveal`] opens its number.
#[derive(sqlx::FromRow)]
struct StoredCard {
    id: Uuid,
    user_id: Uuid,
    pan_ciphertext: Vec<u8>,
    pan_key: Vec<u8>,
    brand: String,
    card_type: String,
    currency: String,
    expiry_month: i16,
    expiry_year: i32,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    deleted_at: Option<DateTime<Utc>>,
}

/// Input of create.
#[derive(Debug)]
pub struct NewCard {
    pub user_id: Option<Uuid>,
    pub brand: String,
    pub card_type: String,
    pub currency: String,
    pub valid_years: u32,
}

/// Input of update.
#[derive(Debug, Default)]
pub struct CardChange {
    pub card_type: Option<String>,
    pub expiry: Option<(u32, i32)>,
}

/// How many CVV mismatches lock a card, and for how long.
#[derive(Clone, Copy, Debug)]
pub struct CvvLockout {
    pub max_attempts: i32,
    pub lock_for: Duration,
    /// CVV mismatches one merchant API key may cause across all cards per window.
    pub per_key_max_failures: i32,
    /// The window of `per_key_max_failures`.
    pub per_key_window: Duration,
}

/// Whose cards a list shows.
#[derive(Debug, Clone, Copy)]
pub enum Owner {
    /// The caller's.
    Caller,
    /// One user's.
    User(Uuid),
    /// Everyone's (admins).
    Everyone,
}

/// The card service.
#[derive(Clone)]
pub struct Cards {
    pool: PgPool,
    authenticator: Authenticator,
    keys: Arc<CardKeys>,
    currencies: Arc<Vec<String>>,
    cvv_lockout: CvvLockout,
    token: Arc<ServiceToken>,
    saldo: SaldoServiceClient<Channel>,
    users: UserServiceClient<Channel>,
}

impl Cards {
    // One argument per collaborator; a builder would add ceremony for one call site.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        pool: PgPool,
        authenticator: Authenticator,
        keys: CardKeys,
        currencies: Vec<String>,
        cvv_lockout: CvvLockout,
        token: ServiceToken,
        saldo: SaldoServiceClient<Channel>,
        users: UserServiceClient<Channel>,
    ) -> Self {
        Self {
            pool,
            authenticator,
            keys: Arc::new(keys),
            currencies: Arc::new(currencies),
            cvv_lockout,
            token: Arc::new(token),
            saldo,
            users,
        }
    }

    pub fn authenticator(&self) -> &Authenticator {
        &self.authenticator
    }

    /// The card with its number opened.
    fn reveal(&self, stored: StoredCard) -> Result<CardRow, CardError> {
        let number = self
            .keys
            .open(
                stored.id,
                &SealedPan {
                    ciphertext: stored.pan_ciphertext,
                    wrapped_key: stored.pan_key,
                },
            )
            .map_err(CardError::Internal)?;
        Ok(CardRow {
            id: stored.id,
            user_id: stored.user_id,
            number,
            brand: stored.brand,
            card_type: stored.card_type,
            currency: stored.currency,
            expiry_month: stored.expiry_month,
            expiry_year: stored.expiry_year,
            created_at: stored.created_at,
            updated_at: stored.updated_at,
            deleted_at: stored.deleted_at,
        })
    }

    /// Seals the numbers of cards stored before encryption at rest (one batch per call until
    /// none is left), and drops their CVV hashes: from then on CVVs are derived. Run at
    /// start; idempotent, and safe with several replicas (rows are claimed with SKIP LOCKED).
    pub async fn seal_legacy_numbers(&self) -> Result<u64, CardError> {
        let mut sealed = 0;
        loop {
            let mut tx = self.pool.begin().await?;
            let rows: Vec<(Uuid, String)> = sqlx::query_as(
                "SELECT id, number FROM cards WHERE pan_ciphertext IS NULL AND number IS NOT NULL
                 ORDER BY id LIMIT 500 FOR UPDATE SKIP LOCKED",
            )
            .fetch_all(&mut *tx)
            .await?;
            if rows.is_empty() {
                return Ok(sealed);
            }
            for (id, number) in &rows {
                let pan = self.keys.seal(*id, number).map_err(CardError::Internal)?;
                sqlx::query(
                    "UPDATE cards SET pan_ciphertext = $2, pan_key = $3, pan_hash = $4,
                         pan_last4 = right($5, 4), number = NULL, cvv_hash = NULL
                     WHERE id = $1",
                )
                .bind(id)
                .bind(&pan.ciphertext)
                .bind(&pan.wrapped_key)
                .bind(self.keys.lookup_hash(number))
                .bind(number)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            sealed += rows.len() as u64;
            tracing::info!(sealed, "card numbers sealed (encryption at rest)");
        }
    }

    /// The CVV of a card: derived, never stored. Only its owner sees it.
    pub async fn cvv(&self, caller: &Principal, id: Uuid) -> Result<String, CardError> {
        let mut conn = self.pool.acquire().await?;
        let card = self.load(&mut conn, id).await?;
        if caller.user_id() != Some(card.user_id) || card.deleted_at.is_some() {
            return Err(CardError::NotFound);
        }
        let period: i32 = sqlx::query_scalar("SELECT cvv_period FROM cards WHERE id = $1")
            .bind(id)
            .fetch_one(&mut *conn)
            .await?;
        Ok(self.keys.cvv(&card.number, period))
    }

    fn bearer(&self) -> Result<String, CardError> {
        self.token.bearer().map_err(CardError::Internal)
    }

    async fn ensure_user_exists(&self, user_id: Uuid) -> Result<(), CardError> {
        let request = platform::grpc::outgoing(
            GetUserRequest {
                id: user_id.to_string(),
            },
            Some(&self.bearer()?),
            CALL_DEADLINE,
        );
        match self.users.clone().get_user(request).await {
            Ok(user) if user.get_ref().deleted_at.is_none() => Ok(()),
            Ok(_) => Err(CardError::UserNotFound),
            Err(s) if s.code() == tonic::Code::NotFound => Err(CardError::UserNotFound),
            Err(s) => Err(CardError::Upstream("user service", s)),
        }
    }

    /// The customer's consent to a payment: the card with `number` if `cvv` matches its hash.
    /// Mismatches count per card; the `max_attempts`-th locks CVV checks for `lock_for`
    /// (every check fails then, even with the right CVV) and resets the count.
    /// Reserves a CVV check of `key` in its window; fails with `KeyThrottled` when the key
    /// has used up its mismatches. A matching CVV gives the reservation back.
    async fn reserve_key_check(&self, key: Uuid) -> Result<(), CardError> {
        let window = self.cvv_lockout.per_key_window.as_secs_f64();
        let (reserved, started): (i32, DateTime<Utc>) = sqlx::query_as(
            "INSERT INTO cvv_key_attempts AS a (api_key_id, window_started_at, reserved)
             VALUES ($1, now(), 1)
             ON CONFLICT (api_key_id) DO UPDATE SET
                 window_started_at = CASE
                     WHEN a.window_started_at < now() - make_interval(secs => $2) THEN now()
                     ELSE a.window_started_at END,
                 reserved = CASE
                     WHEN a.window_started_at < now() - make_interval(secs => $2) THEN 1
                     ELSE a.reserved + 1 END
             RETURNING reserved, window_started_at",
        )
        .bind(key)
        .bind(window)
        .fetch_one(&self.pool)
        .await?;
        if reserved > self.cvv_lockout.per_key_max_failures {
            metrics::counter!("card_cvv_checks_total", "outcome" => "key_throttled").increment(1);
            let until = started
                + chrono::Duration::from_std(self.cvv_lockout.per_key_window).unwrap_or_default();
            tracing::warn!(api_key_id = %key, %until, "CVV checks of an API key throttled");
            return Err(CardError::KeyThrottled { until });
        }
        Ok(())
    }

    async fn release_key_check(&self, key: Uuid) -> Result<(), CardError> {
        sqlx::query(
            "UPDATE cvv_key_attempts SET reserved = greatest(reserved - 1, 0)
             WHERE api_key_id = $1",
        )
        .bind(key)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Checks a CVV for a merchant payment. Mismatches lock the card after
    /// `max_attempts`; with `api_key`, they also count against the key across all cards.
    pub async fn verify_cvv(
        &self,
        caller: &Principal,
        number: &str,
        cvv: &str,
        api_key: Option<Uuid>,
    ) -> Result<CardRow, CardError> {
        caller.require(CARDS_VERIFY)?;
        let mut violations = Vec::new();
        if !number::is_valid(number) {
            violations.push(FieldViolation::new(
                "card_number",
                "must be a 16-digit card number",
            ));
        }
        if !(cvv.len() == 3 && cvv.bytes().all(|b| b.is_ascii_digit())) {
            violations.push(FieldViolation::new("cvv", "must be the card's 3-digit CVV"));
        }
        if !violations.is_empty() {
            return Err(CardError::Invalid(violations));
        }
        if let Some(key) = api_key {
            self.reserve_key_check(key).await?;
        }
        let checked = self.check_cvv(number, cvv).await;
        if let Some(key) = api_key
            && !matches!(
                checked,
                Err(CardError::CvvMismatch { .. } | CardError::CardLocked { .. })
            )
        {
            // Only mismatches (and checks refused by a card lock) keep counting.
            self.release_key_check(key).await?;
        }
        checked
    }

    async fn check_cvv(&self, number: &str, cvv: &str) -> Result<CardRow, CardError> {
        let row: Option<(Uuid, i32, Option<DateTime<Utc>>)> = sqlx::query_as(
            "SELECT id, cvv_period, cvv_locked_until FROM cards WHERE pan_hash = $1",
        )
        .bind(self.keys.lookup_hash(number))
        .fetch_optional(&self.pool)
        .await?;
        let (id, period, locked_until) = row.ok_or(CardError::NotFound)?;
        if let Some(until) = locked_until
            && until > Utc::now()
        {
            metrics::counter!("card_cvv_checks_total", "outcome" => "locked").increment(1);
            return Err(CardError::CardLocked { until });
        }
        // The number found by its keyed hash is `number` itself: derive its CVV and compare
        // in constant time.
        if keys::same(&self.keys.cvv(number, period), cvv) {
            sqlx::query(
                "UPDATE cards SET cvv_failed_attempts = 0, cvv_locked_until = NULL
                 WHERE id = $1 AND (cvv_failed_attempts <> 0 OR cvv_locked_until IS NOT NULL)",
            )
            .bind(id)
            .execute(&self.pool)
            .await?;
            metrics::counter!("card_cvv_checks_total", "outcome" => "matched").increment(1);
            let mut conn = self.pool.acquire().await?;
            return self.load(&mut conn, id).await;
        }
        let lock_secs = i64::try_from(self.cvv_lockout.lock_for.as_secs()).unwrap_or(i64::MAX);
        let (attempts, locked_until): (i32, Option<DateTime<Utc>>) = sqlx::query_as(
            "UPDATE cards SET
                 cvv_failed_attempts = CASE WHEN cvv_failed_attempts + 1 >= $2 THEN 0
                                            ELSE cvv_failed_attempts + 1 END,
                 cvv_locked_until = CASE WHEN cvv_failed_attempts + 1 >= $2
                                         THEN now() + make_interval(secs => $3)
                                         ELSE cvv_locked_until END
             WHERE id = $1
             RETURNING cvv_failed_attempts, cvv_locked_until",
        )
        .bind(id)
        .bind(self.cvv_lockout.max_attempts)
        .bind(lock_secs as f64)
        .fetch_one(&self.pool)
        .await?;
        metrics::counter!("card_cvv_checks_total", "outcome" => "mismatch").increment(1);
        match locked_until {
            Some(until) if attempts == 0 => {
                tracing::warn!(card_id = %id, %until, "card locked after repeated CVV mismatches");
                Err(CardError::CardLocked { until })
            }
            _ => Err(CardError::CvvMismatch {
                remaining: self.cvv_lockout.max_attempts - attempts,
            }),
        }
    }

    /// Issues a card; returns it with its CVV (shown once).
    pub async fn create(
        &self,
        caller: &Principal,
        input: NewCard,
    ) -> Result<(CardRow, String), CardError> {
        let mut violations = Vec::new();
        if !number::is_brand(&input.brand) {
            violations.push(FieldViolation::new(
                "brand",
                format!(
                    "must be one of {}",
                    number::BRANDS
                        .iter()
                        .map(|(b, _)| *b)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        if !matches!(input.card_type.as_str(), "debit" | "credit") {
            violations.push(FieldViolation::new("card_type", "must be debit or credit"));
        }
        if !self.currencies.contains(&input.currency) {
            violations.push(FieldViolation::new(
                "currency",
                format!("must be one of {}", self.currencies.join(", ")),
            ));
        }
        if !(1..=10).contains(&input.valid_years) {
            violations.push(FieldViolation::new(
                "valid_years",
                "must be between 1 and 10",
            ));
        }
        let owner = match (input.user_id, caller.user_id()) {
            (Some(owner), me) if Some(owner) != me => {
                caller.require(CARDS_WRITE)?;
                owner
            }
            (Some(owner), _) => owner,
            (None, Some(me)) => me,
            (None, None) => {
                violations.push(FieldViolation::new(
                    "user_id",
                    "is required when a service creates a card",
                ));
                Uuid::nil()
            }
        };
        if !violations.is_empty() {
            return Err(CardError::Invalid(violations));
        }
        if caller.user_id() != Some(owner) {
            self.ensure_user_exists(owner).await?;
        }

        let now = Utc::now();
        let expiry_year = now.year() + i32::try_from(input.valid_years).unwrap_or(5);
        let expiry_month = i16::try_from(now.month()).unwrap_or(12);
        let id = Uuid::now_v7();
        let numbers: Vec<String> = {
            let mut rng = rand::thread_rng();
            (0..5)
                .filter_map(|_| number::generate(&input.brand, &mut rng))
                .collect()
        };
        // The CVV is derived for the expiry the card is issued with, and never stored.
        let period = expiry_year * 100 + i32::from(expiry_month);
        for candidate in numbers {
            let pan = self
                .keys
                .seal(id, &candidate)
                .map_err(CardError::Internal)?;
            let mut tx = self.pool.begin().await?;
            let inserted: Result<StoredCard, sqlx::Error> = sqlx::query_as(&format!(
                "INSERT INTO cards (id, user_id, pan_ciphertext, pan_key, pan_hash, pan_last4,
                     brand, card_type, currency, expiry_month, expiry_year, cvv_period)
                 VALUES ($1, $2, $3, $4, $5, right($6, 4), $7, $8, $9, $10, $11, $12)
                 RETURNING {CARD_COLUMNS}"
            ))
            .bind(id)
            .bind(owner)
            .bind(&pan.ciphertext)
            .bind(&pan.wrapped_key)
            .bind(self.keys.lookup_hash(&candidate))
            .bind(&candidate)
            .bind(&input.brand)
            .bind(&input.card_type)
            .bind(&input.currency)
            .bind(expiry_month)
            .bind(expiry_year)
            .bind(period)
            .fetch_one(&mut *tx)
            .await;
            match inserted {
                Ok(stored) => {
                    let card = self.reveal(stored)?;
                    let cvv = self.keys.cvv(&card.number, period);
                    emit(&mut tx, ev::CREATED, &card).await?;
                    tx.commit().await?;
                    metrics::counter!("cards_created_total", "brand" => card.brand.clone())
                        .increment(1);
                    tracing::info!(card_id = %card.id, user_id = %card.user_id,
                        number = %number::mask(&card.number), "card created");
                    return Ok((card, cvv));
                }
                Err(e)
                    if platform::db::unique_violation(&e).as_deref()
                        == Some("cards_pan_hash_key") =>
                {
                    tracing::warn!("card number collision; retrying");
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(CardError::NumberExhausted)
    }

    async fn load(&self, conn: &mut PgConnection, id: Uuid) -> Result<CardRow, CardError> {
        let stored = sqlx::query_as(&format!("{SELECT_CARD} WHERE id = $1"))
            .bind(id)
            .fetch_optional(conn)
            .await?
            .ok_or(CardError::NotFound)?;
        self.reveal(stored)
    }

    /// The card, if the caller owns it or holds `permission` (others get NOT_FOUND, so
    /// card ids of other customers are not confirmed).
    fn visible(caller: &Principal, card: CardRow, permission: &str) -> Result<CardRow, CardError> {
        if caller.user_id() == Some(card.user_id) || caller.has(permission) {
            Ok(card)
        } else {
            Err(CardError::NotFound)
        }
    }

    pub async fn get(&self, caller: &Principal, id: Uuid) -> Result<CardRow, CardError> {
        let mut conn = self.pool.acquire().await?;
        let card = self.load(&mut conn, id).await?;
        Self::visible(caller, card, CARDS_READ)
    }

    pub async fn get_by_number(
        &self,
        caller: &Principal,
        number: &str,
    ) -> Result<CardRow, CardError> {
        if !number::is_valid(number) {
            return Err(FieldViolation::new("number", "must be a 16-digit card number").into());
        }
        let stored: StoredCard = sqlx::query_as(&format!("{SELECT_CARD} WHERE pan_hash = $1"))
            .bind(self.keys.lookup_hash(number))
            .fetch_optional(&self.pool)
            .await?
            .ok_or(CardError::NotFound)?;
        Self::visible(caller, self.reveal(stored)?, CARDS_READ)
    }

    pub async fn list(
        &self,
        caller: &Principal,
        owner: Owner,
        search: &str,
        lifecycle: LifecycleFilter,
        page: Page,
    ) -> Result<(Vec<CardRow>, i64), CardError> {
        let owner = match owner {
            Owner::Caller => Some(caller.user_id().ok_or_else(|| {
                CardError::from(FieldViolation::new("user_id", "is required for services"))
            })?),
            Owner::User(id) => {
                caller.require_self_or(id, CARDS_READ)?;
                Some(id)
            }
            Owner::Everyone => {
                caller.require(CARDS_READ)?;
                None
            }
        };
        let search = search.trim();
        let pattern = platform::db::like_pattern(search);
        let filter = format!(
            "WHERE {} AND ($1::uuid IS NULL OR user_id = $1)
               AND ($2 = '' OR pan_last4 = $2 OR brand ILIKE $3 OR currency ILIKE $3)",
            lifecycle.sql_predicate()
        );
        let mut conn = self.pool.acquire().await?;
        let total: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM cards {filter}"))
            .bind(owner)
            .bind(search)
            .bind(&pattern)
            .fetch_one(&mut *conn)
            .await?;
        let rows: Vec<StoredCard> = sqlx::query_as(&format!(
            "{SELECT_CARD} {filter} ORDER BY created_at DESC, id LIMIT $4 OFFSET $5"
        ))
        .bind(owner)
        .bind(search)
        .bind(&pattern)
        .bind(page.limit())
        .bind(page.offset())
        .fetch_all(&mut *conn)
        .await?;
        let rows = rows
            .into_iter()
            .map(|r| self.reveal(r))
            .collect::<Result<_, _>>()?;
        Ok((rows, total))
    }

    pub async fn update(
        &self,
        caller: &Principal,
        id: Uuid,
        change: CardChange,
    ) -> Result<CardRow, CardError> {
        let mut violations = Vec::new();
        if let Some(t) = &change.card_type
            && !matches!(t.as_str(), "debit" | "credit")
        {
            violations.push(FieldViolation::new("card_type", "must be debit or credit"));
        }
        if let Some((month, year)) = change.expiry {
            let now = Utc::now();
            if !(1..=12).contains(&month) {
                violations.push(FieldViolation::new("expiry_month", "must be 1..=12"));
            } else if (year, month) < (now.year(), now.month()) || year > now.year() + 10 {
                violations.push(FieldViolation::new(
                    "expiry_year",
                    "expiry must be between this month and ten years ahead",
                ));
            }
        }
        if !violations.is_empty() {
            return Err(CardError::Invalid(violations));
        }
        let mut tx = self.pool.begin().await?;
        let card = self.load(&mut tx, id).await?;
        let card = Self::visible(caller, card, CARDS_WRITE)?;
        if card.deleted_at.is_some() {
            return Err(CardError::NotFound);
        }
        // An owner may shorten the card's validity, never extend it: the expiry is the
        // issuer's decision (an admin, with cards.write, may renew).
        if let Some((month, year)) = change.expiry
            && !caller.has(CARDS_WRITE)
            && (year, i64::from(month)) > (card.expiry_year, i64::from(card.expiry_month))
        {
            return Err(CardError::Invalid(vec![FieldViolation::new(
                "expiry_year",
                "you can shorten your card's validity, not extend it",
            )]));
        }
        let updated: StoredCard = sqlx::query_as(&format!(
            "UPDATE cards SET card_type = COALESCE($2, card_type),
                 expiry_month = COALESCE($3, expiry_month), expiry_year = COALESCE($4, expiry_year),
                 updated_at = now()
             WHERE id = $1
             RETURNING {CARD_COLUMNS}"
        ))
        .bind(card.id)
        .bind(change.card_type)
        .bind(change.expiry.map(|(m, _)| i16::try_from(m).unwrap_or(1)))
        .bind(change.expiry.map(|(_, y)| y))
        .fetch_one(&mut *tx)
        .await?;
        let updated = self.reveal(updated)?;
        emit(&mut tx, ev::UPDATED, &updated).await?;
        tx.commit().await?;
        Ok(updated)
    }

    /// Trashes (`trash = true`) or restores a card.
    pub async fn set_trashed(
        &self,
        caller: &Principal,
        id: Uuid,
        trash: bool,
    ) -> Result<CardRow, CardError> {
        let mut tx = self.pool.begin().await?;
        let card = self.load(&mut tx, id).await?;
        let card = Self::visible(caller, card, CARDS_DELETE)?;
        if card.deleted_at.is_some() == trash {
            return Ok(card);
        }
        // Decisions made by an admin stay made: the owner cannot restore a card someone
        // else (an admin) trashed.
        let by_owner = caller.user_id() == Some(card.user_id) && !caller.has(CARDS_DELETE);
        let trashed_by_admin: bool =
            sqlx::query_scalar("SELECT trashed_by_admin FROM cards WHERE id = $1")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
        if !trash && by_owner && trashed_by_admin {
            return Err(CardError::AdminDecision);
        }
        let updated: StoredCard = sqlx::query_as(&format!(
            "UPDATE cards SET deleted_at = CASE WHEN $2 THEN now() END,
                 trashed_by_admin = $2 AND $3, updated_at = now()
             WHERE id = $1
             RETURNING {CARD_COLUMNS}"
        ))
        .bind(id)
        .bind(trash)
        .bind(!by_owner)
        .fetch_one(&mut *tx)
        .await?;
        let updated = self.reveal(updated)?;
        emit(
            &mut tx,
            if trash { ev::TRASHED } else { ev::RESTORED },
            &updated,
        )
        .await?;
        tx.commit().await?;
        Ok(updated)
    }

    /// The balance of the card's ledger account (0 when no account was opened yet).
    async fn balance(&self, card_id: Uuid) -> Result<i64, CardError> {
        let request = platform::grpc::outgoing(
            CardAccountRequest {
                card_id: card_id.to_string(),
            },
            Some(&self.bearer()?),
            CALL_DEADLINE,
        );
        match self.saldo.clone().get_card_account(request).await {
            Ok(account) => Ok(account.into_inner().balance),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(0),
            Err(s) => Err(CardError::Upstream("saldo service", s)),
        }
    }

    async fn delete_trashed(&self, card: &CardRow) -> Result<bool, CardError> {
        let balance = self.balance(card.id).await?;
        if balance != 0 {
            return Err(CardError::HasBalance(balance));
        }
        let mut tx = self.pool.begin().await?;
        let deleted = sqlx::query("DELETE FROM cards WHERE id = $1 AND deleted_at IS NOT NULL")
            .bind(card.id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if deleted == 1 {
            emit(&mut tx, ev::DELETED, card).await?;
        }
        tx.commit().await?;
        Ok(deleted == 1)
    }

    pub async fn delete(&self, caller: &Principal, id: Uuid) -> Result<(), CardError> {
        let mut conn = self.pool.acquire().await?;
        let card = self.load(&mut conn, id).await?;
        drop(conn);
        let card = Self::visible(caller, card, CARDS_DELETE)?;
        if card.deleted_at.is_none() {
            return Err(CardError::NotTrashed);
        }
        if self.delete_trashed(&card).await? {
            tracing::info!(card_id = %card.id, "card deleted permanently");
            Ok(())
        } else {
            Err(CardError::NotFound)
        }
    }

    pub async fn restore_all(&self, caller: &Principal) -> Result<u64, CardError> {
        caller.require(CARDS_DELETE)?;
        let mut tx = self.pool.begin().await?;
        let restored: Vec<StoredCard> = sqlx::query_as(&format!(
            "UPDATE cards SET deleted_at = NULL, updated_at = now() WHERE deleted_at IS NOT NULL
             RETURNING {CARD_COLUMNS}"
        ))
        .fetch_all(&mut *tx)
        .await?;
        let restored: Vec<CardRow> = restored
            .into_iter()
            .map(|r| self.reveal(r))
            .collect::<Result<_, _>>()?;
        for card in &restored {
            emit(&mut tx, ev::RESTORED, card).await?;
        }
        tx.commit().await?;
        Ok(restored.len() as u64)
    }

    /// Deletes every trashed card with an empty account; cards holding money stay trashed.
    pub async fn delete_all_trashed(&self, caller: &Principal) -> Result<u64, CardError> {
        caller.require(CARDS_DELETE)?;
        let trashed: Vec<StoredCard> =
            sqlx::query_as(&format!("{SELECT_CARD} WHERE deleted_at IS NOT NULL"))
                .fetch_all(&self.pool)
                .await?;
        let trashed: Vec<CardRow> = trashed
            .into_iter()
            .map(|r| self.reveal(r))
            .collect::<Result<_, _>>()?;
        let mut deleted = 0;
        for card in &trashed {
            match self.delete_trashed(card).await {
                Ok(true) => deleted += 1,
                Ok(false) => {}
                Err(CardError::HasBalance(balance)) => {
                    tracing::info!(card_id = %card.id, balance, "trashed card kept: it holds money");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(deleted)
    }
}

async fn emit(conn: &mut PgConnection, event_type: &str, card: &CardRow) -> Result<(), CardError> {
    let event = Envelope::new(SOURCE, event_type, card.id, &card.event_data())
        .map_err(|e| CardError::Internal(e.into()))?;
    events::outbox::enqueue(conn, topics::CARD_EVENTS, &event).await?;
    Ok(())
}
