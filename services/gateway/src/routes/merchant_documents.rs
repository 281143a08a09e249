//! `/api/v1/merchants/{id}/documents` and `/api/v1/merchant-documents/*`: the documents a
//! merchant submits for review, their review, trash and restore.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use proto::merchant::v1 as pb;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::merchant_views::{DocumentPage, DocumentView};
use super::views::{BulkView, PageView};
use super::{Lifecycle, page_request};
use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, Caller};

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
