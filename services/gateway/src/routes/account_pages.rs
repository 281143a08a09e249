//! `/account/verify-email` and `/account/reset-password`: the pages the links in the emails
//! open. The one-time token is in the link's fragment (`#token=…`), which browsers never send:
//! it is in no request line, no access log and no `Referer`. The page's script reads it and
//! posts it to the API (`/api/v1/auth/verify-email`, `/api/v1/auth/reset-password`).
//!
//! The pages are static; their script is served from the platform (`/account/account.js`)
//! under a Content-Security-Policy that allows nothing else.

use axum::http::header;
use axum::response::IntoResponse;

const CSP: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; \
                   style-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'";

fn page(body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        body,
    )
}

/// The page of the email-verification link.
pub async fn verify_email() -> impl IntoResponse {
    page(include_str!("../../assets/verify-email.html"))
}

/// The page of the password-reset link.
pub async fn reset_password() -> impl IntoResponse {
    page(include_str!("../../assets/reset-password.html"))
}

/// The script of both pages.
pub async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
        ],
        include_str!("../../assets/account.js"),
    )
}

/// The stylesheet of both pages.
pub async fn style() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../../assets/account.css"),
    )
}
