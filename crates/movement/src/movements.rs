//! The orchestrator of one kind of movement: a request is validated, its cards checked with
//! the card service, recorded `pending`, posted to the ledger under its own id and completed
//! with its event — each step one of [`crate::lifecycle`]'s.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use events::Envelope;
use events::payloads::movement as ev;
use platform::FieldViolation;
use platform::auth::{Authenticator, Principal};
use platform::card_data::CardNumber;
use sqlx::PgPool;
use uuid::Uuid;

use crate::lifecycle::{self, Recorded, Status};
use crate::rules::{Rules, check_card_number};
use crate::{Kind, MovementError, Outcome, Side, Upstream};

/// A recorded movement (a row of the `movements` table of its service's schema).
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
    pub status: Status,
    pub failure_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    /// Recorded with a past `effective_at` (an import): the ledger keeps that time too.
    pub backdated: bool,
    /// Provider-backed kinds: the provider that took it, its id there, its word
    /// (`pending`, `succeeded`, `failed`) and its failure code (see [`crate::provider`]).
    pub provider: Option<String>,
    pub provider_reference: Option<String>,
    pub provider_status: Option<crate::provider::ProviderState>,
    pub provider_failure_code: Option<String>,
}

crate::recorded!(
    Movement,
    "movements",
    "t.id, t.requested_by, t.idempotency_key, t.fingerprint, t.user_id, t.card_id,
     t.masked_card_number, t.method, t.to_card_id, t.to_user_id, t.masked_to_card_number,
     t.amount, t.currency, t.status, t.failure_reason, t.created_at, t.completed_at,
     t.backdated, t.provider, t.provider_reference, t.provider_status, t.provider_failure_code"
);

/// A create request, as the caller sent it.
#[derive(Clone, Debug, Default)]
pub struct NewMovement {
    pub idempotency_key: String,
    /// The card topped up / withdrawn from / transferred from.
    pub card_number: CardNumber,
    /// Transfers: the receiving card.
    pub to_card_number: Option<CardNumber>,
    /// Topups and withdraws.
    pub method: Option<String>,
    pub amount: i64,
    /// Backdated imports and demo data (`saldo.backdate`): when it happened; `None` = now.
    pub effective_at: Option<DateTime<Utc>>,
}

/// The orchestrator of one kind of movement.
#[derive(Clone)]
pub struct Movements {
    pub(crate) kind: Kind,
    pub(crate) pool: PgPool,
    authenticator: Authenticator,
    pub(crate) upstream: Upstream,
    rules: Arc<Rules>,
    /// The payment providers of a provider-backed kind (top-ups); `None` for transfers.
    pub(crate) providers: Option<Arc<crate::provider::Backing>>,
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
            providers: None,
        }
    }

    /// Backs this kind with payment providers: money moves only on their word.
    pub fn with_providers(mut self, backing: crate::provider::Backing) -> Self {
        self.providers = Some(Arc::new(backing));
        self
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn authenticator(&self) -> &Authenticator {
        &self.authenticator
    }

    fn validate(&self, request: &NewMovement) -> Result<(), MovementError> {
        let mut violations = Vec::new();
        lifecycle::check_idempotency_key(&request.idempotency_key, &mut violations);
        check_card_number(
            self.kind.card_field(),
            request.card_number.expose(),
            &mut violations,
        );
        if self.kind == Kind::Transfer {
            let to = request
                .to_card_number
                .as_ref()
                .map_or("", CardNumber::expose);
            let before = violations.len();
            check_card_number("to_card_number", to, &mut violations);
            if violations.len() == before && to == request.card_number.expose() {
                violations.push(FieldViolation::new(
                    "to_card_number",
                    "must differ from from_card_number: a transfer to the same card moves nothing",
                ));
            }
        }
        if self.kind.has_method() {
            let method = request.method.as_deref().unwrap_or_default();
            self.rules.check_method(method, &mut violations);
        }
        self.rules.check_amount(request.amount, &mut violations);
        if violations.is_empty() {
            Ok(())
        } else {
            Err(MovementError::Invalid(violations))
        }
    }

    fn fingerprint(request: &NewMovement) -> Vec<u8> {
        lifecycle::fingerprint(&[
            request.card_number.expose(),
            request
                .to_card_number
                .as_ref()
                .map_or("", CardNumber::expose),
            request.method.as_deref().unwrap_or(""),
            &request.amount.to_string(),
        ])
    }

    /// Creates (or replays) a movement. See the crate docs.
    pub async fn create(
        &self,
        caller: &Principal,
        request: NewMovement,
    ) -> Result<Movement, MovementError> {
        self.validate(&request)?;
        let started = std::time::Instant::now();
        let kind = self.kind.name();
        let requested_by = lifecycle::requested_by(caller);
        let fingerprint = Self::fingerprint(&request);
        // The key lookup and the card lookups run concurrently; a known key wins whatever the
        // cards say now, so a replay returns the original answer.
        let card_field = self.kind.card_field();
        let receiver = async {
            match &request.to_card_number {
                Some(number) if self.kind == Kind::Transfer => Ok(Some(
                    self.upstream
                        .card("to_card_number", number.expose())
                        .await?,
                )),
                _ => Ok::<_, MovementError>(None),
            }
        };
        let cards = async {
            tokio::try_join!(
                self.upstream.card(card_field, request.card_number.expose()),
                receiver
            )
        };
        let (existing, cards) = tokio::join!(
            lifecycle::by_key::<Movement>(&self.pool, &requested_by, &request.idempotency_key),
            cards
        );
        if let Some(existing) = existing? {
            // A provider holds it: the same request gets the record as it stands (pending
            // until the provider decides), not "in progress".
            if existing.provider.is_some()
                && existing.status == Status::Pending
                && existing.fingerprint == fingerprint
            {
                return Ok(existing);
            }
            return lifecycle::replay(kind, existing, &fingerprint);
        }
        let (card, receiver) = cards?;
        if caller.user_id() != Some(card.user_id) && !caller.has(self.kind.write_permission()) {
            return Err(MovementError::CardNotOwned(card_field));
        }
        card.check_usable(card_field)?;
        if let Some(to) = &receiver {
            to.check_usable("to_card_number")?;
            if to.currency != card.currency {
                return Err(MovementError::CurrencyMismatch(
                    card.currency.clone(),
                    to.currency.clone(),
                ));
            }
        }

        let inserted: Option<Movement> = sqlx::query_as(&format!(
            "INSERT INTO movements AS t (id, requested_by, idempotency_key, fingerprint,
                 user_id, card_id, masked_card_number, method, to_card_id, to_user_id,
                 masked_to_card_number, amount, currency, created_at, backdated)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,
                     COALESCE($14, now()), $14 IS NOT NULL)
             ON CONFLICT (requested_by, idempotency_key) DO NOTHING
             RETURNING {}",
            Movement::COLUMNS
        ))
        .bind(Uuid::now_v7())
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
            return lifecycle::replay_winner(
                kind,
                &self.pool,
                &requested_by,
                &request.idempotency_key,
                &fingerprint,
            )
            .await;
        };
        platform::failpoint::hit(&format!("{kind}.after_pending"));

        if self.providers.is_some() {
            let movement = if self.kind == Kind::Withdraw {
                // The amount leaves the card first (held in transit), so it cannot be spent
                // twice while the payout is under way.
                match self.post(&pending).await {
                    Ok(Outcome::Posted) => {
                        self.submit(pending, crate::provider::Unavailable::Fail)
                            .await?
                    }
                    Ok(refused) => self.complete(&pending, &refused).await?,
                    Err(MovementError::AccountNotReady) => {
                        lifecycle::drop_unposted::<Movement>(&self.pool, pending.id).await?;
                        return Err(MovementError::AccountNotReady);
                    }
                    Err(e) => return Err(e),
                }
            } else {
                self.submit(pending, crate::provider::Unavailable::Drop)
                    .await?
            };
            self.announce_pending(&movement).await?;
            metrics::histogram!("movement_duration_seconds", "kind" => kind)
                .record(started.elapsed().as_secs_f64());
            return lifecycle::respond(kind, movement);
        }
        let outcome = match self.post(&pending).await {
            Ok(outcome) => outcome,
            Err(MovementError::AccountNotReady) => {
                lifecycle::drop_unposted::<Movement>(&self.pool, pending.id).await?;
                return Err(MovementError::AccountNotReady);
            }
            Err(e) => return Err(e),
        };
        platform::failpoint::hit(&format!("{kind}.after_posting"));
        let movement = self.complete(&pending, &outcome).await?;
        metrics::histogram!("movement_duration_seconds", "kind" => kind)
            .record(started.elapsed().as_secs_f64());
        lifecycle::respond(kind, movement)
    }

    /// Posts a recorded movement under its own id.
    pub(crate) async fn post(&self, m: &Movement) -> Result<Outcome, MovementError> {
        let method = m.method.clone().unwrap_or_default();
        let (debit, credit, description) = match (self.kind, &m.provider) {
            // Money the provider collected: its system account is what it owes us.
            (Kind::Topup, Some(provider)) => (
                Side::System(format!("provider:{provider}")),
                Side::Card(m.card_id),
                format!("top-up via {method} ({provider})"),
            ),
            (Kind::Topup, None) => (
                Side::System(format!("topup:{method}")),
                Side::Card(m.card_id),
                format!("top-up via {method}"),
            ),
            // A payout's first leg: held in transit until the provider pays it out.
            (Kind::Withdraw, _) if self.providers.is_some() => (
                Side::Card(m.card_id),
                Side::System(crate::provider::IN_TRANSIT.to_owned()),
                format!("withdraw to {method}: held for the payout"),
            ),
            (Kind::Withdraw, _) => (
                Side::Card(m.card_id),
                Side::System(format!("withdraw:{method}")),
                format!("withdraw to {method}"),
            ),
            (Kind::Transfer, _) => {
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
                platform::money::Money::positive(m.amount, &m.currency)
                    .map_err(|e| MovementError::Internal(e.into()))?,
                description,
                m.backdated.then_some(m.created_at),
            )
            .await
    }

    /// Records the ledger's outcome (once) with its completion event.
    pub(crate) async fn complete(
        &self,
        pending: &Movement,
        outcome: &Outcome,
    ) -> Result<Movement, MovementError> {
        let completed_at = lifecycle::completion_time(pending);
        let (status, reason) = lifecycle::outcome_status(outcome);
        let mut done = pending.clone();
        done.status = status;
        done.failure_reason = reason.map(str::to_owned);
        done.completed_at = Some(completed_at);
        let event = self.event(&done)?;
        let completed = lifecycle::complete(
            self.kind.name(),
            &self.pool,
            pending,
            outcome,
            completed_at,
            self.kind.topic(),
            &event,
        )
        .await?;
        match completed {
            Some(movement) => Ok(movement),
            // Completed by someone else (recovery and the original request racing): theirs.
            None => self.load(pending.id).await,
        }
    }

    /// The event announcing `m` as it stands: `<kind>.succeeded` / `.failed`, or
    /// `<kind>.pending` while it waits for its provider.
    pub(crate) fn event(&self, m: &Movement) -> Result<Envelope, MovementError> {
        let data = ev::Movement {
            id: m.id,
            kind: self.kind.name().to_owned(),
            status: m.status.as_str().to_owned(),
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
            provider: m.provider.clone(),
            provider_failure_code: m.provider_failure_code.clone(),
        };
        let event_type = match m.status {
            Status::Pending => ev::pending_event_type(self.kind.name()),
            status => ev::event_type(self.kind.name(), status == Status::Succeeded),
        };
        Envelope::new(
            &format!("{}-service", self.kind.name()),
            &event_type,
            m.id,
            &data,
        )
        .map_err(|e| MovementError::Internal(e.into()))
    }
}
