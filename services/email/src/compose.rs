//! Which email an event causes: [`compose`](EmailEvents::compose) picks the template and
//! the recipient. User events carry the address; money, payment and merchant events carry a
//! user id, looked up in the user service. Either way the user must still exist there.
//! Events that mail nobody (card.*, role.*, ...) and backdated imports are skipped.

use std::time::Duration;

use chrono::{DateTime, Utc};
use events::payloads::{merchant, movement, transaction, user};
use events::{Envelope, HandlerError};
use proto::user::v1::GetUserRequest;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::handler::{Email, EmailEvents, format_amount};

const DEADLINE: Duration = Duration::from_secs(5);

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

/// Whether `event` is a backdated import by its envelope alone (the `completed_at` of a money
/// event's data), without decoding it: the consumer passes those over without a database
/// transaction (see [`EmailEvents`]'s `accepts`). A demo or history import announces a
/// million of them; taking each in its own transaction, the email consumer skipped about
/// 20 a second on two busy cores.
pub(crate) fn backdated_import(event: &Envelope) -> bool {
    event
        .data
        .get("completed_at")
        .and_then(Value::as_str)
        .and_then(|at| DateTime::parse_from_rfc3339(at).ok())
        .is_some_and(|at| backdated(event, at.with_timezone(&Utc)))
}

fn data<T: serde::de::DeserializeOwned>(event: &Envelope) -> Result<T, HandlerError> {
    event.data_as().map_err(|e| {
        metrics::counter!("emails_dead_lettered_total", "reason" => "malformed").increment(1);
        HandlerError::Permanent(anyhow::anyhow!("malformed {} data: {e}", event.event_type))
    })
}

impl EmailEvents {
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
            "topup.pending" | "topup.succeeded" | "topup.failed" | "withdraw.pending"
            | "withdraw.succeeded" | "withdraw.failed" | "transfer.succeeded"
            | "transfer.failed" => {
                let m: movement::Movement = data(event)?;
                if backdated(event, m.completed_at) {
                    return Ok(None);
                }
                self.to_user(
                    m.user_id,
                    "movement",
                    json!({
                        "kind": m.kind,
                        "pending": m.status == "pending",
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
            // An authorization emails its customer when it is captured (for what was
            // captured), not when the money is only held.
            "payment.succeeded" | "payment.failed" | "payment.captured" => {
                let p: transaction::Payment = data(event)?;
                if backdated(event, p.completed_at) {
                    return Ok(None);
                }
                let charged = p.captured_amount.filter(|c| *c > 0).unwrap_or(p.amount);
                self.to_user(
                    p.user_id,
                    "payment",
                    json!({
                        "succeeded": p.status == "succeeded",
                        "amount": format_amount(charged, &p.currency),
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
            merchant::WEBHOOK_ENDPOINT_DISABLED => {
                let w: merchant::WebhookEndpointDisabled = data(event)?;
                self.to_user(
                    w.user_id,
                    "webhook_disabled",
                    json!({
                        "merchant": w.merchant_name,
                        "url": w.url,
                        "failures": w.failures,
                        "last_error": w.last_error,
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
}
