//! Use cases of the card service: issue, read, list, update, trash and restore, delete (its
//! SQL is [`crate::repo`]'s, its CVV checks [`crate::cvv`]'s). Every change commits together
//! with its outbox event; the saldo service opens and closes accounts from those events.
//!
//! Over 400 lines on purpose: one card's lifecycle and the ownership rules every step of it
//! applies read best together.

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
use crate::keys::{CardKeys, SealedPan};
use crate::number;
use crate::repo::{self, NewCardRow, StoredCard};

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
    pub(crate) pool: PgPool,
    authenticator: Authenticator,
    pub(crate) keys: Arc<CardKeys>,
    currencies: Arc<Vec<String>>,
    pub(crate) cvv_lockout: CvvLockout,
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
            let rows = repo::legacy_numbers(&mut *tx).await?;
            if rows.is_empty() {
                return Ok(sealed);
            }
            for (id, number) in &rows {
                let pan = self.keys.seal(*id, number).map_err(CardError::Internal)?;
                repo::seal_number(&mut *tx, *id, &pan, &self.keys.lookup_hash(number), number)
                    .await?;
            }
            tx.commit().await?;
            sealed += rows.len() as u64;
            tracing::info!(sealed, "card numbers sealed (encryption at rest)");
        }
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
            let inserted = repo::insert(
                &mut *tx,
                &NewCardRow {
                    id,
                    user_id: owner,
                    pan: &pan,
                    pan_hash: &self.keys.lookup_hash(&candidate),
                    number: &candidate,
                    brand: &input.brand,
                    card_type: &input.card_type,
                    currency: &input.currency,
                    expiry_month,
                    expiry_year,
                    cvv_period: period,
                },
            )
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

    pub(crate) async fn load(
        &self,
        conn: &mut PgConnection,
        id: Uuid,
    ) -> Result<CardRow, CardError> {
        let stored = repo::by_id(conn, id).await?.ok_or(CardError::NotFound)?;
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
        let stored = repo::by_pan_hash(&self.pool, &self.keys.lookup_hash(number))
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
        let mut conn = self.pool.acquire().await?;
        let (rows, total) = repo::list(&mut conn, owner, search.trim(), lifecycle, page).await?;
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
        let expiry = change
            .expiry
            .map(|(month, year)| (i16::try_from(month).unwrap_or(1), year));
        let updated = repo::update(&mut *tx, card.id, change.card_type, expiry).await?;
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
        if !trash && by_owner && repo::trashed_by_admin(&mut *tx, id).await? {
            return Err(CardError::AdminDecision);
        }
        let updated = repo::set_trashed(&mut *tx, id, trash, !by_owner).await?;
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
        let deleted = repo::delete_trashed(&mut *tx, card.id).await?;
        if deleted {
            emit(&mut tx, ev::DELETED, card).await?;
        }
        tx.commit().await?;
        Ok(deleted)
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
        let restored = repo::restore_all(&mut *tx).await?;
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
        let trashed = repo::trashed(&self.pool).await?;
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
