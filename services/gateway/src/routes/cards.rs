//! `/api/v1/cards/*`: cards, their balance and statement.
//!
//! Why one file of ~410 lines: the card resource's routes (lifecycle, balance, statement) with
//! their OpenAPI annotations, which make up about a third of it.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use proto::card::v1 as pb;
use proto::saldo::v1 as saldo_pb;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::money_views::{AccountView, CardPage, CardView, CreatedCardView, StatementView};
use super::views::BulkView;
use super::{Lifecycle, page_request};
use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, Caller, timestamp_param};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCardBody {
    /// visa, mastercard, discover, jcb or unionpay.
    pub brand: String,
    /// debit or credit.
    pub card_type: String,
    /// ISO 4217, e.g. IDR.
    pub currency: String,
    /// 1-10 (default 5).
    pub valid_years: Option<u32>,
    /// The owner (admins only; default: you).
    pub user_id: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateCardBody {
    /// debit or credit.
    pub card_type: Option<String>,
    /// Renewal: month and year together.
    pub expiry_month: Option<u32>,
    pub expiry_year: Option<u32>,
}

/// Query of the card list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CardListQuery {
    pub page: Option<u32>,
    pub page_size: Option<u32>,
    /// Last four digits, brand or currency.
    pub search: Option<String>,
    /// `active` (default), `trashed` or `all`.
    #[param(value_type = Option<String>)]
    pub status: Option<Lifecycle>,
    /// Admins: a user's cards, or `all`; default: your own.
    pub user_id: Option<String>,
}

/// Query of a statement.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatementQuery {
    pub page: Option<u32>,
    pub page_size: Option<u32>,
    /// RFC 3339, inclusive.
    pub from: Option<String>,
    /// RFC 3339, exclusive.
    pub to: Option<String>,
}

fn card_type(field: &str, value: &str) -> Result<i32, ApiError> {
    match value {
        "debit" => Ok(pb::CardType::Debit as i32),
        "credit" => Ok(pb::CardType::Credit as i32),
        _ => Err(ApiError::invalid_field(field, "must be debit or credit")),
    }
}

#[utoipa::path(post, path = "/api/v1/cards", tag = "cards", request_body = CreateCardBody,
    responses((status = 201, body = CreatedCardView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateCardBody>,
) -> Result<(StatusCode, Json<CreatedCardView>), ApiError> {
    let request = state.request(
        pb::CreateCardRequest {
            user_id: body.user_id.unwrap_or_default(),
            brand: body.brand,
            card_type: card_type("card_type", &body.card_type)?,
            currency: body.currency,
            valid_years: body.valid_years.unwrap_or(5),
        },
        Some(&caller),
    );
    let created = state.cards.clone().create_card(request).await?.into_inner();
    let card = created
        .card
        .ok_or_else(|| ApiError::from(tonic::Status::internal("card service sent no card")))?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedCardView {
            card: card.into(),
            cvv: created.cvv,
        }),
    ))
}

#[utoipa::path(get, path = "/api/v1/cards", tag = "cards", params(CardListQuery),
    responses((status = 200, body = CardPage), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<CardListQuery>,
) -> Result<Json<CardPage>, ApiError> {
    let user_id = match query.user_id.as_deref() {
        Some("all") => "*".to_owned(),
        Some(id) => id.to_owned(),
        None => String::new(),
    };
    let request = state.request(
        pb::ListCardsRequest {
            page: Some(page_request(query.page, query.page_size)),
            search: query.search.unwrap_or_default(),
            lifecycle: query.status.unwrap_or_default().to_proto(),
            user_id,
        },
        Some(&caller),
    );
    let reply = state.cards.clone().list_cards(request).await?.into_inner();
    Ok(Json(CardPage {
        items: reply.cards.into_iter().map(CardView::from).collect(),
        page: reply.page_info.into(),
    }))
}

#[utoipa::path(get, path = "/api/v1/cards/{id}", tag = "cards", params(("id" = String, Path)),
    responses((status = 200, body = CardView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<CardView>, ApiError> {
    let request = state.request(pb::CardIdRequest { id }, Some(&caller));
    Ok(Json(
        state
            .cards
            .clone()
            .get_card(request)
            .await?
            .into_inner()
            .into(),
    ))
}

/// A card's CVV, as its owner sees it.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct CvvView {
    pub card_id: String,
    /// Derived on demand from the issuer's key; never stored.
    pub cvv: String,
}

#[utoipa::path(get, path = "/api/v1/cards/{id}/cvv", tag = "cards", params(("id" = String, Path)),
    responses((status = 200, body = CvvView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn cvv(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<CvvView>, ApiError> {
    let request = state.request(pb::CardIdRequest { id }, Some(&caller));
    let reply = state
        .cards
        .clone()
        .get_card_cvv(request)
        .await?
        .into_inner();
    Ok(Json(CvvView {
        card_id: reply.card_id,
        cvv: reply.cvv,
    }))
}

/// A card number to look a card up by. It travels in the body, never in a URL: URLs end up
/// in access logs, browser histories and `Referer` headers.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CardLookupBody {
    /// The 16-digit card number.
    pub number: String,
}

#[utoipa::path(post, path = "/api/v1/cards/lookup", tag = "cards", request_body = CardLookupBody,
    responses((status = 200, body = CardView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn by_number(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CardLookupBody>,
) -> Result<Json<CardView>, ApiError> {
    let request = state.request(
        pb::CardNumberRequest {
            number: body.number,
        },
        Some(&caller),
    );
    Ok(Json(
        state
            .cards
            .clone()
            .get_card_by_number(request)
            .await?
            .into_inner()
            .into(),
    ))
}

#[utoipa::path(patch, path = "/api/v1/cards/{id}", tag = "cards", params(("id" = String, Path)), request_body = UpdateCardBody,
    responses((status = 200, body = CardView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateCardBody>,
) -> Result<Json<CardView>, ApiError> {
    let card_type = body
        .card_type
        .as_deref()
        .map(|t| card_type("card_type", t))
        .transpose()?;
    let request = state.request(
        pb::UpdateCardRequest {
            id,
            card_type,
            expiry_month: body.expiry_month,
            expiry_year: body.expiry_year,
        },
        Some(&caller),
    );
    Ok(Json(
        state
            .cards
            .clone()
            .update_card(request)
            .await?
            .into_inner()
            .into(),
    ))
}

#[utoipa::path(post, path = "/api/v1/cards/{id}/trash", tag = "cards", params(("id" = String, Path)),
    responses((status = 200, body = CardView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn trash(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<CardView>, ApiError> {
    let request = state.request(pb::CardIdRequest { id }, Some(&caller));
    Ok(Json(
        state
            .cards
            .clone()
            .trash_card(request)
            .await?
            .into_inner()
            .into(),
    ))
}

#[utoipa::path(post, path = "/api/v1/cards/{id}/restore", tag = "cards", params(("id" = String, Path)),
    responses((status = 200, body = CardView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn restore(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<CardView>, ApiError> {
    let request = state.request(pb::CardIdRequest { id }, Some(&caller));
    Ok(Json(
        state
            .cards
            .clone()
            .restore_card(request)
            .await?
            .into_inner()
            .into(),
    ))
}

#[utoipa::path(delete, path = "/api/v1/cards/{id}", tag = "cards", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let request = state.request(pb::CardIdRequest { id }, Some(&caller));
    state.cards.clone().delete_card_permanently(request).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/cards/restore-all", tag = "cards",
    responses((status = 200, body = BulkView), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn restore_all(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<BulkView>, ApiError> {
    let request = state.request(pb::RestoreAllCardsRequest {}, Some(&caller));
    let reply = state
        .cards
        .clone()
        .restore_all_cards(request)
        .await?
        .into_inner();
    Ok(Json(BulkView {
        affected: reply.affected,
    }))
}

#[utoipa::path(delete, path = "/api/v1/cards/trash", tag = "cards",
    responses((status = 200, body = BulkView), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn delete_all_trashed(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<BulkView>, ApiError> {
    let request = state.request(pb::DeleteAllTrashedCardsRequest {}, Some(&caller));
    let reply = state
        .cards
        .clone()
        .delete_all_trashed_cards(request)
        .await?
        .into_inner();
    Ok(Json(BulkView {
        affected: reply.affected,
    }))
}

#[utoipa::path(get, path = "/api/v1/cards/{id}/balance", tag = "cards", params(("id" = String, Path)),
    responses((status = 200, body = AccountView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn balance(
    State(state): State<AppState>,
    caller: Caller,
    Path(card_id): Path<String>,
) -> Result<Json<AccountView>, ApiError> {
    let request = state.request(saldo_pb::CardAccountRequest { card_id }, Some(&caller));
    Ok(Json(
        state
            .saldo
            .clone()
            .get_card_account(request)
            .await?
            .into_inner()
            .into(),
    ))
}

#[utoipa::path(get, path = "/api/v1/cards/{id}/statement", tag = "cards", params(("id" = String, Path), StatementQuery),
    responses((status = 200, body = StatementView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn statement(
    State(state): State<AppState>,
    caller: Caller,
    Path(card_id): Path<String>,
    ApiQuery(query): ApiQuery<StatementQuery>,
) -> Result<Json<StatementView>, ApiError> {
    let request = state.request(
        saldo_pb::StatementRequest {
            card_id,
            page: Some(page_request(query.page, query.page_size)),
            from: timestamp_param("from", query.from.as_deref())?,
            to: timestamp_param("to", query.to.as_deref())?,
            merchant_id: String::new(),
        },
        Some(&caller),
    );
    Ok(Json(
        state
            .saldo
            .clone()
            .get_statement(request)
            .await?
            .into_inner()
            .into(),
    ))
}

/// This area's routes, each registered with its OpenAPI operation (its `#[utoipa::path]`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        // /cards
        .routes(routes!(list, create))
        // /cards/restore-all
        .routes(routes!(restore_all))
        // /cards/trash
        .routes(routes!(delete_all_trashed))
        // /cards/lookup
        .routes(routes!(by_number))
        // /cards/{id}
        .routes(routes!(get, update, delete))
        // /cards/{id}/cvv
        .routes(routes!(cvv))
        // /cards/{id}/trash
        .routes(routes!(trash))
        // /cards/{id}/restore
        .routes(routes!(restore))
        // /cards/{id}/balance
        .routes(routes!(balance))
        // /cards/{id}/statement
        .routes(routes!(statement))
}
