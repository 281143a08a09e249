//! The gRPC layer of the card service.

use platform::pagination::{LifecycleFilter, Page};
use proto::card::v1 as pb;
use proto::common::v1::BulkResult;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::error::CardError;
use crate::number;
use crate::service::{CardChange, CardRow, Cards, NewCard, Owner};

/// Implements `CardService`.
#[derive(Clone)]
pub struct Handlers {
    cards: Cards,
}

impl Handlers {
    pub fn new(cards: Cards) -> Self {
        Self { cards }
    }

    async fn caller<T>(&self, request: &Request<T>) -> Result<platform::auth::Principal, Status> {
        Ok(self.cards.authenticator().require(request).await?)
    }
}

fn card_type_name(value: i32) -> String {
    match pb::CardType::try_from(value) {
        Ok(pb::CardType::Debit) => "debit".to_owned(),
        Ok(pb::CardType::Credit) => "credit".to_owned(),
        _ => String::new(),
    }
}

/// The proto form; `full` keeps the number (single lookups by owner or admin).
pub fn card_to_proto(card: CardRow, full: bool) -> pb::Card {
    let usable = card.usable();
    pb::Card {
        id: card.id.to_string(),
        user_id: card.user_id.to_string(),
        masked_number: number::mask(&card.number),
        number: if full { card.number } else { String::new() },
        brand: card.brand,
        card_type: match card.card_type.as_str() {
            "debit" => pb::CardType::Debit,
            _ => pb::CardType::Credit,
        } as i32,
        expiry_month: u32::try_from(card.expiry_month).unwrap_or(0),
        expiry_year: u32::try_from(card.expiry_year).unwrap_or(0),
        currency: card.currency,
        usable,
        created_at: Some(platform::time::to_proto(card.created_at)),
        updated_at: Some(platform::time::to_proto(card.updated_at)),
        deleted_at: platform::time::to_proto_opt(card.deleted_at),
    }
}

fn parse_uuid(field: &str, raw: &str) -> Result<Uuid, CardError> {
    Ok(platform::parse_uuid(field, raw)?)
}

#[tonic::async_trait]
impl pb::card_service_server::CardService for Handlers {
    async fn create_card(
        &self,
        request: Request<pb::CreateCardRequest>,
    ) -> Result<Response<pb::CreatedCard>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let user_id = if r.user_id.is_empty() {
            None
        } else {
            Some(parse_uuid("user_id", &r.user_id)?)
        };
        let input = NewCard {
            user_id,
            brand: r.brand.trim().to_lowercase(),
            card_type: card_type_name(r.card_type),
            currency: r.currency.trim().to_owned(),
            valid_years: if r.valid_years == 0 { 5 } else { r.valid_years },
        };
        let (card, cvv) = self.cards.create(&caller, input).await?;
        Ok(Response::new(pb::CreatedCard {
            card: Some(card_to_proto(card, true)),
            cvv,
        }))
    }

    async fn update_card(
        &self,
        request: Request<pb::UpdateCardRequest>,
    ) -> Result<Response<pb::Card>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let id = parse_uuid("id", &r.id)?;
        let card_type = match r.card_type {
            None => None,
            Some(t) => match card_type_name(t) {
                name if name.is_empty() => {
                    return Err(CardError::from(platform::FieldViolation::new(
                        "card_type",
                        "must be debit or credit",
                    ))
                    .into());
                }
                name => Some(name),
            },
        };
        let expiry = match (r.expiry_month, r.expiry_year) {
            (None, None) => None,
            (Some(m), Some(y)) => Some((m, i32::try_from(y).unwrap_or(i32::MAX))),
            _ => {
                return Err(CardError::from(platform::FieldViolation::new(
                    "expiry_year",
                    "expiry_month and expiry_year go together",
                ))
                .into());
            }
        };
        let card = self
            .cards
            .update(&caller, id, CardChange { card_type, expiry })
            .await?;
        Ok(Response::new(card_to_proto(card, true)))
    }

    async fn get_card(
        &self,
        request: Request<pb::CardIdRequest>,
    ) -> Result<Response<pb::Card>, Status> {
        let caller = self.caller(&request).await?;
        let id = parse_uuid("id", &request.get_ref().id)?;
        Ok(Response::new(card_to_proto(
            self.cards.get(&caller, id).await?,
            true,
        )))
    }

    async fn get_card_cvv(
        &self,
        request: Request<pb::CardIdRequest>,
    ) -> Result<Response<pb::CardCvv>, Status> {
        let caller = self.caller(&request).await?;
        let id = parse_uuid("id", &request.get_ref().id)?;
        let cvv = self.cards.cvv(&caller, id).await?;
        Ok(Response::new(pb::CardCvv {
            card_id: id.to_string(),
            cvv,
        }))
    }

    async fn get_card_by_number(
        &self,
        request: Request<pb::CardNumberRequest>,
    ) -> Result<Response<pb::Card>, Status> {
        let caller = self.caller(&request).await?;
        let card = self
            .cards
            .get_by_number(&caller, request.get_ref().number.trim())
            .await?;
        Ok(Response::new(card_to_proto(card, true)))
    }

    async fn verify_cvv(
        &self,
        request: Request<pb::VerifyCvvRequest>,
    ) -> Result<Response<pb::Card>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.get_ref();
        let api_key = match r.api_key_id.trim() {
            "" => None,
            id => Some(id.parse().map_err(|_| {
                CardError::from(platform::FieldViolation::new(
                    "api_key_id",
                    "must be a UUID",
                ))
            })?),
        };
        let card = self
            .cards
            .verify_cvv(&caller, r.number.trim(), r.cvv.trim(), api_key)
            .await?;
        Ok(Response::new(card_to_proto(card, false)))
    }

    async fn list_cards(
        &self,
        request: Request<pb::ListCardsRequest>,
    ) -> Result<Response<pb::ListCardsResponse>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let page = Page::from_proto(r.page.as_ref()).map_err(CardError::from)?;
        let owner = match r.user_id.as_str() {
            "" => Owner::Caller,
            "*" => Owner::Everyone,
            raw => Owner::User(parse_uuid("user_id", raw)?),
        };
        let (cards, total) = self
            .cards
            .list(
                &caller,
                owner,
                &r.search,
                LifecycleFilter::from_proto(r.lifecycle),
                page,
            )
            .await?;
        Ok(Response::new(pb::ListCardsResponse {
            cards: cards.into_iter().map(|c| card_to_proto(c, false)).collect(),
            page_info: Some(page.info(total)),
        }))
    }

    async fn trash_card(
        &self,
        request: Request<pb::CardIdRequest>,
    ) -> Result<Response<pb::Card>, Status> {
        let caller = self.caller(&request).await?;
        let id = parse_uuid("id", &request.get_ref().id)?;
        Ok(Response::new(card_to_proto(
            self.cards.set_trashed(&caller, id, true).await?,
            true,
        )))
    }

    async fn restore_card(
        &self,
        request: Request<pb::CardIdRequest>,
    ) -> Result<Response<pb::Card>, Status> {
        let caller = self.caller(&request).await?;
        let id = parse_uuid("id", &request.get_ref().id)?;
        Ok(Response::new(card_to_proto(
            self.cards.set_trashed(&caller, id, false).await?,
            true,
        )))
    }

    async fn delete_card_permanently(
        &self,
        request: Request<pb::CardIdRequest>,
    ) -> Result<Response<pb::DeleteCardResponse>, Status> {
        let caller = self.caller(&request).await?;
        let id = parse_uuid("id", &request.get_ref().id)?;
        self.cards.delete(&caller, id).await?;
        Ok(Response::new(pb::DeleteCardResponse {}))
    }

    async fn restore_all_cards(
        &self,
        request: Request<pb::RestoreAllCardsRequest>,
    ) -> Result<Response<BulkResult>, Status> {
        let caller = self.caller(&request).await?;
        let affected = self.cards.restore_all(&caller).await?;
        Ok(Response::new(BulkResult { affected }))
    }

    async fn delete_all_trashed_cards(
        &self,
        request: Request<pb::DeleteAllTrashedCardsRequest>,
    ) -> Result<Response<BulkResult>, Status> {
        let caller = self.caller(&request).await?;
        let affected = self.cards.delete_all_trashed(&caller).await?;
        Ok(Response::new(BulkResult { affected }))
    }
}
