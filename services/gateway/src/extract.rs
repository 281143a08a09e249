//! Request extractors that turn bad input into precise 400/413/415 errors naming the field:
//! JSON bodies (unknown fields refused), query strings, and the authenticated caller.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The largest body [`ApiJson`] reads (the router puts the configured one in every request).
#[derive(Clone, Copy, Debug)]
pub struct BodyLimit(pub usize);

const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// What an oversized body is still read (and dropped) up to before the connection is closed.
/// NGINX passes at most 1 MiB; answering before it has sent the whole body would make it
/// report the 413 as a 502.
const DRAIN_LIMIT: usize = 2 * 1024 * 1024;

/// The body, at most `limit` bytes; a larger one is read to its end (up to [`DRAIN_LIMIT`])
/// and refused with 413.
async fn read_body(body: axum::body::Body, limit: usize) -> Result<Bytes, ApiError> {
    use futures::StreamExt;
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::new();
    let mut seen = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| ApiError::invalid_field("body", "could not be read"))?;
        seen = seen.saturating_add(chunk.len());
        if seen > DRAIN_LIMIT {
            break;
        }
        if seen <= limit {
            bytes.extend_from_slice(&chunk);
        }
    }
    if seen > limit {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_argument",
            "PAYLOAD_TOO_LARGE",
            format!("the request body is larger than {limit} bytes"),
        ));
    }
    Ok(Bytes::from(bytes))
}

/// A JSON body deserialised with field-precise errors.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

/// `at line 1 column 12` is noise for API users.
fn strip_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// The field an error is about: the path, or the name in `unknown field `x``/`missing field`.
fn field_of(path: &str, message: &str) -> String {
    for marker in ["unknown field `", "missing field `"] {
        if let Some(start) = message.find(marker) {
            let rest = &message[start + marker.len()..];
            if let Some(end) = rest.find('`') {
                let name = &rest[..end];
                // For unknown fields the path already ends with the key itself.
                if path == name || path.ends_with(&format!(".{name}")) {
                    return path.to_owned();
                }
                return if path == "." || path.is_empty() {
                    name.to_owned()
                } else {
                    format!("{path}.{name}")
                };
            }
        }
    }
    if path == "." || path.is_empty() {
        "body".to_owned()
    } else {
        path.to_owned()
    }
}

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("application/json")
            });
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "invalid_argument",
                "UNSUPPORTED_MEDIA_TYPE",
                "the body must be JSON with content-type application/json",
            ));
        }
        let limit = req
            .extensions()
            .get::<BodyLimit>()
            .map_or(DEFAULT_BODY_LIMIT, |l| l.0);
        let bytes = read_body(req.into_body(), limit).await?;
        let mut deserializer = serde_json::Deserializer::from_slice(&bytes);
        match serde_path_to_error::deserialize(&mut deserializer) {
            Ok(value) => Ok(Self(value)),
            Err(err) => {
                let path = err.path().to_string();
                let message = strip_position(&err.into_inner().to_string());
                Err(ApiError::invalid_field(&field_of(&path, &message), message))
            }
        }
    }
}

/// Like [`ApiJson`], but a request without a body (and without a content type) gets
/// `T::default()`: for bodies whose every field is optional.
#[derive(Debug)]
pub struct OptionalApiJson<T>(pub T);

impl<S, T> FromRequest<S> for OptionalApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Default,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let has_type = req.headers().contains_key(header::CONTENT_TYPE);
        let empty = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|v| v.trim() == "0");
        if !has_type && empty {
            return Ok(Self(T::default()));
        }
        ApiJson::from_request(req, state)
            .await
            .map(|ApiJson(value)| Self(value))
    }
}

/// A query string deserialised with field-precise errors (unknown parameters refused).
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded_parse(query));
        match serde_path_to_error::deserialize(deserializer) {
            Ok(value) => Ok(Self(value)),
            Err(err) => {
                let path = err.path().to_string();
                let message = strip_position(&err.into_inner().to_string());
                Err(ApiError::invalid_field(&field_of(&path, &message), message))
            }
        }
    }
}

fn form_urlencoded_parse(query: &str) -> form_urlencoded::Parse<'_> {
    form_urlencoded::parse(query.as_bytes())
}

/// The authenticated caller; 401 if the request has no valid access token.
#[derive(Clone, Debug)]
pub struct Caller {
    pub principal: platform::auth::Principal,
    /// The raw bearer token, forwarded to services (they authorize).
    pub token: String,
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            ApiError::unauthenticated(
                "AUTHENTICATION_REQUIRED",
                "an access token is required (Authorization: Bearer …)",
            )
        })
    }
}

/// The caller if the request carries a valid access token.
#[derive(Clone, Debug)]
pub struct MaybeCaller(pub Option<Caller>);

impl<S: Send + Sync> FromRequestParts<S> for MaybeCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(parts.extensions.get::<Caller>().cloned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_named_from_serde_messages() {
        assert_eq!(
            field_of(".", "unknown field `admin`, expected one of `email`"),
            "admin"
        );
        assert_eq!(field_of(".", "missing field `email`"), "email");
        assert_eq!(
            field_of("page_size", "invalid digit found in string"),
            "page_size"
        );
        assert_eq!(field_of(".", "expected value"), "body");
        assert_eq!(
            strip_position("invalid type: integer `5`, expected a string at line 1 column 12"),
            "invalid type: integer `5`, expected a string"
        );
    }
}

/// The `Idempotency-Key` header of a money-moving request (required).
#[derive(Clone, Debug)]
pub struct IdempotencyKey(pub String);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let value = parts
            .headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .trim();
        if value.is_empty() || value.len() > 255 || !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ApiError::invalid_field(
                "Idempotency-Key",
                "header is required: 1-255 visible ASCII characters, unique per money movement (a UUID is a good choice)",
            ));
        }
        Ok(Self(value.to_owned()))
    }
}

/// An optional RFC 3339 timestamp query parameter as a proto timestamp.
pub fn timestamp_param(
    field: &str,
    value: Option<&str>,
) -> Result<Option<prost_types::Timestamp>, ApiError> {
    match value {
        None | Some("") => Ok(None),
        Some(raw) => chrono::DateTime::parse_from_rfc3339(raw)
            .map(|t| Some(platform::time::to_proto(t.with_timezone(&chrono::Utc))))
            .map_err(|_| {
                ApiError::invalid_field(
                    field,
                    "must be an RFC 3339 timestamp, e.g. 2026-01-31T00:00:00Z",
                )
            }),
    }
}

/// The header a merchant sends its API key in.
pub const API_KEY_HEADER: &str = "x-api-key";

/// Who calls a payment route: a merchant by `X-Api-Key`, or a user by access token.
#[derive(Clone, Debug)]
pub enum PaymentCaller {
    Merchant(String),
    User(Caller),
}

impl PaymentCaller {
    /// The API key for the request message (empty for users).
    pub fn api_key(&self) -> String {
        match self {
            Self::Merchant(key) => key.clone(),
            Self::User(_) => String::new(),
        }
    }

    /// The user to forward as bearer (none for merchants).
    pub fn user(&self) -> Option<&Caller> {
        match self {
            Self::Merchant(_) => None,
            Self::User(caller) => Some(caller),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for PaymentCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let key = parts
            .headers
            .get(API_KEY_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty());
        match (key, parts.extensions.get::<Caller>()) {
            (Some(_), Some(_)) => Err(ApiError::invalid_field(
                "X-Api-Key",
                "send either X-Api-Key (merchant) or Authorization (user), not both",
            )),
            (Some(key), None) => Ok(Self::Merchant(key.to_owned())),
            (None, Some(caller)) => Ok(Self::User(caller.clone())),
            (None, None) => Err(ApiError::unauthenticated(
                "AUTHENTICATION_REQUIRED",
                "send the merchant's X-Api-Key header or a user's access token",
            )),
        }
    }
}
