//! `/api/v1/roles/*`, `/api/v1/permissions` and `/api/v1/users/{id}/roles`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use proto::role::v1 as pb;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ListQuery;
use super::views::{BulkView, PermissionView, RolePage, RoleView, UserRolesView};
use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, Caller};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRoleBody {
    /// Lower case: a letter, then letters, digits, `_` or `-` (2-50).
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Permission names from `GET /api/v1/permissions`.
    #[serde(default)]
    pub permissions: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRoleBody {
    pub name: Option<String>,
    pub description: Option<String>,
    /// Replaces the role's permissions when given.
    pub permissions: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignRoleBody {
    /// Role id or name.
    pub role: String,
}

#[utoipa::path(get, path = "/api/v1/roles", tag = "roles", params(ListQuery),
    responses((status = 200, body = RolePage), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<RolePage>, ApiError> {
    let request = state.request(
        pb::ListRolesRequest {
            page: Some(query.page()),
            search: query.search.clone().unwrap_or_default(),
            lifecycle: query.status.unwrap_or_default().to_proto(),
        },
        Some(&caller),
    );
    let reply = state.roles.clone().list_roles(request).await?.into_inner();
    Ok(Json(RolePage {
        items: reply.roles.into_iter().map(RoleView::from).collect(),
        page: reply.page_info.into(),
    }))
}

#[utoipa::path(post, path = "/api/v1/roles", tag = "roles", request_body = CreateRoleBody,
    responses((status = 201, body = RoleView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateRoleBody>,
) -> Result<(StatusCode, Json<RoleView>), ApiError> {
    let request = state.request(
        pb::CreateRoleRequest {
            name: body.name,
            description: body.description,
            permissions: body.permissions,
        },
        Some(&caller),
    );
    Ok((
        StatusCode::CREATED,
        Json(
            state
                .roles
                .clone()
                .create_role(request)
                .await?
                .into_inner()
                .into(),
        ),
    ))
}

#[utoipa::path(get, path = "/api/v1/roles/{id}", tag = "roles", params(("id" = String, Path)),
    responses((status = 200, body = RoleView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<RoleView>, ApiError> {
    let request = state.request(pb::RoleIdRequest { id }, Some(&caller));
    Ok(Json(
        state
            .roles
            .clone()
            .get_role(request)
            .await?
            .into_inner()
            .into(),
    ))
}

#[utoipa::path(patch, path = "/api/v1/roles/{id}", tag = "roles", params(("id" = String, Path)), request_body = UpdateRoleBody,
    responses((status = 200, body = RoleView), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateRoleBody>,
) -> Result<Json<RoleView>, ApiError> {
    let request = state.request(
        pb::UpdateRoleRequest {
            id,
            name: body.name,
            description: body.description,
            permissions: body
                .permissions
                .map(|permissions| pb::PermissionList { permissions }),
        },
        Some(&caller),
    );
    Ok(Json(
        state
            .roles
            .clone()
            .update_role(request)
            .await?
            .into_inner()
            .into(),
    ))
}

#[utoipa::path(post, path = "/api/v1/roles/{id}/trash", tag = "roles", params(("id" = String, Path)),
    responses((status = 200, body = RoleView), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub async fn trash(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<RoleView>, ApiError> {
    let request = state.request(pb::RoleIdRequest { id }, Some(&caller));
    Ok(Json(
        state
            .roles
            .clone()
            .trash_role(request)
            .await?
            .into_inner()
            .into(),
    ))
}

#[utoipa::path(post, path = "/api/v1/roles/{id}/restore", tag = "roles", params(("id" = String, Path)),
    responses((status = 200, body = RoleView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn restore(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<RoleView>, ApiError> {
    let request = state.request(pb::RoleIdRequest { id }, Some(&caller));
    Ok(Json(
        state
            .roles
            .clone()
            .restore_role(request)
            .await?
            .into_inner()
            .into(),
    ))
}

#[utoipa::path(delete, path = "/api/v1/roles/{id}", tag = "roles", params(("id" = String, Path)),
    responses((status = 204), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let request = state.request(pb::RoleIdRequest { id }, Some(&caller));
    state.roles.clone().delete_role_permanently(request).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/roles/restore-all", tag = "roles",
    responses((status = 200, body = BulkView)), security(("bearer" = [])))]
pub async fn restore_all(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<BulkView>, ApiError> {
    let request = state.request(pb::RestoreAllRolesRequest {}, Some(&caller));
    Ok(Json(BulkView {
        affected: state
            .roles
            .clone()
            .restore_all_roles(request)
            .await?
            .into_inner()
            .affected,
    }))
}

#[utoipa::path(delete, path = "/api/v1/roles/trash", tag = "roles",
    responses((status = 200, body = BulkView)), security(("bearer" = [])))]
pub async fn delete_all_trashed(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<BulkView>, ApiError> {
    let request = state.request(pb::DeleteAllTrashedRolesRequest {}, Some(&caller));
    Ok(Json(BulkView {
        affected: state
            .roles
            .clone()
            .delete_all_trashed_roles(request)
            .await?
            .into_inner()
            .affected,
    }))
}

#[utoipa::path(get, path = "/api/v1/permissions", tag = "roles",
    responses((status = 200, body = Vec<PermissionView>)), security(("bearer" = [])))]
pub async fn permissions(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<PermissionView>>, ApiError> {
    let request = state.request(pb::ListPermissionsRequest {}, Some(&caller));
    let reply = state
        .roles
        .clone()
        .list_permissions(request)
        .await?
        .into_inner();
    Ok(Json(
        reply
            .permissions
            .into_iter()
            .map(|p| PermissionView {
                name: p.name,
                description: p.description,
            })
            .collect(),
    ))
}

#[utoipa::path(get, path = "/api/v1/users/{id}/roles", tag = "roles", params(("id" = String, Path)),
    responses((status = 200, body = UserRolesView), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn user_roles(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<UserRolesView>, ApiError> {
    let request = state.request(pb::UserRolesRequest { user_id: id }, Some(&caller));
    Ok(Json(
        state
            .roles
            .clone()
            .list_user_roles(request)
            .await?
            .into_inner()
            .into(),
    ))
}

#[utoipa::path(post, path = "/api/v1/users/{id}/roles", tag = "roles", params(("id" = String, Path)), request_body = AssignRoleBody,
    responses((status = 200, body = UserRolesView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn assign(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<AssignRoleBody>,
) -> Result<Json<UserRolesView>, ApiError> {
    let request = state.request(
        pb::AssignRoleRequest {
            user_id: id,
            role: body.role,
        },
        Some(&caller),
    );
    Ok(Json(
        state
            .roles
            .clone()
            .assign_role(request)
            .await?
            .into_inner()
            .into(),
    ))
}

#[utoipa::path(delete, path = "/api/v1/users/{id}/roles/{role}", tag = "roles", params(("id" = String, Path), ("role" = String, Path)),
    responses((status = 200, body = UserRolesView), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, role)): Path<(String, String)>,
) -> Result<Json<UserRolesView>, ApiError> {
    let request = state.request(pb::RevokeRoleRequest { user_id: id, role }, Some(&caller));
    Ok(Json(
        state
            .roles
            .clone()
            .revoke_role(request)
            .await?
            .into_inner()
            .into(),
    ))
}

/// This area's routes, each registered with its OpenAPI operation (its `#[utoipa::path]`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        // /users/{id}/roles
        .routes(routes!(user_roles, assign))
        // /users/{id}/roles/{role}
        .routes(routes!(revoke))
        // /roles
        .routes(routes!(list, create))
        // /roles/restore-all
        .routes(routes!(restore_all))
        // /roles/trash
        .routes(routes!(delete_all_trashed))
        // /roles/{id}
        .routes(routes!(get, update, delete))
        // /roles/{id}/trash
        .routes(routes!(trash))
        // /roles/{id}/restore
        .routes(routes!(restore))
        // /permissions
        .routes(routes!(permissions))
}
