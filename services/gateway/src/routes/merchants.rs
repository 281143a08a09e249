//! `/api/v1/merchants/*` and `/api/v1/merchant-documents/*`: applications and their review,
//! API keys, documents, and a merchant's settlement account.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use proto::merchant::v1 as pb;
use proto::saldo::v1 as saldo_pb;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::cards::StatementQuery;
use super::merchant_views::{
    ApiKeyList, ApiKeyView, CreatedApiKeyView, DocumentPage, DocumentView, MerchantPage,
    MerchantView,
};
use super::money_views::{AccountView, StatementView};
use super::views::{BulkView, PageView};
use super::{Lifecycle, page_request};
use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, Caller, OptionalApiJson, timestamp_param};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyBody {
    /// 2-100 characters, unique among your merchants.
    pub name: String,
    pub description: Option<String>,
    /// http(s) URL.
    pub website: Option<String>,
    /// Settlement currency (ISO 4217); payments must be in it.
    pub currency: String,
    /// Admins: apply on behalf of this user.
    pub user_id: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMerchantBody {
    pub name: Option<String>,
    pub description: Option<String>,
    pub website: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusBody {
    /// `active` (approve or reactivate), `rejected` or `inactive` (deactivate).
    pub status: String,
    /// Required for `rejected` and `inactive`; sent to the owner.
    pub reason: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateBody {
    /// How long the old key keeps working (default 86400, at most 604800; 0 = now).
    pub overlap_seconds: Option<u32>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DocumentBody {
    /// business_license, tax_id, identity, bank_statement or other.
    pub document_type: String,
    /// https URL of the uploaded file.
    pub document_url: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateDocumentBody {
    pub document_type: Option<String>,
    pub document_url: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewBody {
    /// `approved` or `rejected`.
    pub status: String,
    /// Required when rejecting; sent to the owner.
    pub note: Option<String>,
}

/// Query of the merchant list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MerchantQuery {
    pub page: Option<u32>,
    pub page_size: Option<u32>,
    /// Case-insensitive part of the name.
    pub search: Option<String>,
    /// `pending`, `active`, `rejected` or `inactive`.
    pub status: Option<String>,
    /// `active` (default), `trashed` or `all`.
    #[param(value_type = Option<String>)]
    pub lifecycle: Option<Lifecycle>,
    /// Admins: one user's merchants (default: everyone's); others: only their own.
    pub user_id: Option<String>,
}

/// Query of document lists.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DocumentQuery {
    pub page: Option<u32>,
    pub page_size: Option<u32>,
    /// `pending`, `approved` or `rejected`.
    pub status: Option<String>,
    /// `active` (default), `trashed` or `all`.
    #[param(value_type = Option<String>)]
    pub lifecycle: Option<Lifecycle>,
}

fn merchant_status(field: &str, value: Option<&str>, any: bool) -> Result<i32, ApiError> {
    use pb::MerchantStatus;
    Ok(match value {
        None if any => MerchantStatus::Unspecified,
        Some("pending") if any => MerchantStatus::Pending,
        Some("active") => MerchantStatus::Active,
        Some("rejected") => MerchantStatus::Rejected,
        Some("inactive") => MerchantStatus::Inactive,
        _ if any => {
            return Err(ApiError::invalid_field(
                field,
                "must be pending, active, rejected or inactive",
            ));
        }
        _ => {
            return Err(ApiError::invalid_field(
                field,
                "must be active (approve or reactivate), rejected or inactive (deactivate)",
            ));
        }
    } as i32)
}

fn document_status(field: &str, value: Option<&str>, any: bool) -> Result<i32, ApiError> {
    use pb::DocumentStatus;
    Ok(match value {
        None if any => DocumentStatus::Unspecified,
        Some("pending") if any => DocumentStatus::Pending,
        Some("approved") => DocumentStatus::Approved,
        Some("rejected") => DocumentStatus::Rejected,
        _ => {
            return Err(ApiError::invalid_field(
                field,
                if any {
                    "must be pending, approved or rejected"
                } else {
                    "must be approved or rejected"
                },
            ));
        }
    } as i32)
}

#[utoipa::path(post, path = "/api/v1/merchants", tag = "merchants", request_body = ApplyBody,
    responses((status = 201, body = MerchantView), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn apply(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<ApplyBody>,
) -> Result<(StatusCode, Json<MerchantView>), ApiError> {
    let request = state.request(
        pb::ApplyMerchantRequest {
            user_id: body.user_id.unwrap_or_default(),
            name: body.name,
            description: body.description.unwrap_or_default(),
            website: body.website.unwrap_or_default(),
            currency: body.currency,
        },
        Some(&caller),
    );
    let merchant = state.merchants.clone().apply_merchant(request).await?;
    Ok((StatusCode::CREATED, Json(merchant.into_inner().into())))
}

#[utoipa::path(get, path = "/api/v1/merchants", tag = "merchants", params(MerchantQuery),
    responses((status = 200, body = MerchantPage), (status = 400, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<MerchantQuery>,
) -> Result<Json<MerchantPage>, ApiError> {
    let request = state.request(
        pb::ListMerchantsRequest {
            page: Some(page_request(query.page, query.page_size)),
            status: merchant_status("status", query.status.as_deref(), true)?,
            user_id: query.user_id.unwrap_or_default(),
            search: query.search.unwrap_or_default(),
            lifecycle: query.lifecycle.unwrap_or_default().to_proto(),
        },
        Some(&caller),
    );
    let reply = state
        .merchants
        .clone()
        .list_merchants(request)
        .await?
        .into_inner();
    Ok(Json(MerchantPage {
        items: reply.merchants.into_iter().map(Into::into).collect(),
        page: reply.page_info.into(),
    }))
}

macro_rules! merchant_by_id {
    ($name:ident, $method:ident, $path:literal, $verb:ident) => {
        #[utoipa::path($verb, path = $path, tag = "merchants", params(("id" = String, Path)),
            responses((status = 200, body = MerchantView), (status = 404, body = ErrorBody)),
            security(("bearer" = [])))]
        pub async fn $name(
            State(state): State<AppState>,
            caller: Caller,
            Path(id): Path<String>,
        ) -> Result<Json<MerchantView>, ApiError> {
            let request = state.request(pb::MerchantIdRequest { id }, Some(&caller));
            Ok(Json(
                state
                    .merchants
                    .clone()
                    .$method(request)
                    .await?
                    .into_inner()
                    .into(),
            ))
        }
    };
}

merchant_by_id!(get, get_merchant, "/api/v1/merchants/{id}", get);
merchant_by_id!(trash, trash_merchant, "/api/v1/merchants/{id}/trash", post);
merchant_by_id!(
    restore,
    restore_merchant,
    "/api/v1/merchants/{id}/restore",
    post
);

#[utoipa::path(patch, path = "/api/v1/merchants/{id}", tag = "merchants", params(("id" = String, Path)),
    request_body = UpdateMerchantBody,
    responses((status = 200, body = MerchantView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateMerchantBody>,
) -> Result<Json<MerchantView>, ApiError> {
    let request = state.request(
        pb::UpdateMerchantRequest {
            id,
            name: body.name,
            description: body.description,
            website: body.website,
        },
        Some(&caller),
    );
    Ok(Json(
        state
            .merchants
            .clone()
            .update_merchant(request)
            .await?
            .into_inner()
            .into(),
    ))
}

#[utoipa::path(post, path = "/api/v1/merchants/{id}/status", tag = "merchants", params(("id" = String, Path)),
    request_body = StatusBody,
    responses((status = 200, body = MerchantView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub async fn set_status(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<StatusBody>,
) -> Result<Json<MerchantView>, ApiError> {
    let request = state.request(
        pb::UpdateMerchantStatusRequest {
            id,
            status: merchant_status("status", Some(&body.status), false)?,
            reason: body.reason.unwrap_or_default(),
        },
        Some(&caller),
    );
    Ok(Json(
        state
            .merchants
            .clone()
            .update_merchant_status(request)
            .await?
            .into_inner()
            .into(),
    ))
}

#[utoipa::path(delete, path = "/api/v1/merchants/{id}", tag = "merchants", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let request = state.request(pb::MerchantIdRequest { id }, Some(&caller));
    state
        .merchants
        .clone()
        .delete_merchant_permanently(request)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/merchants/restore-all", tag = "merchants",
    responses((status = 200, body = BulkView), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn restore_all(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<BulkView>, ApiError> {
    let request = state.request(pb::BulkRequest {}, Some(&caller));
    let reply = state
        .merchants
        .clone()
        .restore_all_merchants(request)
        .await?
        .into_inner();
    Ok(Json(BulkView {
        affected: reply.affected,
    }))
}

#[utoipa::path(delete, path = "/api/v1/merchants/trash", tag = "merchants",
    responses((status = 200, body = BulkView), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn delete_all_trashed(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<BulkView>, ApiError> {
    let request = state.request(pb::BulkRequest {}, Some(&caller));
    let reply = state
        .merchants
        .clone()
        .delete_all_trashed_merchants(request)
        .await?
        .into_inner();
    Ok(Json(BulkView {
        affected: reply.affected,
    }))
}

#[utoipa::path(get, path = "/api/v1/merchants/{id}/balance", tag = "merchants", params(("id" = String, Path)),
    responses((status = 200, body = AccountView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn balance(
    State(state): State<AppState>,
    caller: Caller,
    Path(merchant_id): Path<String>,
) -> Result<Json<AccountView>, ApiError> {
    let request = state.request(
        saldo_pb::MerchantAccountRequest { merchant_id },
        Some(&caller),
    );
    Ok(Json(
        state
            .saldo
            .clone()
            .get_merchant_account(request)
            .await?
            .into_inner()
            .into(),
    ))
}

#[utoipa::path(get, path = "/api/v1/merchants/{id}/statement", tag = "merchants",
    params(("id" = String, Path), StatementQuery),
    responses((status = 200, body = StatementView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn statement(
    State(state): State<AppState>,
    caller: Caller,
    Path(merchant_id): Path<String>,
    ApiQuery(query): ApiQuery<StatementQuery>,
) -> Result<Json<StatementView>, ApiError> {
    let request = state.request(
        saldo_pb::StatementRequest {
            card_id: String::new(),
            merchant_id,
            page: Some(page_request(query.page, query.page_size)),
            from: timestamp_param("from", query.from.as_deref())?,
            to: timestamp_param("to", query.to.as_deref())?,
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

#[utoipa::path(post, path = "/api/v1/merchants/{id}/api-keys", tag = "merchants", params(("id" = String, Path)),
    responses((status = 201, body = CreatedApiKeyView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn create_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(merchant_id): Path<String>,
) -> Result<(StatusCode, Json<CreatedApiKeyView>), ApiError> {
    let request = state.request(pb::CreateApiKeyRequest { merchant_id }, Some(&caller));
    let created = state.merchants.clone().create_api_key(request).await?;
    Ok((StatusCode::CREATED, Json(created.into_inner().into())))
}

#[utoipa::path(get, path = "/api/v1/merchants/{id}/api-keys", tag = "merchants", params(("id" = String, Path)),
    responses((status = 200, body = ApiKeyList), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list_keys(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ApiKeyList>, ApiError> {
    let request = state.request(pb::MerchantIdRequest { id }, Some(&caller));
    let reply = state
        .merchants
        .clone()
        .list_api_keys(request)
        .await?
        .into_inner();
    Ok(Json(ApiKeyList {
        items: reply.keys.into_iter().map(Into::into).collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/merchants/{id}/api-keys/{key_id}/rotate", tag = "merchants",
    params(("id" = String, Path), ("key_id" = String, Path)), request_body = RotateBody,
    responses((status = 201, body = CreatedApiKeyView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn rotate_key(
    State(state): State<AppState>,
    caller: Caller,
    Path((merchant_id, key_id)): Path<(String, String)>,
    OptionalApiJson(body): OptionalApiJson<RotateBody>,
) -> Result<(StatusCode, Json<CreatedApiKeyView>), ApiError> {
    let request = state.request(
        pb::RotateApiKeyRequest {
            merchant_id,
            key_id,
            overlap_seconds: body.overlap_seconds,
        },
        Some(&caller),
    );
    let created = state.merchants.clone().rotate_api_key(request).await?;
    Ok((StatusCode::CREATED, Json(created.into_inner().into())))
}

#[utoipa::path(delete, path = "/api/v1/merchants/{id}/api-keys/{key_id}", tag = "merchants",
    params(("id" = String, Path), ("key_id" = String, Path)),
    responses((status = 200, body = ApiKeyView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn revoke_key(
    State(state): State<AppState>,
    caller: Caller,
    Path((merchant_id, key_id)): Path<(String, String)>,
) -> Result<Json<ApiKeyView>, ApiError> {
    let request = state.request(
        pb::ApiKeyIdRequest {
            merchant_id,
            key_id,
        },
        Some(&caller),
    );
    Ok(Json(
        state
            .merchants
            .clone()
            .revoke_api_key(request)
            .await?
            .into_inner()
            .into(),
    ))
}

#[utoipa::path(post, path = "/api/v1/merchants/{id}/documents", tag = "merchant documents",
    params(("id" = String, Path)), request_body = DocumentBody,
    responses((status = 201, body = DocumentView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn submit_document(
    State(state): State<AppState>,
    caller: Caller,
    Path(merchant_id): Path<String>,
    ApiJson(body): ApiJson<DocumentBody>,
) -> Result<(StatusCode, Json<DocumentView>), ApiError> {
    let request = state.request(
        pb::SubmitDocumentRequest {
            merchant_id,
            document_type: body.document_type,
            document_url: body.document_url,
        },
        Some(&caller),
    );
    let doc = state.documents.clone().submit_document(request).await?;
    Ok((StatusCode::CREATED, Json(doc.into_inner().into())))
}

async fn documents_page(
    state: &AppState,
    caller: &Caller,
    merchant_id: String,
    query: DocumentQuery,
) -> Result<Json<DocumentPage>, ApiError> {
    let request = state.request(
        pb::ListDocumentsRequest {
            page: Some(page_request(query.page, query.page_size)),
            merchant_id,
            status: document_status("status", query.status.as_deref(), true)?,
            lifecycle: query.lifecycle.unwrap_or_default().to_proto(),
        },
        Some(caller),
    );
    let reply = state
        .documents
        .clone()
        .list_documents(request)
        .await?
        .into_inner();
    Ok(Json(DocumentPage {
        items: reply.documents.into_iter().map(Into::into).collect(),
        page: PageView::from(reply.page_info),
    }))
}

#[utoipa::path(get, path = "/api/v1/merchants/{id}/documents", tag = "merchant documents",
    params(("id" = String, Path), DocumentQuery),
    responses((status = 200, body = DocumentPage), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn merchant_documents(
    State(state): State<AppState>,
    caller: Caller,
    Path(merchant_id): Path<String>,
    ApiQuery(query): ApiQuery<DocumentQuery>,
) -> Result<Json<DocumentPage>, ApiError> {
    documents_page(&state, &caller, merchant_id, query).await
}

#[utoipa::path(get, path = "/api/v1/merchant-documents", tag = "merchant documents", params(DocumentQuery),
    responses((status = 200, body = DocumentPage)), security(("bearer" = [])))]
pub async fn list_documents(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<DocumentQuery>,
) -> Result<Json<DocumentPage>, ApiError> {
    documents_page(&state, &caller, String::new(), query).await
}

macro_rules! document_by_id {
    ($name:ident, $method:ident, $path:literal, $verb:ident) => {
        #[utoipa::path($verb, path = $path, tag = "merchant documents", params(("id" = String, Path)),
            responses((status = 200, body = DocumentView), (status = 404, body = ErrorBody)),
            security(("bearer" = [])))]
        pub async fn $name(
            State(state): State<AppState>,
            caller: Caller,
            Path(id): Path<String>,
        ) -> Result<Json<DocumentView>, ApiError> {
            let request = state.request(pb::DocumentIdRequest { id }, Some(&caller));
            Ok(Json(
                state
                    .documents
                    .clone()
                    .$method(request)
                    .await?
                    .into_inner()
                    .into(),
            ))
        }
    };
}

document_by_id!(
    get_document,
    get_document,
    "/api/v1/merchant-documents/{id}",
    get
);
document_by_id!(
    trash_document,
    trash_document,
    "/api/v1/merchant-documents/{id}/trash",
    post
);
document_by_id!(
    restore_document,
    restore_document,
    "/api/v1/merchant-documents/{id}/restore",
    post
);

#[utoipa::path(patch, path = "/api/v1/merchant-documents/{id}", tag = "merchant documents",
    params(("id" = String, Path)), request_body = UpdateDocumentBody,
    responses((status = 200, body = DocumentView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update_document(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateDocumentBody>,
) -> Result<Json<DocumentView>, ApiError> {
    let request = state.request(
        pb::UpdateDocumentRequest {
            id,
            document_type: body.document_type,
            document_url: body.document_url,
        },
        Some(&caller),
    );
    Ok(Json(
        state
            .documents
            .clone()
            .update_document(request)
            .await?
            .into_inner()
            .into(),
    ))
}

#[utoipa::path(post, path = "/api/v1/merchant-documents/{id}/review", tag = "merchant documents",
    params(("id" = String, Path)), request_body = ReviewBody,
    responses((status = 200, body = DocumentView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub async fn review_document(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ReviewBody>,
) -> Result<Json<DocumentView>, ApiError> {
    let request = state.request(
        pb::ReviewDocumentRequest {
            id,
            status: document_status("status", Some(&body.status), false)?,
            note: body.note.unwrap_or_default(),
        },
        Some(&caller),
    );
    Ok(Json(
        state
            .documents
            .clone()
            .review_document(request)
            .await?
            .into_inner()
            .into(),
    ))
}

#[utoipa::path(delete, path = "/api/v1/merchant-documents/{id}", tag = "merchant documents",
    params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub async fn delete_document(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let request = state.request(pb::DocumentIdRequest { id }, Some(&caller));
    state
        .documents
        .clone()
        .delete_document_permanently(request)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/merchant-documents/restore-all", tag = "merchant documents",
    responses((status = 200, body = BulkView), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn restore_all_documents(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<BulkView>, ApiError> {
    let request = state.request(pb::BulkRequest {}, Some(&caller));
    let reply = state
        .documents
        .clone()
        .restore_all_documents(request)
        .await?
        .into_inner();
    Ok(Json(BulkView {
        affected: reply.affected,
    }))
}

#[utoipa::path(delete, path = "/api/v1/merchant-documents/trash", tag = "merchant documents",
    responses((status = 200, body = BulkView), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn delete_all_trashed_documents(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<BulkView>, ApiError> {
    let request = state.request(pb::BulkRequest {}, Some(&caller));
    let reply = state
        .documents
        .clone()
        .delete_all_trashed_documents(request)
        .await?
        .into_inner();
    Ok(Json(BulkView {
        affected: reply.affected,
    }))
}

/// This area's routes, each registered with its OpenAPI operation (its `#[utoipa::path]`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        // /merchants
        .routes(routes!(list, apply))
        // /merchants/restore-all
        .routes(routes!(restore_all))
        // /merchants/trash
        .routes(routes!(delete_all_trashed))
        // /merchants/{id}
        .routes(routes!(get, update, delete))
        // /merchants/{id}/status
        .routes(routes!(set_status))
        // /merchants/{id}/trash
        .routes(routes!(trash))
        // /merchants/{id}/restore
        .routes(routes!(restore))
        // /merchants/{id}/balance
        .routes(routes!(balance))
        // /merchants/{id}/statement
        .routes(routes!(statement))
        // /merchants/{id}/api-keys
        .routes(routes!(list_keys, create_key))
        // /merchants/{id}/api-keys/{key_id}
        .routes(routes!(revoke_key))
        // /merchants/{id}/api-keys/{key_id}/rotate
        .routes(routes!(rotate_key))
        // /merchants/{id}/documents
        .routes(routes!(merchant_documents, submit_document))
        // /merchant-documents
        .routes(routes!(list_documents))
        // /merchant-documents/restore-all
        .routes(routes!(restore_all_documents))
        // /merchant-documents/trash
        .routes(routes!(delete_all_trashed_documents))
        // /merchant-documents/{id}
        .routes(routes!(get_document, update_document, delete_document))
        // /merchant-documents/{id}/review
        .routes(routes!(review_document))
        // /merchant-documents/{id}/trash
        .routes(routes!(trash_document))
        // /merchant-documents/{id}/restore
        .routes(routes!(restore_document))
}
