//! `/api/v1/users/*`: user administration (and a user's own account).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use proto::user::v1 as pb;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ListQuery;
use super::views::{BulkView, UserPage, UserView};
use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, Caller};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserBody {
    pub email: String,
    pub password: String,
    pub first_name: String,
    pub last_name: String,
    /// Create the account with its email already verified.
    #[serde(default)]
    pub email_verified: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserBody {
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// A new password ends every session of the user.
    pub password: Option<String>,
    /// Your current password: required to change your own email or password.
    pub current_password: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/users", tag = "users", params(ListQuery),
    responses((status = 200, body = UserPage), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<UserPage>, ApiError> {
    let request = state.request(
        pb::ListUsersRequest {
            page: Some(query.page()),
            search: query.search.clone().unwrap_or_default(),
            lifecycle: query.status.unwrap_or_default().to_proto(),
        },
        Some(&caller),
    );
    let reply = state.users.clone().list_users(request).await?.into_inner();
    Ok(Json(UserPage {
        items: reply.users.into_iter().map(UserView::from).collect(),
        page: reply.page_info.into(),
    }))
}

#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = CreateUserBody,
    responses((status = 201, body = UserView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateUserBody>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    let request = state.request(
        pb::CreateUserRequest {
            email: body.email,
            password: body.password,
            first_name: body.first_name,
            last_name: body.last_name,
            email_verified: body.email_verified,
        },
        Some(&caller),
    );
    Ok((
        StatusCode::CREATED,
        Json(
            state
                .users
                .clone()
                .create_user(request)
                .await?
                .into_inner()
                .into(),
        ),
    ))
}

#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", params(("id" = String, Path)),
    responses((status = 200, body = UserView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<UserView>, ApiError> {
    let request = state.request(pb::GetUserRequest { id }, Some(&caller));
    Ok(Json(
        state
            .users
            .clone()
            .get_user(request)
            .await?
            .into_inner()
            .into(),
    ))
}

#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", params(("id" = String, Path)), request_body = UpdateUserBody,
    responses((status = 200, body = UserView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateUserBody>,
) -> Result<Json<UserView>, ApiError> {
    let request = state.request(
        pb::UpdateUserRequest {
            id,
            email: body.email,
            first_name: body.first_name,
            last_name: body.last_name,
            password: body.password,
            current_password: body.current_password,
        },
        Some(&caller),
    );
    Ok(Json(
        state
            .users
            .clone()
            .update_user(request)
            .await?
            .into_inner()
            .into(),
    ))
}

#[utoipa::path(post, path = "/api/v1/users/{id}/trash", tag = "users", params(("id" = String, Path)),
    responses((status = 200, body = UserView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn trash(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<UserView>, ApiError> {
    let request = state.request(pb::UserIdRequest { id }, Some(&caller));
    Ok(Json(
        state
            .users
            .clone()
            .trash_user(request)
            .await?
            .into_inner()
            .into(),
    ))
}

#[utoipa::path(post, path = "/api/v1/users/{id}/restore", tag = "users", params(("id" = String, Path)),
    responses((status = 200, body = UserView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn restore(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<UserView>, ApiError> {
    let request = state.request(pb::UserIdRequest { id }, Some(&caller));
    Ok(Json(
        state
            .users
            .clone()
            .restore_user(request)
            .await?
            .into_inner()
            .into(),
    ))
}

#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "users", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let request = state.request(pb::UserIdRequest { id }, Some(&caller));
    state.users.clone().delete_user_permanently(request).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/users/restore-all", tag = "users",
    responses((status = 200, body = BulkView), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn restore_all(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<BulkView>, ApiError> {
    let request = state.request(pb::RestoreAllUsersRequest {}, Some(&caller));
    Ok(Json(BulkView {
        affected: state
            .users
            .clone()
            .restore_all_users(request)
            .await?
            .into_inner()
            .affected,
    }))
}

#[utoipa::path(delete, path = "/api/v1/users/trash", tag = "users",
    responses((status = 200, body = BulkView), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn delete_all_trashed(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<BulkView>, ApiError> {
    let request = state.request(pb::DeleteAllTrashedUsersRequest {}, Some(&caller));
    Ok(Json(BulkView {
        affected: state
            .users
            .clone()
            .delete_all_trashed_users(request)
            .await?
            .into_inner()
            .affected,
    }))
}

/// This area's routes, each registered with its OpenAPI operation (its `#[utoipa::path]`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        // /users
        .routes(routes!(list, create))
        // /users/restore-all
        .routes(routes!(restore_all))
        // /users/trash
        .routes(routes!(delete_all_trashed))
        // /users/{id}
        .routes(routes!(get, update, delete))
        // /users/{id}/trash
        .routes(routes!(trash))
        // /users/{id}/restore
        .routes(routes!(restore))
}
