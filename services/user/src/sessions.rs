//! Sessions: login (through the lockout and the bounded password hasher), refresh-token
//! rotation with reuse detection, logout of one session or of all of them at once.

use std::time::Duration;

use chrono::Utc;
use platform::auth::Principal;
use proto::role::v1::UserRolesRequest;
use uuid::Uuid;

use crate::crypto;
use crate::domain::Email;
use crate::error::UserError;
use crate::repo::{self, UserRow};
use crate::service::{Session, Users};

impl Users {
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

    pub(crate) async fn grants(
        &self,
        user_id: Uuid,
    ) -> Result<(Vec<String>, Vec<String>), UserError> {
        let token = self
            .issuer
            .service_token(&["roles.grants.read"])
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

    pub(crate) async fn start_session(
        &self,
        user: &UserRow,
        family: Uuid,
    ) -> Result<Session, UserError> {
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
    pub(crate) async fn end_access_tokens(&self, user: Uuid) -> Result<(), UserError> {
        platform::auth::end_all_sessions(&self.redis, user, self.issuer.access_ttl())
            .await
            .map_err(UserError::Internal)
    }
}
