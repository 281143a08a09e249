//! Sending over SMTP with lettre: host, port, TLS mode (`none`, `starttls`, `tls`) and
//! optional credentials from the environment.

use std::time::Duration;

use anyhow::Context;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use platform::Secret;

use crate::templates::Rendered;

/// How to reach the SMTP server.
#[derive(Clone, Debug)]
pub struct SmtpConfig {
    /// `SMTP_HOST`.
    pub host: String,
    /// `SMTP_PORT`.
    pub port: u16,
    /// `SMTP_TLS`: none (plain, for a local mail catcher), starttls, tls.
    pub tls: TlsMode,
    /// `SMTP_USERNAME` / `SMTP_PASSWORD` (both or neither).
    pub credentials: Option<(String, Secret<String>)>,
    /// `SMTP_TIMEOUT_SECS`.
    pub timeout: Duration,
    /// `EMAIL_FROM`, e.g. `Payments <no-reply@payments.local>`.
    pub from: String,
}

/// TLS mode of the SMTP connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsMode {
    None,
    StartTls,
    Tls,
}

impl SmtpConfig {
    pub fn from_env() -> anyhow::Result<Self> {
        let tls = match platform::config::optional("SMTP_TLS", "none").as_str() {
            "none" => TlsMode::None,
            "starttls" => TlsMode::StartTls,
            "tls" => TlsMode::Tls,
            other => anyhow::bail!("SMTP_TLS must be none, starttls or tls, not {other:?}"),
        };
        let username = platform::config::optional("SMTP_USERNAME", "");
        let password = platform::config::optional("SMTP_PASSWORD", "");
        let credentials = match (username.is_empty(), password.is_empty()) {
            (true, true) => None,
            (false, false) => Some((username, Secret::new(password))),
            _ => anyhow::bail!("set both SMTP_USERNAME and SMTP_PASSWORD, or neither"),
        };
        Ok(Self {
            host: platform::config::optional("SMTP_HOST", "127.0.0.1"),
            port: platform::config::parsed("SMTP_PORT", 1025_u16)?,
            tls,
            credentials,
            timeout: platform::config::seconds("SMTP_TIMEOUT_SECS", 10)?,
            from: platform::config::optional("EMAIL_FROM", "Payments <no-reply@payments.local>"),
        })
    }
}

/// Why a send failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The server refused the message for good (5xx): retrying will not help.
    #[error("permanent SMTP failure: {0}")]
    Permanent(String),
    /// The server is down, slow or said 4xx: retry later.
    #[error("transient SMTP failure: {0}")]
    Transient(String),
}

/// An SMTP client with a small connection pool.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    pub fn new(config: &SmtpConfig) -> anyhow::Result<Self> {
        let builder = match config.tls {
            TlsMode::None => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(config.host.as_str())
            }
            TlsMode::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host)
                .context("SMTP STARTTLS set-up")?,
            TlsMode::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&config.host)
                .context("SMTP TLS set-up")?,
        };
        let mut builder = builder.port(config.port).timeout(Some(config.timeout));
        if let Some((user, password)) = &config.credentials {
            builder =
                builder.credentials(Credentials::new(user.clone(), password.expose().clone()));
        }
        Ok(Self {
            transport: builder.build(),
            from: config.from.parse().context("EMAIL_FROM is not a mailbox")?,
        })
    }

    /// Sends one multipart (plain text + HTML) email; returns the Message-ID.
    pub async fn send(
        &self,
        to: &str,
        email: &Rendered,
        event_id: uuid::Uuid,
        trace_id: Option<&str>,
    ) -> Result<String, SendError> {
        let to: Mailbox = to
            .parse()
            .map_err(|e| SendError::Permanent(format!("recipient {to:?}: {e}")))?;
        let message_id = format!("<{event_id}@payments.local>");
        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(email.subject.clone())
            .message_id(Some(message_id.clone()))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("X-Event-Id"),
                event_id.to_string(),
            ));
        if let Some(trace_id) = trace_id {
            builder = builder.raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("X-Trace-Id"),
                trace_id.to_owned(),
            ));
        }
        let message = builder
            .multipart(MultiPart::alternative_plain_html(
                email.text.clone(),
                email.html.clone(),
            ))
            .map_err(|e| SendError::Permanent(format!("building the message: {e}")))?;
        match self.transport.send(message).await {
            Ok(_) => Ok(message_id),
            Err(e) if e.is_permanent() => Err(SendError::Permanent(e.to_string())),
            Err(e) => Err(SendError::Transient(e.to_string())),
        }
    }
}
