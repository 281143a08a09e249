//! User administration and self-service: reading, listing, creating and changing accounts
//! (a self-service change of email or password needs the current password), trash, restore
//! and delete. Only admins act on admins.

use events::payloads::user as ev;
use platform::auth::Principal;
use platform::pagination::{LifecycleFilter, Page};
use uuid::Uuid;

use crate::domain::{Email, NewPassword, PersonName, Violations};
use crate::error::{UserError, classify};
use crate::repo::{self, TokenPurpose, UserChanges, UserRow};
use crate::service::{
    AccountChanges, NewAccount, USERS_DELETE, USERS_READ, USERS_WRITE, Users, emit,
};

impl Users {
    /// Only admins act on admins: a `users.write` or `users.delete` holder cannot change,
    /// trash or delete an admin's account (which would be a way to become one).
    pub(crate) async fn require_may_act_on(
        &self,
        caller: &Principal,
        target: Uuid,
    ) -> Result<(), UserError> {
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
    pub(crate) async fn check_current_password(
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
