//! Use cases of the user service: registration, verification, login with lockout, refresh
//! rotation with reuse detection, logout, password reset, and user administration.
//! Each change and its outbox event commit in one transaction.

use std::time::Duration;

use chrono::Utc;
use events::payloads::user as ev;
use events::{Envelope, topics};
use platform::auth::{Authenticator, IssuedToken, Principal, TokenIssuer};
use platform::pagination::{LifecycleFilter, Page};
use proto::role::v1::UserRolesRequest;
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

const SOURCE: &str = "user-service";

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
    pool: PgPool,
    issuer: TokenIssuer,
    authenticator: Authenticator,
    redis: deadpool_redis::Pool,
    roles: RoleServiceClient<Channel>,
    lockout: Lockout,
    lifetimes: TokenLifetimes,
    link_key: platform::link_token::LinkTokenKey,
    hasher: crypto::PasswordHasher,
    emails_per_recipient_per_hour: u32,
    dummy_hash: String,
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

    fn parse_account(
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

    async fn create_account(
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

    async fn issue_one_time(
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
    async fn mail_verification(
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

    async fn registration_attempted(&self, email: &str) -> Result<(), UserError> {
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

    /// Checks credentials (with a lockout per account and client, counted before the password
    /// is checked) and starts a session.
    #[tracing::instrument(skip_all)]
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        client: &str,
    ) -> Result<Session, UserError> {
        let email = Email::parse(email, "email")?;
        if password.is_empty() {
            return Err(platform::FieldViolation::new("password", "is required").into());
        }
        let attempt = self.lockout.admit(email.as_str(), client).await?;
        let mut conn = self.pool.acquire().await?;
        let user = repo::active_user_by_email(&mut conn, email.as_str()).await?;
        drop(conn);
        let stored = user
            .as_ref()
            .map_or_else(|| self.dummy_hash.clone(), |u| u.password_hash.clone());
        let matches = self.hasher.verify(password.to_owned(), stored).await?;
        let user = match (user, matches) {
            (Some(user), true) => user,
            _ => {
                metrics::counter!("user_logins_total", "outcome" => "failed").increment(1);
                return Err(self.lockout.failed(attempt).await);
            }
        };
        if user.email_verified_at.is_none() {
            return Err(UserError::EmailNotVerified);
        }
        self.lockout.succeeded(attempt).await?;
        let session = self.start_session(&user, Uuid::now_v7()).await?;
        metrics::counter!("user_logins_total", "outcome" => "succeeded").increment(1);
        tracing::info!(user_id = %user.id, "logged in");
        Ok(session)
    }

    async fn grants(&self, user_id: Uuid) -> Result<(Vec<String>, Vec<String>), UserError> {
        let token = self
            .issuer
            .service_token(SOURCE, &["roles.grants.read"])
            .map_err(UserError::Internal)?;
        let request = platform::grpc::outgoing(
            UserRolesRequest {
                user_id: user_id.to_string(),
            },
            Some(token.token.expose()),
            Duration::from_secs(5),
        );
        let grants = self
            .roles
            .clone()
            .get_user_grants(request)
            .await
            .map_err(UserError::RoleService)?
            .into_inner();
        Ok((grants.roles, grants.permissions))
    }

    async fn start_session(&self, user: &UserRow, family: Uuid) -> Result<Session, UserError> {
        let (roles, permissions) = self.grants(user.id).await?;
        let access = self
            .issuer
            .access_token(user.id, roles, permissions)
            .map_err(UserError::Internal)?;
        let refresh = crypto::new_token("rt_");
        let expires_at =
            Utc::now() + chrono::Duration::from_std(self.lifetimes.refresh).unwrap_or_default();
        let mut conn = self.pool.acquire().await?;
        repo::insert_refresh_token(
            &mut conn,
            user.id,
            family,
            &crypto::token_hash(&refresh),
            expires_at,
        )
        .await?;
        Ok(Session {
            access,
            refresh_token: platform::Secret::new(refresh),
            refresh_expires_in: self.lifetimes.refresh,
        })
    }

    /// Rotates a refresh token. A token presented a second time revokes its whole family.
    #[tracing::instrument(skip_all)]
    pub async fn refresh(&self, refresh_token: &str) -> Result<Session, UserError> {
        let hash = crypto::token_hash(refresh_token);
        // Sign the new access token before taking the row lock: it needs the role service.
        let mut conn = self.pool.acquire().await?;
        let peek = repo::refresh_token_for_update(&mut conn, &hash)
            .await?
            .ok_or(UserError::InvalidRefreshToken)?;
        drop(conn);
        let (roles, permissions) = self.grants(peek.user_id).await?;

        let mut tx = self.pool.begin().await?;
        let row = repo::refresh_token_for_update(&mut tx, &hash)
            .await?
            .ok_or(UserError::InvalidRefreshToken)?;
        if row.revoked_at.is_some() {
            return Err(UserError::InvalidRefreshToken);
        }
        if row.used_at.is_some() {
            let revoked = repo::revoke_family(&mut tx, row.family_id, "reuse detected").await?;
            tx.commit().await?;
            tracing::warn!(user_id = %row.user_id, revoked, "refresh token reuse; family revoked");
            metrics::counter!("user_refresh_reuse_total").increment(1);
            return Err(UserError::RefreshTokenReused);
        }
        if row.expires_at <= Utc::now() {
            return Err(UserError::RefreshTokenExpired);
        }
        // A trashed user, or one whose address is unverified (changed since the login), gets
        // no new access token.
        let user = repo::user_by_id(&mut tx, row.user_id, false)
            .await?
            .filter(|u| u.deleted_at.is_none())
            .ok_or(UserError::InvalidRefreshToken)?;
        if user.email_verified_at.is_none() {
            return Err(UserError::EmailNotVerified);
        }
        repo::mark_refresh_used(&mut tx, row.id).await?;
        let refresh = crypto::new_token("rt_");
        let expires_at =
            Utc::now() + chrono::Duration::from_std(self.lifetimes.refresh).unwrap_or_default();
        repo::insert_refresh_token(
            &mut tx,
            user.id,
            row.family_id,
            &crypto::token_hash(&refresh),
            expires_at,
        )
        .await?;
        tx.commit().await?;
        let access = self
            .issuer
            .access_token(user.id, roles, permissions)
            .map_err(UserError::Internal)?;
        Ok(Session {
            access,
            refresh_token: platform::Secret::new(refresh),
            refresh_expires_in: self.lifetimes.refresh,
        })
    }

    /// Revokes the refresh token's family and the caller's access token, if given.
    #[tracing::instrument(skip_all)]
    pub async fn logout(
        &self,
        refresh_token: &str,
        caller: Option<&Principal>,
    ) -> Result<(), UserError> {
        if !refresh_token.is_empty() {
            let mut tx = self.pool.begin().await?;
            if let Some(row) =
                repo::refresh_token_for_update(&mut tx, &crypto::token_hash(refresh_token)).await?
            {
                if let Some(caller) = caller
                    && caller.user_id() != Some(row.user_id)
                {
                    return Err(UserError::InvalidRefreshToken);
                }
                repo::revoke_family(&mut tx, row.family_id, "logout").await?;
            }
            tx.commit().await?;
        }
        if let Some(caller) = caller {
            platform::auth::revoke_access_token(&self.redis, &caller.token_id, caller.expires_at)
                .await
                .map_err(UserError::Internal)?;
        }
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
    async fn may_mail(&self, purpose: &'static str, email: &str) -> Result<bool, UserError> {
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

    /// Ends every session of the caller: all refresh tokens, and every access token at once.
    #[tracing::instrument(skip_all)]
    pub async fn logout_everywhere(&self, caller: &Principal) -> Result<(), UserError> {
        let id = caller.user_id().ok_or(UserError::NotFound)?;
        let mut tx = self.pool.begin().await?;
        repo::revoke_all_for_user(&mut tx, id, "logout everywhere").await?;
        tx.commit().await?;
        self.end_access_tokens(id).await
    }

    /// Refuses every access token of `user` issued until now.
    async fn end_access_tokens(&self, user: Uuid) -> Result<(), UserError> {
        platform::auth::end_all_sessions(&self.redis, user, self.issuer.access_ttl())
            .await
            .map_err(UserError::Internal)
    }

    /// Only admins act on admins: a `users.write` or `users.delete` holder cannot change,
    /// trash or delete an admin's account (which would be a way to become one).
    async fn require_may_act_on(&self, caller: &Principal, target: Uuid) -> Result<(), UserError> {
        if caller.user_id() == Some(target) || caller.roles.contains("admin") {
            return Ok(());
        }
        let (roles, _) = self.grants(target).await?;
        if roles.iter().any(|r| r == "admin") {
            return Err(platform::auth::AuthError::MissingPermission("admin".to_owned()).into());
        }
        Ok(())
    }

    /// The current password of a self-service change of email or password, through the
    /// login lockout (a stolen session must not become a password oracle).
    async fn check_current_password(
        &self,
        current: &UserRow,
        changes: &AccountChanges,
    ) -> Result<(), UserError> {
        let Some(given) = changes
            .current_password
            .as_deref()
            .filter(|p| !p.is_empty())
        else {
            return Err(platform::FieldViolation::new(
                "current_password",
                "is required to change your email or password",
            )
            .into());
        };
        let attempt = self
            .lockout
            .admit(&current.email, &changes.client_address)
            .await?;
        if self
            .hasher
            .verify(given.to_owned(), current.password_hash.clone())
            .await?
        {
            self.lockout.succeeded(attempt).await
        } else {
            Err(match self.lockout.failed(attempt).await {
                UserError::InvalidCredentials => platform::FieldViolation::new(
                    "current_password",
                    "does not match your password",
                )
                .into(),
                other => other,
            })
        }
    }

    /// The caller's own account.
    pub async fn me(&self, caller: &Principal) -> Result<UserRow, UserError> {
        let id = caller.user_id().ok_or(UserError::NotFound)?;
        let mut conn = self.pool.acquire().await?;
        repo::user_by_id(&mut conn, id, false)
            .await?
            .filter(|u| u.deleted_at.is_none())
            .ok_or(UserError::NotFound)
    }

    /// Admin: creates an account, optionally already verified.
    #[tracing::instrument(skip_all)]
    pub async fn create_user(
        &self,
        caller: &Principal,
        account: NewAccount<'_>,
        verified: bool,
    ) -> Result<UserRow, UserError> {
        caller.require(USERS_WRITE)?;
        self.create_account(&account, verified, ev::CREATED).await
    }

    /// A user, for themselves or a holder of `users.read` (who also sees trashed users).
    pub async fn get_user(&self, caller: &Principal, id: Uuid) -> Result<UserRow, UserError> {
        // Not-found rather than forbidden, so ids of other users are not confirmed to exist.
        caller
            .require_self_or(id, USERS_READ)
            .map_err(|_| UserError::NotFound)?;
        let mut conn = self.pool.acquire().await?;
        let user = repo::user_by_id(&mut conn, id, false)
            .await?
            .ok_or(UserError::NotFound)?;
        if user.deleted_at.is_some() && !caller.has(USERS_READ) {
            return Err(UserError::NotFound);
        }
        Ok(user)
    }

    /// Updates a user: themselves, or anyone with `users.write`. A new email must be verified
    /// again; a new password ends every session.
    #[tracing::instrument(skip_all, fields(user_id = %id))]
    pub async fn update_user(
        &self,
        caller: &Principal,
        id: Uuid,
        changes: AccountChanges,
    ) -> Result<UserRow, UserError> {
        caller
            .require_self_or(id, USERS_WRITE)
            .map_err(|_| UserError::NotFound)?;
        self.require_may_act_on(caller, id).await?;
        let mut v = Violations::default();
        let email = changes
            .email
            .as_deref()
            .and_then(|e| v.check(Email::parse(e, "email")));
        let first = changes
            .first_name
            .as_deref()
            .and_then(|n| v.check(PersonName::parse(n, "first_name")));
        let last = changes
            .last_name
            .as_deref()
            .and_then(|n| v.check(PersonName::parse(n, "last_name")));
        v.finish()?;
        let mut tx = self.pool.begin().await?;
        let current = repo::user_by_id(&mut tx, id, true)
            .await?
            .filter(|u| u.deleted_at.is_none())
            .ok_or(UserError::NotFound)?;
        let effective_email = match &email {
            Some(e) => e.clone(),
            None => Email::parse(&current.email, "email")?,
        };
        let password_hash = match changes.password.as_deref() {
            Some(p) => {
                let p = NewPassword::parse(p, "password", Some(&effective_email))?;
                Some(self.hasher.hash(p.expose().to_owned()).await?)
            }
            None => None,
        };
        let email_changed = email.as_ref().is_some_and(|e| e.as_str() != current.email);
        let password_changed = password_hash.is_some();
        if (email_changed || password_changed) && caller.user_id() == Some(id) {
            // Whoever holds a session must not be able to take the account over with it.
            self.check_current_password(&current, &changes).await?;
        }
        let update = UserChanges {
            email: email.map(|e| e.as_str().to_owned()),
            first_name: first.map(|n| n.as_str().to_owned()),
            last_name: last.map(|n| n.as_str().to_owned()),
            password_hash,
            unverify: email_changed && !caller.has(USERS_WRITE),
        };
        let user = repo::update_user(&mut tx, id, &update)
            .await
            .map_err(classify)?;
        emit(&mut tx, ev::UPDATED, user.id, &user.event_data()).await?;
        if email_changed && user.email_verified_at.is_none() {
            let issued = self
                .issue_one_time(
                    &mut tx,
                    &user,
                    TokenPurpose::VerifyEmail,
                    self.lifetimes.verification,
                )
                .await?;
            emit(&mut tx, ev::VERIFICATION_REQUESTED, user.id, &issued).await?;
        }
        if password_changed {
            emit(&mut tx, ev::PASSWORD_CHANGED, user.id, &user.event_data()).await?;
        }
        if email_changed {
            let changed = ev::EmailChanged {
                user: user.event_data(),
                previous_email: current.email.clone(),
            };
            emit(&mut tx, ev::EMAIL_CHANGED, user.id, &changed).await?;
        }
        if password_changed || email_changed {
            let reason = if password_changed {
                "password changed"
            } else {
                "email changed"
            };
            repo::revoke_all_for_user(&mut tx, user.id, reason).await?;
        }
        tx.commit().await?;
        if password_changed || email_changed {
            self.end_access_tokens(user.id).await?;
        }
        Ok(user)
    }

    /// Admin: one page of users.
    pub async fn list_users(
        &self,
        caller: &Principal,
        lifecycle: LifecycleFilter,
        search: &str,
        page: Page,
    ) -> Result<(Vec<UserRow>, i64), UserError> {
        caller.require(USERS_READ)?;
        if search.chars().count() > 100 {
            return Err(
                platform::FieldViolation::new("search", "must be at most 100 characters").into(),
            );
        }
        let mut conn = self.pool.acquire().await?;
        Ok(repo::list_users(&mut conn, lifecycle, search.trim(), page).await?)
    }

    /// Admin: soft-deletes a user and ends their sessions.
    #[tracing::instrument(skip_all, fields(user_id = %id))]
    pub async fn trash_user(&self, caller: &Principal, id: Uuid) -> Result<UserRow, UserError> {
        caller.require(USERS_DELETE)?;
        if caller.user_id() == Some(id) {
            return Err(UserError::SelfDelete);
        }
        self.require_may_act_on(caller, id).await?;
        let mut tx = self.pool.begin().await?;
        let user = repo::set_trashed(&mut tx, id, true)
            .await?
            .ok_or(UserError::NotFound)?;
        repo::revoke_all_for_user(&mut tx, id, "user trashed").await?;
        emit(&mut tx, ev::TRASHED, id, &user.event_data()).await?;
        tx.commit().await?;
        self.end_access_tokens(id).await?;
        Ok(user)
    }

    /// Admin: restores a trashed user.
    pub async fn restore_user(&self, caller: &Principal, id: Uuid) -> Result<UserRow, UserError> {
        caller.require(USERS_DELETE)?;
        let mut tx = self.pool.begin().await?;
        let user = repo::set_trashed(&mut tx, id, false)
            .await?
            .ok_or(UserError::NotFound)?;
        emit(&mut tx, ev::RESTORED, id, &user.event_data()).await?;
        tx.commit().await?;
        Ok(user)
    }

    /// Admin: permanently deletes a trashed user.
    #[tracing::instrument(skip_all, fields(user_id = %id))]
    pub async fn delete_user(&self, caller: &Principal, id: Uuid) -> Result<(), UserError> {
        caller.require(USERS_DELETE)?;
        if caller.user_id() == Some(id) {
            return Err(UserError::SelfDelete);
        }
        self.require_may_act_on(caller, id).await?;
        let mut tx = self.pool.begin().await?;
        let user = repo::user_by_id(&mut tx, id, true)
            .await?
            .ok_or(UserError::NotFound)?;
        if user.deleted_at.is_none() {
            return Err(UserError::NotTrashed);
        }
        repo::delete_trashed(&mut tx, id).await?;
        emit(&mut tx, ev::DELETED, id, &ev::Deleted { user_id: id }).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Admin: restores every trashed user.
    pub async fn restore_all(&self, caller: &Principal) -> Result<u64, UserError> {
        caller.require(USERS_DELETE)?;
        let mut tx = self.pool.begin().await?;
        let users = repo::restore_all(&mut tx).await?;
        for user in &users {
            emit(&mut tx, ev::RESTORED, user.id, &user.event_data()).await?;
        }
        tx.commit().await?;
        Ok(users.len() as u64)
    }

    /// Admin: permanently deletes every trashed user.
    pub async fn delete_all_trashed(&self, caller: &Principal) -> Result<u64, UserError> {
        caller.require(USERS_DELETE)?;
        let mut tx = self.pool.begin().await?;
        let ids = repo::delete_all_trashed(&mut tx).await?;
        for id in &ids {
            emit(&mut tx, ev::DELETED, *id, &ev::Deleted { user_id: *id }).await?;
        }
        tx.commit().await?;
        Ok(ids.len() as u64)
    }
}

async fn emit(
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
