//! From an event to (at most) one email.
//!
//! [`compose`](EmailEvents::compose) picks the template and the recipient: user events carry
//! the address; money, payment and merchant events carry a user id, looked up in the user
//! service. Either way the user must still exist there. Events that mail nobody (card.*,
//! role.*, ...) are skipped.
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
use std::time::Duration;

use chrono::{DateTime, Utc};
use events::payloads::{merchant, movement, transaction, user};
use events::{Envelope, EventHandler, HandlerError};
use platform::auth::ServiceToken;
use proto::user::v1::GetUserRequest;
use proto::user::v1::user_service_client::UserServiceClient;
use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool};
use tonic::transport::Channel;
use uuid::Uuid;

use crate::mailer::{Mailer, SendError};
use crate::templates::Templates;

const DEADLINE: Duration = Duration::from_secs(5);

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
    pool: PgPool,
    templates: Arc<Templates>,
    mailer: Mailer,
    users: UserServiceClient<Channel>,
    token: Arc<ServiceToken>,
    settings: Arc<Settings>,
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

fn when(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// Whether a money event is a backdated import (demo data, history imports): it completed
/// long before it was announced. Nobody is mailed about those.
fn backdated(event: &Envelope, completed_at: DateTime<Utc>) -> bool {
    let imported = event.occurred_at - completed_at > chrono::Duration::hours(1);
    if imported {
        metrics::counter!("emails_skipped_total", "reason" => "backdated").increment(1);
        tracing::debug!(event_id = %event.id, "backdated import; no email");
    }
    imported
}

fn data<T: serde::de::DeserializeOwned>(event: &Envelope) -> Result<T, HandlerError> {
    event.data_as().map_err(|e| {
        metrics::counter!("emails_dead_lettered_total", "reason" => "malformed").increment(1);
        HandlerError::Permanent(anyhow::anyhow!("malformed {} data: {e}", event.event_type))
    })
}

impl EmailEvents {
    pub fn new(
        pool: PgPool,
        templates: Templates,
        mailer: Mailer,
        users: UserServiceClient<Channel>,
        token: ServiceToken,
        settings: Settings,
    ) -> Self {
        Self {
            pool,
            templates: Arc::new(templates),
            mailer,
            users,
            token: Arc::new(token),
            settings: Arc::new(settings),
        }
    }

    /// The address and first name of a user; `None` if the user no longer exists.
    async fn recipient(&self, user_id: Uuid) -> Result<Option<(String, String)>, HandlerError> {
        let bearer = self.token.bearer().map_err(HandlerError::Retryable)?;
        let request = platform::grpc::outgoing(
            GetUserRequest {
                id: user_id.to_string(),
            },
            Some(&bearer),
            DEADLINE,
        );
        match self.users.clone().get_user(request).await {
            Ok(user) => {
                let user = user.into_inner();
                Ok(Some((user.email, user.first_name)))
            }
            Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
            Err(s) => Err(HandlerError::Retryable(anyhow::anyhow!(
                "user service: {}",
                s.message()
            ))),
        }
    }

    /// The link to the platform's landing page for `purpose`, the token derived from its id.
    /// The token is in the fragment: browsers never send it, so it is in no request line and
    /// no access log; the page reads it and posts it to the API.
    fn link(&self, purpose: &str, token_id: Uuid) -> String {
        let page = if purpose == platform::link_token::RESET_PASSWORD {
            "reset-password"
        } else {
            "verify-email"
        };
        format!(
            "{}/account/{page}#token={}",
            self.settings.base_url.trim_end_matches('/'),
            self.settings.link_key.token(purpose, token_id)
        )
    }

    /// The email an event causes, if any.
    pub async fn compose(&self, event: &Envelope) -> Result<Option<Email>, HandlerError> {
        let t = event.event_type.as_str();
        let email = match t {
            user::REGISTERED | user::CREATED | user::VERIFICATION_REQUESTED => {
                let raw: Value = data(event)?;
                if raw.get("token_id").is_some() {
                    let issued: user::TokenIssued = data(event)?;
                    self.to_user_as_sent(
                        issued.user.user_id,
                        issued.user.email,
                        "verify_email",
                        json!({
                            "name": issued.user.first_name,
                            "link": self.link(platform::link_token::VERIFY_EMAIL, issued.token_id),
                            "expires_at": when(issued.expires_at),
                        }),
                    )
                    .await?
                } else {
                    let u: user::UserData = data(event)?;
                    self.to_user_as_sent(
                        u.user_id,
                        u.email,
                        "account_created",
                        json!({
                            "name": u.first_name,
                            "link": format!("{}/login", self.settings.base_url.trim_end_matches('/')),
                        }),
                    )
                    .await?
                }
            }
            user::VERIFIED | user::PASSWORD_CHANGED => {
                let u: user::UserData = data(event)?;
                let template = if t == user::VERIFIED {
                    "email_verified"
                } else {
                    "password_changed"
                };
                self.to_user_as_sent(
                    u.user_id,
                    u.email,
                    template,
                    json!({ "name": u.first_name }),
                )
                .await?
            }
            user::REGISTRATION_ATTEMPTED => {
                let u: user::UserData = data(event)?;
                self.to_user_as_sent(
                    u.user_id,
                    u.email,
                    "registration_attempted",
                    json!({ "name": u.first_name }),
                )
                .await?
            }
            user::EMAIL_CHANGED => {
                let changed: user::EmailChanged = data(event)?;
                self.to_user_as_sent(
                    changed.user.user_id,
                    changed.previous_email,
                    "email_changed",
                    json!({
                        "name": changed.user.first_name,
                        "new_email": changed.user.email,
                    }),
                )
                .await?
            }
            user::PASSWORD_RESET_REQUESTED => {
                let issued: user::TokenIssued = data(event)?;
                self.to_user_as_sent(
                    issued.user.user_id,
                    issued.user.email,
                    "password_reset",
                    json!({
                        "name": issued.user.first_name,
                        "link": self.link(platform::link_token::RESET_PASSWORD, issued.token_id),
                        "expires_at": when(issued.expires_at),
                    }),
                )
                .await?
            }
            "topup.succeeded" | "topup.failed" | "withdraw.succeeded" | "withdraw.failed"
            | "transfer.succeeded" | "transfer.failed" => {
                let m: movement::Movement = data(event)?;
                if backdated(event, m.completed_at) {
                    return Ok(None);
                }
                self.to_user(
                    m.user_id,
                    "movement",
                    json!({
                        "kind": m.kind,
                        "succeeded": m.status == "succeeded",
                        "amount": format_amount(m.amount, &m.currency),
                        "card": m.masked_card_number,
                        "to_card": m.masked_to_card_number.unwrap_or_default(),
                        "method": m.method.unwrap_or_default(),
                        "reason": m.failure_reason.unwrap_or_default(),
                        "id": m.id,
                    }),
                )
                .await?
            }
            "payment.succeeded" | "payment.failed" => {
                let p: transaction::Payment = data(event)?;
                if backdated(event, p.completed_at) {
                    return Ok(None);
                }
                self.to_user(
                    p.user_id,
                    "payment",
                    json!({
                        "succeeded": p.status == "succeeded",
                        "amount": format_amount(p.amount, &p.currency),
                        "card": p.masked_card_number,
                        "merchant": p.merchant_name,
                        "method": p.method,
                        "description": p.description,
                        "reason": p.failure_reason.unwrap_or_default(),
                        "id": p.id,
                    }),
                )
                .await?
            }
            "refund.succeeded" | "refund.failed" => {
                let r: transaction::Refund = data(event)?;
                if backdated(event, r.completed_at) {
                    return Ok(None);
                }
                self.to_user(
                    r.user_id,
                    "refund",
                    json!({
                        "succeeded": r.status == "succeeded",
                        "amount": format_amount(r.amount, &r.currency),
                        "card": r.masked_card_number,
                        "merchant": r.merchant_name,
                        "reason": r.reason,
                        "failure": r.failure_reason.unwrap_or_default(),
                        "payment_id": r.payment_id,
                        "id": r.id,
                    }),
                )
                .await?
            }
            merchant::APPLIED | merchant::STATUS_CHANGED => {
                let m: merchant::MerchantData = data(event)?;
                let template = if t == merchant::APPLIED {
                    "merchant_applied"
                } else {
                    "merchant_status"
                };
                self.to_user(
                    m.user_id,
                    template,
                    json!({
                        "merchant": m.name,
                        "status": m.status,
                        "previous": m.previous_status.unwrap_or_default(),
                        "reason": m.reason.unwrap_or_default(),
                    }),
                )
                .await?
            }
            merchant::DOCUMENT_REVIEWED => {
                let d: merchant::DocumentData = data(event)?;
                self.to_user(
                    d.user_id,
                    "document_reviewed",
                    json!({
                        "merchant": d.merchant_name,
                        "document_type": d.document_type.replace('_', " "),
                        "status": d.status,
                        "note": d.note.unwrap_or_default(),
                    }),
                )
                .await?
            }
            _ => None,
        };
        Ok(email)
    }

    /// An email to the address the event carries (the one the token was issued for), if the
    /// user still exists: a user deleted before the email went out gets none.
    async fn to_user_as_sent(
        &self,
        user_id: Uuid,
        to: String,
        template: &'static str,
        context: Value,
    ) -> Result<Option<Email>, HandlerError> {
        if self.recipient(user_id).await?.is_none() {
            tracing::info!(%user_id, template, "user no longer exists; no email");
            return Ok(None);
        }
        Ok(Some(Email {
            template,
            to,
            context,
        }))
    }

    async fn to_user(
        &self,
        user_id: Uuid,
        template: &'static str,
        mut context: Value,
    ) -> Result<Option<Email>, HandlerError> {
        let Some((to, name)) = self.recipient(user_id).await? else {
            tracing::info!(%user_id, template, "recipient no longer exists; no email");
            return Ok(None);
        };
        if let Some(map) = context.as_object_mut() {
            map.insert("name".to_owned(), Value::String(name));
        }
        Ok(Some(Email {
            template,
            to,
            context,
        }))
    }

    /// Claims the delivery of `event`; `None` if it must not be sent (again).
    async fn claim(
        &self,
        event: &Envelope,
        email: &Email,
        subject: &str,
        trace_id: Option<&str>,
    ) -> Result<Option<i32>, HandlerError> {
        let claimed: Option<i32> = sqlx::query_scalar(
            "INSERT INTO deliveries (event_id, event_type, template, recipient, subject, status,
                 trace_id)
             VALUES ($1, $2, $3, $4, $5, 'sending', $6)
             ON CONFLICT (event_id) DO UPDATE
                 SET status = 'sending', attempts = deliveries.attempts + 1, updated_at = now()
                 WHERE deliveries.status = 'failed'
             RETURNING attempts",
        )
        .bind(event.id)
        .bind(&event.event_type)
        .bind(email.template)
        .bind(&email.to)
        .bind(subject)
        .bind(trace_id)
        .fetch_optional(&self.pool)
        .await?;
        if claimed.is_none() {
            let crashed = sqlx::query(
                "UPDATE deliveries SET status = 'unknown', updated_at = now(),
                     last_error = 'the service stopped while sending; not resent'
                 WHERE event_id = $1 AND status = 'sending'",
            )
            .bind(event.id)
            .execute(&self.pool)
            .await?
            .rows_affected();
            if crashed > 0 {
                tracing::warn!(event_id = %event.id, "email may or may not have been sent before a crash; not resending");
            }
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
                sqlx::query(
                    "UPDATE deliveries SET status = 'sent', sent_at = now(), updated_at = now(),
                         message_id = $2, last_error = NULL
                     WHERE event_id = $1",
                )
                .bind(event.id)
                .bind(&message_id)
                .execute(&self.pool)
                .await?;
                metrics::counter!("emails_sent_total", "template" => email.template).increment(1);
                tracing::info!(event_id = %event.id, template = email.template, attempt, "email sent");
                Ok(())
            }
            Err(e) => {
                sqlx::query(
                    "UPDATE deliveries SET status = 'failed', last_error = $2, updated_at = now()
                     WHERE event_id = $1",
                )
                .bind(event.id)
                .bind(e.to_string())
                .execute(&self.pool)
                .await?;
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
