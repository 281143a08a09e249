//! Reacts to user lifecycle events: every new account gets the `customer` role (never admin),
//! and a permanently deleted user loses their assignments. Runs inside the consumer's
//! transaction, so a redelivered event changes nothing.

use events::payloads::{role as role_ev, user as user_ev};
use events::{Envelope, EventHandler, HandlerError};
use sqlx::PgConnection;

use crate::repo::{self, CUSTOMER_ROLE_ID};

/// Handler of `payments.user.events`.
#[derive(Clone, Copy, Debug, Default)]
pub struct UserEvents;

impl EventHandler for UserEvents {
    async fn handle(&self, conn: &mut PgConnection, event: &Envelope) -> Result<(), HandlerError> {
        match event.event_type.as_str() {
            user_ev::REGISTERED | user_ev::CREATED => {
                let data: user_ev::UserData = event
                    .data_as()
                    .map_err(|e| HandlerError::Permanent(e.into()))?;
                if repo::assign(conn, data.user_id, CUSTOMER_ROLE_ID, "role-service").await? {
                    let role =
                        repo::role_by_id(conn, CUSTOMER_ROLE_ID)
                            .await?
                            .ok_or_else(|| {
                                HandlerError::Permanent(anyhow::anyhow!("customer role missing"))
                            })?;
                    crate::assignments::emit_assignment(
                        conn,
                        role_ev::ASSIGNED,
                        data.user_id,
                        &role,
                    )
                    .await
                    .map_err(|e| HandlerError::Retryable(e.into()))?;
                    tracing::info!(user_id = %data.user_id, "customer role assigned");
                }
            }
            user_ev::DELETED => {
                let data: user_ev::Deleted = event
                    .data_as()
                    .map_err(|e| HandlerError::Permanent(e.into()))?;
                let removed = repo::remove_user(conn, data.user_id).await?;
                tracing::info!(user_id = %data.user_id, removed, "assignments of deleted user removed");
            }
            _ => {}
        }
        Ok(())
    }
}
