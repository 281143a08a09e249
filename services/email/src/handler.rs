//! From an event to (at most) one email: [`crate::compose`] decides which email an event
//! causes; this module delivers it.
//!
//! Delivery is at most once per event id, through the `deliveries` log:
//! 1. claim: insert the row as `sending` (committed at once, outside the consumer's
//!    transaction), or take over a `failed` row for a retry; a row that is `sent` means
//!    done; a row still `sending` means a crash mid-send: it becomes `unknown` and is not
//!    resent (maybe the server got it);
//! 2. send over SMTP;
//! 3. `sent`, or `failed` with the error: a transient failure is retried by the consumer with
//!    exponential backoff up to `EMAIL_MAX_ATTEMPTS` (counted in the row, so restarts do not
//!    reset it), then dead-lettered like a permanent failure or a malformed event.

use std::sync::Arc;

use events::{Envelope, EventHandler, HandlerError};
use platform::auth::ServiceToken;
use proto::user::v1::user_service_client::UserServiceClient;
use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool};
use tonic::transport::Channel;

use crate::mailer::{Mailer, SendError};
use crate::repo;
use crate::templates::Templates;

/// Settings of the handler.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `EMAIL_BRAND`: the name in subjects and footers.
    pub brand: String,
    /// `EMAIL_LINK_BASE_URL`: where verification and reset links point.
    pub base_url: String,
    /// `EMAIL_MAX_ATTEMPTS`: SMTP attempts per email before it is dead-lettered.
    pub max_attempts: i32,
    /// `ONE_TIME_TOKEN_KEY`: derives the link tokens from the ids the events carry.
    pub link_key: platform::link_token::LinkTokenKey,
}

/// An email to send.
#[derive(Clone, Debug)]
pub struct Email {
    pub template: &'static str,
    pub to: String,
    pub context: Value,
}

/// The email service's event handler.
#[derive(Clone)]
pub struct EmailEvents {
    /// The delivery log's own pool, apart from the consumers' (see [`EmailEvents::new`]).
    pub(crate) log: PgPool,
    pub(crate) templates: Arc<Templates>,
    pub(crate) mailer: Mailer,
    pub(crate) users: UserServiceClient<Channel>,
    pub(crate) token: Arc<ServiceToken>,
    pub(crate) settings: Arc<Settings>,
}

/// `IDR 1,500.00`: minor units with two decimals and thousands separators.
pub fn format_amount(minor: i64, currency: &str) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let minor = minor.unsigned_abs();
    let (major, cents) = (minor / 100, minor % 100);
    let digits = major.to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{currency} {sign}{grouped}.{cents:02}")
}

impl EmailEvents {
    /// `log` is the pool of the delivery log, and must not be the pool the consumers take
    /// their transactions from: the handler writes the log (claim, sent, failed) while its
    /// consumer lane holds a transaction. With one pool, lanes holding every connection each
    /// waited for one more until the pool's timeout, over and over (16 lanes on 10
    /// connections: in a slice of the large seed, account emails drained at ≈ 2/s and waited
    /// up to 11 minutes, the log full of `pool timed out while waiting for an open
    /// connection`).
    /// The log's connections are held for one statement at a time and never while waiting
    /// for another, so any size makes progress.
    pub fn new(
        log: PgPool,
        templates: Templates,
        mailer: Mailer,
        users: UserServiceClient<Channel>,
        token: ServiceToken,
        settings: Settings,
    ) -> Self {
        Self {
            log,
            templates: Arc::new(templates),
            mailer,
            users,
            token: Arc::new(token),
            settings: Arc::new(settings),
        }
    }

    /// Claims the delivery of `event`; `None` if it must not be sent (again).
    async fn claim(
        &self,
        event: &Envelope,
        email: &Email,
        subject: &str,
        trace_id: Option<&str>,
    ) -> Result<Option<i32>, HandlerError> {
        let claimed = repo::claim(
            &self.log,
            &repo::Claim {
                event_id: event.id,
                event_type: &event.event_type,
                template: email.template,
                recipient: &email.to,
                subject,
                trace_id,
            },
        )
        .await?;
        if claimed.is_none() && repo::mark_interrupted(&self.log, event.id).await? {
            tracing::warn!(event_id = %event.id,
                "email may or may not have been sent before a crash; not resending");
        }
        Ok(claimed)
    }

    async fn deliver(&self, event: &Envelope, email: Email) -> Result<(), HandlerError> {
        let mut context = email.context.clone();
        if let Some(map) = context.as_object_mut() {
            map.insert("brand".to_owned(), json!(self.settings.brand));
            map.insert("base_url".to_owned(), json!(self.settings.base_url));
        }
        let rendered = self
            .templates
            .render(email.template, &context)
            .map_err(|e| {
                metrics::counter!("emails_dead_lettered_total", "reason" => "template")
                    .increment(1);
                HandlerError::Permanent(e)
            })?;
        let trace_id = platform::telemetry::current_trace_id();
        let Some(attempt) = self
            .claim(event, &email, &rendered.subject, trace_id.as_deref())
            .await?
        else {
            return Ok(());
        };
        if attempt > 1 {
            metrics::counter!("emails_retried_total", "template" => email.template).increment(1);
        }
        match self
            .mailer
            .send(&email.to, &rendered, event.id, trace_id.as_deref())
            .await
        {
            Ok(message_id) => {
                repo::mark_sent(&self.log, event.id, &message_id).await?;
                metrics::counter!("emails_sent_total", "template" => email.template).increment(1);
                tracing::info!(event_id = %event.id, template = email.template, attempt, "email sent");
                Ok(())
            }
            Err(e) => {
                repo::mark_failed(&self.log, event.id, &e.to_string()).await?;
                metrics::counter!("emails_failed_total", "template" => email.template).increment(1);
                match e {
                    SendError::Transient(_) if attempt < self.settings.max_attempts => {
                        Err(HandlerError::Retryable(e.into()))
                    }
                    e => {
                        metrics::counter!("emails_dead_lettered_total", "reason" => "smtp")
                            .increment(1);
                        Err(HandlerError::Permanent(anyhow::anyhow!(
                            "giving up after {attempt} attempt(s): {e}"
                        )))
                    }
                }
            }
        }
    }
}

impl EventHandler for EmailEvents {
    /// The recipient: money, payment and merchant events name the user they mail; user
    /// events are about their subject. One person's emails go out in order.
    fn order_key<'a>(&self, event: &'a Envelope) -> &'a str {
        event
            .data
            .get("user_id")
            .and_then(Value::as_str)
            .unwrap_or(&event.subject)
    }

    /// Backdated imports mail nobody: passed over without a transaction.
    fn accepts(&self, event: &Envelope) -> bool {
        !crate::compose::backdated_import(event)
    }

    async fn handle(&self, _conn: &mut PgConnection, event: &Envelope) -> Result<(), HandlerError> {
        match self.compose(event).await? {
            Some(email) => self.deliver(event, email).await,
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::format_amount;

    #[test]
    fn amounts_read_like_money() {
        assert_eq!(format_amount(15_000_000, "IDR"), "IDR 150,000.00");
        assert_eq!(format_amount(5, "USD"), "USD 0.05");
        assert_eq!(format_amount(-123_456_789, "EUR"), "EUR -1,234,567.89");
        assert_eq!(format_amount(100, "SGD"), "SGD 1.00");
    }
}
