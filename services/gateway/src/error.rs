//! The one JSON error shape of the API and the one mapping from gRPC status codes to HTTP:
//!
//! ```json
//! {"error": {"status": 400, "code": "invalid_argument", "reason": "VALIDATION_FAILED",
//!            "message": "...", "request_id": "...",
//!            "details": [{"field": "email", "description": "..."}]}}
//! ```

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tonic::Code;
use tonic_types::StatusExt;
use utoipa::ToSchema;

/// A problem with one field.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct FieldDetail {
    /// The field, as named in the request (`email`, `page_size`).
    pub field: String,
    /// What is wrong with it.
    pub description: String,
}

/// The error object.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ErrorObject {
    /// HTTP status code.
    pub status: u16,
    /// Category, e.g. `invalid_argument`, `not_found`.
    pub code: &'static str,
    /// Stable machine-readable reason, e.g. `EMAIL_TAKEN`.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
    /// The request id (also in the `x-request-id` header).
    pub request_id: String,
    /// Field-level problems.
    pub details: Vec<FieldDetail>,
}

/// The error body.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorObject,
}

/// An API error, rendered as [`ErrorBody`].
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    reason: String,
    message: String,
    details: Vec<FieldDetail>,
    retry_after: Option<String>,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        code: &'static str,
        reason: &str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code,
            reason: reason.to_owned(),
            message: message.into(),
            details: Vec::new(),
            retry_after: None,
        }
    }

    /// 400 for one bad field.
    pub fn invalid_field(field: &str, description: impl Into<String>) -> Self {
        let description = description.into();
        let mut err = Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            "VALIDATION_FAILED",
            format!("{field}: {description}"),
        );
        err.details.push(FieldDetail {
            field: field.to_owned(),
            description,
        });
        err
    }

    pub fn unauthenticated(reason: &str, message: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", reason, message)
    }

    pub fn too_many_requests(retry_after_secs: u64) -> Self {
        let mut err = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "resource_exhausted",
            "RATE_LIMITED",
            "too many requests; slow down",
        );
        err.retry_after = Some(retry_after_secs.to_string());
        err
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }
}

/// The HTTP status and category for a gRPC code; the only such mapping in the platform.
pub fn http_status(code: Code) -> (StatusCode, &'static str) {
    match code {
        Code::Ok => (StatusCode::OK, "ok"),
        Code::InvalidArgument | Code::OutOfRange => (StatusCode::BAD_REQUEST, "invalid_argument"),
        Code::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
        Code::PermissionDenied => (StatusCode::FORBIDDEN, "permission_denied"),
        Code::NotFound => (StatusCode::NOT_FOUND, "not_found"),
        Code::AlreadyExists => (StatusCode::CONFLICT, "already_exists"),
        Code::Aborted => (StatusCode::CONFLICT, "conflict"),
        Code::FailedPrecondition => (StatusCode::UNPROCESSABLE_ENTITY, "failed_precondition"),
        Code::ResourceExhausted => (StatusCode::TOO_MANY_REQUESTS, "resource_exhausted"),
        Code::Cancelled => (
            StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
            "cancelled",
        ),
        Code::DeadlineExceeded => (StatusCode::GATEWAY_TIMEOUT, "deadline_exceeded"),
        Code::Unimplemented => (StatusCode::NOT_IMPLEMENTED, "unimplemented"),
        Code::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        Code::Internal | Code::Unknown | Code::DataLoss => {
            (StatusCode::INTERNAL_SERVER_ERROR, "internal")
        }
    }
}

impl From<tonic::Status> for ApiError {
    fn from(status: tonic::Status) -> Self {
        let (http, code) = http_status(status.code());
        let details = status.get_error_details();
        let reason = details
            .error_info()
            .map(|i| i.reason.clone())
            .unwrap_or_else(|| format!("{:?}", status.code()).to_uppercase());
        let fields = details
            .bad_request()
            .map(|b| {
                b.field_violations
                    .iter()
                    .map(|v| FieldDetail {
                        field: v.field.clone(),
                        description: v.description.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let message = match status.code() {
            // Transport-level failures carry internals (addresses, errors); keep them in logs.
            Code::Unavailable | Code::Unknown | Code::Internal
                if details.error_info().is_none() =>
            {
                tracing::warn!(grpc.code = ?status.code(), grpc.message = status.message(), "backend call failed");
                "a backend service is unavailable; try again".to_owned()
            }
            _ => status.message().to_owned(),
        };
        let retry_after = status
            .metadata()
            .get(platform::error::RETRY_AFTER_METADATA)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Self {
            status: http,
            code,
            reason,
            message,
            details: fields,
            retry_after,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        metrics::counter!("http_errors_total", "reason" => self.reason.clone()).increment(1);
        let body = ErrorBody {
            error: ErrorObject {
                status: self.status.as_u16(),
                code: self.code,
                reason: self.reason,
                message: self.message,
                request_id: platform::grpc::current_request_id(),
                details: self.details,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(value) = self
            .retry_after
            .and_then(|v| HeaderValue::from_str(&v).ok())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}
