//! Use cases of the user service: registration, email verification and password reset here;
//! sessions in [`crate::sessions`], account administration in [`crate::accounts`]. Each
//! change and its outbox event commit in one transaction.
//!
//! Why one file of ~410 lines: registration, verification and reset are one token lifecycle
//! (issue, email, redeem once); sessions and administration are already elsewhere.

use std::time::Duration;

use chrono::Utc;
use events::payloads::user as ev;
use events::{Envelope, topics};
use platform::auth::{Authenticator, IssuedToken, TokenIssuer};
use proto::role::v1::role_service_client::RoleServiceClient;
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use tonic::transport::Channel;
use uuid::Uuid;

use crate::crypto;
use crate::domain::{Email, NewPassword, PersonName, Violations};
use crate::error::{UserError, classify};
use crate::lockout::Lockout;
use crate::repo::{self, NewUser, TokenPurpose, UserChanges, UserRow};

/// Permission to read any user.
pub const USERS_READ: &str = "users.read";
/// Permission to create and update any user.
pub const USERS_WRITE: &str = "users.write";
/// Permission to trash, restore and delete users.
pub const USERS_DELETE: &str = "users.delete";

pub(crate) const SOURCE: &str = "user-service";

/// Lifetimes of tokens the service issues.
#[derive(Clone, Debug)]
pub struct TokenLifetimes {
    pub refresh: Duration,
    pub verification: Duration,
    pub password_reset: Duration,
}

/// Secrets and limits of the user service's credentials.
#[derive(Clone, Debug)]
pub struct Security {
    pub lifetimes: TokenLifetimes,
    /// Derives one-time link tokens from the ids events carry (shared with the email service).
    pub link_key: platform::link_token::LinkTokenKey,
    /// Bounded argon2.
    pub hasher: crypto::PasswordHasher,
    /// Reset and verification emails one address gets per hour at most, so the platform
    /// cannot be used to mail-bomb anyone.
    pub emails_per_recipient_per_hour: u32,
}

/// A logged-in session: an access token and a refresh token.
#[derive(Debug)]
pub struct Session {
    pub access: IssuedToken,
    pub refresh_token: platform::Secret<String>,
    pub refresh_expires_in: Duration,
}

/// Input of registration and admin creation.
pub struct NewAccount<'a> {
    pub email: &'a str,
    pub password: &'a str,
    pub first_name: &'a str,
    pub last_name: &'a str,
}

/// Input of an update; `None` leaves a field unchanged.
#[derive(Default)]
pub struct AccountChanges {
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub password: Option<String>,
    /// The caller's current password; required to change one's own email or password.
    pub current_password: Option<String>,
    /// The end client's address (the lockout of a wrong current password counts per client).
    pub client_address: String,
}

/// The user service.
#[derive(Clone)]
pub struct Users {
    pub(crate) pool: PgPool,
    pub(crate) issuer: TokenIssuer,
    pub(crate) authenticator: Authenticator,
    pub(crate) redis: deadpool_redis::Pool,
    pub(crate) roles: RoleServiceClient<Channel>,
    pub(crate) lockout: Lockout,
    pub(crate) lifetimes: TokenLifetimes,
    pub(crate) link_key: platform::link_token::LinkTokenKey,
    pub(crate) hasher: crypto::PasswordHasher,
    pub(crate) emails_per_recipient_per_hour: u32,
    pub(crate) dummy_hash: String,
}

impl Users {
    pub async fn new(
        pool: PgPool,
        issuer: TokenIssuer,
        authenticator: Authenticator,
        redis: deadpool_redis::Pool,
        roles: RoleServiceClient<Channel>,
        lockout: Lockout,
        security: Security,
    ) -> Result<Self, UserError> {
        // Verifying against this when the email is unknown makes both cases take as long.
        let dummy_hash = security.hasher.hash(crypto::new_token("")).await?;
        Ok(Self {
            pool,
            issuer,
            authenticator,
            redis,
            roles,
            lockout,
            lifetimes: security.lifetimes,
            link_key: security.link_key,
            hasher: security.hasher,
            emails_per_recipient_per_hour: security.emails_per_recipient_per_hour,
            dummy_hash,
        })
    }

    pub fn authenticator(&self) -> &Authenticator {
        &self.authenticator
    }

    pub(crate) fn parse_account(
        &self,
        account: &NewAccount<'_>,
    ) -> Result<(Email, NewPassword, PersonName, PersonName), UserError> {
        let mut v = Violations::default();
        let email = v.check(Email::parse(account.email, "email"));
        let password = v.check(NewPassword::parse(
            account.password,
            "password",
            email.as_ref(),
        ));
        let first = v.check(PersonName::parse(account.first_name, "first_name"));
        let last = v.check(PersonName::parse(account.last_name, "last_name"));
        v.finish()?;
        match (email, password, first, last) {
            (Some(e), Some(p), Some(f), Some(l)) => Ok((e, p, f, l)),
            _ => Err(UserError::Internal(anyhow::anyhow!(
                "validation inconsistency"
            ))),
        }
    }

    pub(crate) async fn create_account(
        &self,
        account: &NewAccount<'_>,
        verified: bool,
        event_type: &str,
    ) -> Result<UserRow, UserError> {
        let (email, password, first, last) = self.parse_account(account)?;
        let hash = self.hasher.hash(password.expose().to_owned()).await?;
        let mut tx = self.pool.begin().await?;
        let user = repo::insert_user(
            &mut tx,
            &NewUser {
                id: Uuid::now_v7(),
                email: email.as_str(),
                password_hash: &hash,
                first_name: first.as_str(),
                last_name: last.as_str(),
                verified,
            },
        )
        .await
        .map_err(classify)?;
        if verified {
            emit(&mut tx, event_type, user.id, &user.event_data()).await?;
        } else {
            let issued = self
                .issue_one_time(
                    &mut tx,
                    &user,
                    TokenPurpose::VerifyEmail,
                    self.lifetimes.verification,
                )
                .await?;
            emit(&mut tx, event_type, user.id, &issued).await?;
        }
        tx.commit().await?;
        tracing::info!(user_id = %user.id, event_type, "account created");
        Ok(user)
    }

    pub(crate) async fn issue_one_time(
        &self,
        conn: &mut PgConnection,
        user: &UserRow,
        purpose: TokenPurpose,
        ttl: Duration,
    ) -> Result<ev::TokenIssued, UserError> {
        let token_id = Uuid::now_v7();
        let token = self.link_key.token(purpose.as_str(), token_id);
        let expires_at = Utc::now() + chrono::Duration::from_std(ttl).unwrap_or_default();
        repo::replace_one_time_token(
            conn,
            user.id,
            purpose,
            &crypto::token_hash(&token),
            expires_at,
        )
        .await?;
        Ok(ev::TokenIssued {
            user: user.event_data(),
            token_id,
            expires_at,
        })
    }

    /// Self-registration: an unverified account; the role service gives it the customer role.
    ///
    /// The answer is the same whether or not the address is taken, so registration reveals
    /// no accounts (the password is hashed either way, so it takes as long). A taken address
    /// is told by email instead: a new verification link if it is still unverified, else a
    /// notice that someone tried to register with it — both throttled per address.
    #[tracing::instrument(skip_all)]
    pub async fn register(&self, account: NewAccount<'_>) -> Result<(), UserError> {
        match self.create_account(&account, false, ev::REGISTERED).await {
            Ok(_) => Ok(()),
            Err(UserError::EmailTaken) => self.registration_attempted(account.email).await,
            Err(e) => Err(e),
        }
    }

    /// A new verification token for `user`, announced for the email service — unless the
    /// address has had its hour's allowance of emails.
    pub(crate) async fn mail_verification(
        &self,
        conn: &mut PgConnection,
        user: &UserRow,
    ) -> Result<(), UserError> {
        if self
            .may_mail(TokenPurpose::VerifyEmail.as_str(), &user.email)
            .await?
        {
            let issued = self
                .issue_one_time(
                    conn,
                    user,
                    TokenPurpose::VerifyEmail,
                    self.lifetimes.verification,
                )
                .await?;
            emit(conn, ev::VERIFICATION_REQUESTED, user.id, &issued).await?;
        }
        Ok(())
    }

    pub(crate) async fn registration_attempted(&self, email: &str) -> Result<(), UserError> {
        let email = Email::parse(email, "email")?;
        let mut tx = self.pool.begin().await?;
        if let Some(user) = repo::active_user_by_email(&mut tx, email.as_str()).await? {
            if user.email_verified_at.is_none() {
                self.mail_verification(&mut tx, &user).await?;
            } else if self
                .may_mail("registration_attempted", email.as_str())
                .await?
            {
                emit(
                    &mut tx,
                    ev::REGISTRATION_ATTEMPTED,
                    user.id,
                    &user.event_data(),
                )
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Verifies an email address with its token.
    #[tracing::instrument(skip_all)]
    pub async fn verify_email(&self, token: &str) -> Result<UserRow, UserError> {
        let mut tx = self.pool.begin().await?;
        let user_id = repo::consume_one_time_token(
            &mut tx,
            TokenPurpose::VerifyEmail,
            &crypto::token_hash(token),
        )
        .await?
        .ok_or(UserError::InvalidOneTimeToken)?;
        let user = repo::mark_verified(&mut tx, user_id).await?;
        if user.deleted_at.is_some() {
            return Err(UserError::InvalidOneTimeToken);
        }
        emit(&mut tx, ev::VERIFIED, user.id, &user.event_data()).await?;
        tx.commit().await?;
        Ok(user)
    }

    /// Issues a new verification token if the account exists and is unverified. Says nothing
    /// either way, so it cannot be used to discover accounts.
    #[tracing::instrument(skip_all)]
    pub async fn resend_verification(&self, email: &str) -> Result<(), UserError> {
        let email = Email::parse(email, "email")?;
        let mut tx = self.pool.begin().await?;
        if let Some(user) = repo::active_user_by_email(&mut tx, email.as_str()).await?
            && user.email_verified_at.is_none()
        {
            self.mail_verification(&mut tx, &user).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Emails a reset token if the account exists. Says nothing either way.
    #[tracing::instrument(skip_all)]
    pub async fn forgot_password(&self, email: &str) -> Result<(), UserError> {
        let email = Email::parse(email, "email")?;
        let mut tx = self.pool.begin().await?;
        if let Some(user) = repo::active_user_by_email(&mut tx, email.as_str()).await?
            && self
                .may_mail(TokenPurpose::ResetPassword.as_str(), email.as_str())
                .await?
        {
            let issued = self
                .issue_one_time(
                    &mut tx,
                    &user,
                    TokenPurpose::ResetPassword,
                    self.lifetimes.password_reset,
                )
                .await?;
            emit(&mut tx, ev::PASSWORD_RESET_REQUESTED, user.id, &issued).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Sets a new password with a reset token and ends every session of the user.
    #[tracing::instrument(skip_all)]
    pub async fn reset_password(&self, token: &str, new_password: &str) -> Result<(), UserError> {
        let hash = crypto::token_hash(token);
        let mut tx = self.pool.begin().await?;
        let user_id = repo::consume_one_time_token(&mut tx, TokenPurpose::ResetPassword, &hash)
            .await?
            .ok_or(UserError::InvalidOneTimeToken)?;
        let user = repo::user_by_id(&mut tx, user_id, true)
            .await?
            .filter(|u| u.deleted_at.is_none())
            .ok_or(UserError::InvalidOneTimeToken)?;
        let email = Email::parse(&user.email, "email")?;
        let password = NewPassword::parse(new_password, "new_password", Some(&email))?;
        let password_hash = self.hasher.hash(password.expose().to_owned()).await?;
        let changes = UserChanges {
            password_hash: Some(password_hash),
            ..UserChanges::default()
        };
        let user = repo::update_user(&mut tx, user.id, &changes).await?;
        repo::revoke_all_for_user(&mut tx, user.id, "password reset").await?;
        emit(&mut tx, ev::PASSWORD_CHANGED, user.id, &user.event_data()).await?;
        tx.commit().await?;
        self.end_access_tokens(user.id).await?;
        self.lockout.reset(&user.email).await?;
        Ok(())
    }

    /// Counts a one-time-token email to `email` in the current hour; `false` once the hour's
    /// allowance is spent (the request is answered as always, and no email goes out).
    pub(crate) async fn may_mail(
        &self,
        purpose: &'static str,
        email: &str,
    ) -> Result<bool, UserError> {
        let hour = Utc::now().timestamp() / 3600;
        let key = format!("mail:{purpose}:{}:{hour}", crypto::key_digest(email));
        let mut conn = self
            .redis
            .get()
            .await
            .map_err(|e| UserError::Internal(e.into()))?;
        let (sent,): (u32,) = deadpool_redis::redis::pipe()
            .atomic()
            .incr(&key, 1)
            .expire(&key, 3600)
            .ignore()
            .query_async(&mut conn)
            .await
            .map_err(|e| UserError::Internal(e.into()))?;
        let allowed = sent <= self.emails_per_recipient_per_hour;
        if !allowed {
            metrics::counter!("user_emails_throttled_total", "purpose" => purpose).increment(1);
            tracing::warn!(purpose, "emails to this address throttled");
        }
        Ok(allowed)
    }
}

/// Queues a user event (its version from the catalogue) in the caller's transaction.
pub(crate) async fn emit(
    conn: &mut PgConnection,
    event_type: &str,
    subject: Uuid,
    data: &impl Serialize,
) -> Result<(), UserError> {
    let event = Envelope::new(SOURCE, event_type, subject, data)
        .map_err(|e| UserError::Internal(e.into()))?
        .with_version(ev::version_of(event_type));
    events::outbox::enqueue(conn, topics::USER_EVENTS, &event).await?;
    Ok(())
}
