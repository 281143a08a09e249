//! HTTP routes under `/api/v1`, one module per area. Handlers convert JSON to a gRPC request
//! (forwarding the caller's token, request id, trace context and a deadline), call the
//! service, and convert the reply back. Authorization is decided by the services.

pub mod account_pages;
pub mod adjustments;
pub mod auth;
pub mod balance_stats;
pub mod cards;
pub mod dashboard;
pub mod dead_letters;
pub mod merchant_documents;
pub mod merchant_keys;
pub mod merchant_views;
pub mod merchants;
pub mod money_views;
pub mod movements;
pub mod payments;
pub mod provider_callbacks;
pub mod reconciliation;
pub mod roles;
pub mod saldo;
pub mod stats;
pub mod users;
pub mod views;
pub mod webhooks;

use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::extract::Caller;

impl AppState {
    /// A gRPC request carrying the caller's token (if any) and the configured deadline.
    pub fn request<T>(&self, message: T, caller: Option<&Caller>) -> tonic::Request<T> {
        platform::grpc::outgoing(
            message,
            caller.map(|c| c.token.as_str()),
            self.config.grpc_deadline,
        )
    }
}

/// Which rows a list shows.
#[derive(Clone, Copy, Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Lifecycle {
    /// Not deleted (default).
    #[default]
    Active,
    /// Soft-deleted.
    Trashed,
    /// Both.
    All,
}

impl Lifecycle {
    pub(crate) fn to_proto(self) -> i32 {
        use proto::common::v1::Lifecycle as P;
        match self {
            Self::Active => P::Active as i32,
            Self::Trashed => P::Trashed as i32,
            Self::All => P::All as i32,
        }
    }
}

/// Query parameters of every list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// 1-based page number (default 1).
    pub page: Option<u32>,
    /// Items per page, 1-100 (default 20).
    pub page_size: Option<u32>,
    /// Case-insensitive text search.
    pub search: Option<String>,
    /// `active` (default), `trashed` or `all`.
    #[param(value_type = Option<String>)]
    pub status: Option<Lifecycle>,
}

impl ListQuery {
    fn page(&self) -> proto::common::v1::PageRequest {
        page_request(self.page, self.page_size)
    }
}

/// A page request from optional query parameters (0 = the service's default).
pub fn page_request(page: Option<u32>, page_size: Option<u32>) -> proto::common::v1::PageRequest {
    proto::common::v1::PageRequest {
        page: page.unwrap_or(0),
        page_size: page_size.unwrap_or(0),
    }
}
