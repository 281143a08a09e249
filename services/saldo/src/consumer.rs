//! Opens and closes card accounts from card events, and opens merchant settlement accounts
//! when a merchant is approved. Runs in the consumer's transaction with
//! the processed-events record, and opening is `ON CONFLICT DO NOTHING` on the card id, so a
//! duplicated or replayed `card.created` never opens a second account.

use events::payloads::card as card_ev;
use events::payloads::merchant as merchant_ev;
use events::{Envelope, EventHandler, HandlerError};
use sqlx::PgConnection;

use crate::ledger::Ledger;

/// Handler of `payments.card.events` and `payments.merchant.events`.
#[derive(Clone, Copy, Debug, Default)]
pub struct CardEvents;

impl EventHandler for CardEvents {
    async fn handle(&self, conn: &mut PgConnection, event: &Envelope) -> Result<(), HandlerError> {
        match event.event_type.as_str() {
            card_ev::CREATED => {
                let card: card_ev::CardData = event
                    .data_as()
                    .map_err(|e| HandlerError::Permanent(e.into()))?;
                let opened =
                    Ledger::open_card_account(conn, card.card_id, card.user_id, &card.currency)
                        .await?;
                if opened {
                    metrics::counter!("ledger_accounts_opened_total").increment(1);
                    tracing::info!(card_id = %card.card_id, "card account opened");
                }
            }
            card_ev::DELETED => {
                let card: card_ev::CardData = event
                    .data_as()
                    .map_err(|e| HandlerError::Permanent(e.into()))?;
                match Ledger::close_card_account(conn, card.card_id).await? {
                    Some(0) | None => {}
                    Some(balance) => tracing::error!(card_id = %card.card_id, balance,
                        "deleted card's account closed while holding money; it stays on the books"),
                }
            }
            merchant_ev::STATUS_CHANGED => {
                let merchant: merchant_ev::MerchantData = event
                    .data_as()
                    .map_err(|e| HandlerError::Permanent(e.into()))?;
                if merchant.status == "active" {
                    let opened = Ledger::open_merchant_account(
                        conn,
                        merchant.merchant_id,
                        merchant.user_id,
                        &merchant.currency,
                    )
                    .await?;
                    if opened {
                        metrics::counter!("ledger_accounts_opened_total").increment(1);
                        tracing::info!(merchant_id = %merchant.merchant_id, "merchant account opened");
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}
