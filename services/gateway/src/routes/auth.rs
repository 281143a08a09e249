//! `/api/v1/auth/*`: registration, verification, login, refresh, logout, password reset, me.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use proto::user::v1 as pb;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::views::{AcceptedView, MeView, TokenPairView, UserView};
use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, Caller, MaybeCaller};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    pub email: String,
    /// 10-128 characters mixing at least three of: lower case, upper case, digits, symbols.
    pub password: String,
    pub first_name: String,
    pub last_name: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenBody {
    /// The token from the email.
    pub token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailBody {
    pub email: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshBody {
    pub refresh_token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogoutBody {
    /// The refresh token of the session to end (its whole family is revoked).
    #[serde(default)]
    pub refresh_token: String,
    /// End every session of the caller, on every device (needs the access token).
    #[serde(default)]
    pub all_sessions: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPasswordBody {
    pub token: String,
    pub new_password: String,
}

/// Registration answers 202 whether the address is new or taken (a taken one is told by
/// email), so it reveals no accounts.
#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth", request_body = RegisterBody,
    responses((status = 202, body = AcceptedView), (status = 400, body = ErrorBody)))]
pub async fn register(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RegisterBody>,
) -> Result<(StatusCode, Json<AcceptedView>), ApiError> {
    let request = state.request(
        pb::RegisterRequest {
            email: body.email,
            password: body.password,
            first_name: body.first_name,
            last_name: body.last_name,
        },
        None,
    );
    state.auth.clone().register(request).await?;
    Ok((StatusCode::ACCEPTED, Json(AcceptedView::new())))
}

#[utoipa::path(post, path = "/api/v1/auth/verify-email", tag = "auth", request_body = TokenBody,
    responses((status = 200, body = UserView), (status = 400, body = ErrorBody)))]
pub async fn verify_email(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<TokenBody>,
) -> Result<Json<UserView>, ApiError> {
    let request = state.request(pb::VerifyEmailRequest { token: body.token }, None);
    let user = state
        .auth
        .clone()
        .verify_email(request)
        .await?
        .into_inner()
        .user
        .unwrap_or_default();
    Ok(Json(user.into()))
}

#[utoipa::path(post, path = "/api/v1/auth/resend-verification", tag = "auth", request_body = EmailBody,
    responses((status = 202, body = AcceptedView), (status = 400, body = ErrorBody)))]
pub async fn resend_verification(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<EmailBody>,
) -> Result<(StatusCode, Json<AcceptedView>), ApiError> {
    let request = state.request(pb::ResendVerificationRequest { email: body.email }, None);
    state.auth.clone().resend_verification(request).await?;
    Ok((StatusCode::ACCEPTED, Json(AcceptedView::new())))
}

#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginBody,
    responses((status = 200, body = TokenPairView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn login(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<Json<TokenPairView>, ApiError> {
    let request = state.request(
        pb::LoginRequest {
            email: body.email,
            password: body.password,
        },
        None,
    );
    Ok(Json(
        state.auth.clone().login(request).await?.into_inner().into(),
    ))
}

#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshBody,
    responses((status = 200, body = TokenPairView), (status = 401, body = ErrorBody)))]
pub async fn refresh(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RefreshBody>,
) -> Result<Json<TokenPairView>, ApiError> {
    let request = state.request(
        pb::RefreshRequest {
            refresh_token: body.refresh_token,
        },
        None,
    );
    Ok(Json(
        state
            .auth
            .clone()
            .refresh(request)
            .await?
            .into_inner()
            .into(),
    ))
}

#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", request_body = LogoutBody,
    responses((status = 204), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
pub async fn logout(
    State(state): State<AppState>,
    MaybeCaller(caller): MaybeCaller,
    ApiJson(body): ApiJson<LogoutBody>,
) -> Result<StatusCode, ApiError> {
    let request = state.request(
        pb::LogoutRequest {
            refresh_token: body.refresh_token,
            all_sessions: body.all_sessions,
        },
        caller.as_ref(),
    );
    state.auth.clone().logout(request).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/auth/forgot-password", tag = "auth", request_body = EmailBody,
    responses((status = 202, body = AcceptedView), (status = 400, body = ErrorBody)))]
pub async fn forgot_password(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<EmailBody>,
) -> Result<(StatusCode, Json<AcceptedView>), ApiError> {
    let request = state.request(pb::ForgotPasswordRequest { email: body.email }, None);
    state.auth.clone().forgot_password(request).await?;
    Ok((StatusCode::ACCEPTED, Json(AcceptedView::new())))
}

#[utoipa::path(post, path = "/api/v1/auth/reset-password", tag = "auth", request_body = ResetPasswordBody,
    responses((status = 204), (status = 400, body = ErrorBody)))]
pub async fn reset_password(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ResetPasswordBody>,
) -> Result<StatusCode, ApiError> {
    let request = state.request(
        pb::ResetPasswordRequest {
            token: body.token,
            new_password: body.new_password,
        },
        None,
    );
    state.auth.clone().reset_password(request).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth",
    responses((status = 200, body = MeView), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
pub async fn me(State(state): State<AppState>, caller: Caller) -> Result<Json<MeView>, ApiError> {
    let request = state.request(pb::MeRequest {}, Some(&caller));
    let me = state.auth.clone().me(request).await?.into_inner();
    Ok(Json(MeView {
        user: me.user.map(UserView::from),
        roles: me.roles,
        permissions: me.permissions,
    }))
}

/// This area's routes, each registered with its OpenAPI operation (its `#[utoipa::path]`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        // /auth/register
        .routes(routes!(register))
        // /auth/verify-email
        .routes(routes!(verify_email))
        // /auth/resend-verification
        .routes(routes!(resend_verification))
        // /auth/login
        .routes(routes!(login))
        // /auth/refresh
        .routes(routes!(refresh))
        // /auth/logout
        .routes(routes!(logout))
        // /auth/forgot-password
        .routes(routes!(forgot_password))
        // /auth/reset-password
        .routes(routes!(reset_password))
        // /auth/me
        .routes(routes!(me))
}
