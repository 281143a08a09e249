//! CVVs: shown to a card's owner, and checked as a customer's consent to a payment. A CVV is
//! derived from the card's number and expiry (see [`crate::keys`]), never stored; wrong
//! guesses are counted per card and per merchant key so that guessing is not a way in.

use chrono::Utc;
use platform::FieldViolation;
use platform::auth::Principal;
use uuid::Uuid;

use crate::error::CardError;
use crate::keys;
use crate::number;
use crate::repo;
use crate::service::{CARDS_VERIFY, CardRow, Cards};

impl Cards {
    /// The CVV of a card: derived, never stored. Only its owner sees it.
    pub async fn cvv(&self, caller: &Principal, id: Uuid) -> Result<String, CardError> {
        let mut conn = self.pool.acquire().await?;
        let card = self.load(&mut conn, id).await?;
        if caller.user_id() != Some(card.user_id) || card.deleted_at.is_some() {
            return Err(CardError::NotFound);
        }
        let period = repo::cvv_period(&mut *conn, id).await?;
        Ok(self.keys.cvv(&card.number, period))
    }

    /// Reserves a CVV check of `key` in its window; fails with `KeyThrottled` when the key
    /// has used up its mismatches. A matching CVV gives the reservation back.
    async fn reserve_key_check(&self, key: Uuid) -> Result<(), CardError> {
        let window = self.cvv_lockout.per_key_window.as_secs_f64();
        let (reserved, started) = repo::reserve_key_check(&self.pool, key, window).await?;
        if reserved > self.cvv_lockout.per_key_max_failures {
            metrics::counter!("card_cvv_checks_total", "outcome" => "key_throttled").increment(1);
            let until = started
                + chrono::Duration::from_std(self.cvv_lockout.per_key_window).unwrap_or_default();
            tracing::warn!(api_key_id = %key, %until, "CVV checks of an API key throttled");
            return Err(CardError::KeyThrottled { until });
        }
        Ok(())
    }

    /// The customer's consent to a payment: the card with `number` if `cvv` matches the one
    /// derived for it. Mismatches count per card; the `max_attempts`-th locks CVV checks for
    /// `lock_for` (every check fails then, even with the right CVV) and resets the count.
    /// With `api_key`, mismatches also count against the key across all cards.
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
            repo::release_key_check(&self.pool, key).await?;
        }
        checked
    }

    async fn check_cvv(&self, number: &str, cvv: &str) -> Result<CardRow, CardError> {
        let (id, period, locked_until) =
            repo::cvv_state(&self.pool, &self.keys.lookup_hash(number))
                .await?
                .ok_or(CardError::NotFound)?;
        if let Some(until) = locked_until
            && until > Utc::now()
        {
            metrics::counter!("card_cvv_checks_total", "outcome" => "locked").increment(1);
            return Err(CardError::CardLocked { until });
        }
        // The number found by its keyed hash is `number` itself: derive its CVV and compare
        // in constant time.
        if keys::same(&self.keys.cvv(number, period), cvv) {
            repo::clear_cvv_failures(&self.pool, id).await?;
            metrics::counter!("card_cvv_checks_total", "outcome" => "matched").increment(1);
            let mut conn = self.pool.acquire().await?;
            return self.load(&mut conn, id).await;
        }
        let lock_secs = i64::try_from(self.cvv_lockout.lock_for.as_secs()).unwrap_or(i64::MAX);
        let (attempts, locked_until) = repo::record_cvv_mismatch(
            &self.pool,
            id,
            self.cvv_lockout.max_attempts,
            lock_secs as f64,
        )
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
}
