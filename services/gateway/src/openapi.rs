//! The OpenAPI 3 document (`/api/v1/openapi.json`) and a Swagger UI page (`/api/v1/docs`):
//! what is not an operation (info, shared schemas, security schemes, tags). The operations
//! come from the routes themselves: each area's `router()` registers its handlers with
//! their `#[utoipa::path]`, so a route is written once.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{
    balance_stats, cards, dashboard, dead_letters, merchant_documents, merchant_keys,
    merchant_views, merchants, money_views, movements, payments, stats, views, webhooks,
};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "bearer",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .bearer_format("JWT")
                        .build(),
                ),
            );
            components.add_security_scheme(
                "api_key",
                SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                    "X-Api-Key",
                    "a merchant's API key",
                ))),
            );
        }
    }
}

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(title = "Payment platform API", version = "1", description = "HTTP/JSON API of the payment platform. Errors share one shape (ErrorBody); every response carries x-request-id."),
    components(schemas(
        crate::error::ErrorBody, crate::error::ErrorObject, crate::error::FieldDetail,
        views::UserView, views::TokenPairView, views::MeView, views::PageView, views::UserPage,
        views::RoleView, views::RolePage, views::UserRolesView, views::PermissionView,
        views::BulkView, views::AcceptedView,
        cards::CreateCardBody, cards::UpdateCardBody, cards::CardLookupBody, cards::CvvView, movements::CardMovementBody,
        movements::TransferBody,
        money_views::CardView, money_views::CreatedCardView, money_views::CardPage,
        money_views::AccountView, money_views::AccountPage, money_views::StatementLineView,
        money_views::StatementView, money_views::HoldView, money_views::PostingView, money_views::MismatchView,
        money_views::ReconcileView, money_views::CardMovementView, money_views::CardMovementPage,
        money_views::TransferView, money_views::TransferPage,
        merchants::ApplyBody, merchants::UpdateMerchantBody, merchants::StatusBody,
        merchants::PricingBody, merchants::PricingView, merchants::PricingList,
        merchant_keys::RotateBody, merchant_documents::DocumentBody,
        merchant_documents::UpdateDocumentBody, merchant_documents::ReviewBody, payments::PaymentBody, payments::CaptureBody, payments::RefundBody,
        merchant_views::MerchantView, merchant_views::MerchantPage, merchant_views::ApiKeyView,
        merchant_views::CreatedApiKeyView, merchant_views::ApiKeyList,
        merchant_views::DocumentView, merchant_views::DocumentPage, merchant_views::PaymentView,
        merchant_views::PaymentPage, merchant_views::RefundView, merchant_views::RefundPage,
        stats::TotalView, stats::PeriodView, stats::PeriodsView, stats::MethodView,
        stats::MethodsView, stats::StatusView, stats::StatusComparisonView,
        balance_stats::BalancePeriodView, balance_stats::BalancePeriodsView,
        balance_stats::BalanceComparisonView, dashboard::DashboardView,
        dead_letters::DeadLetterView, dead_letters::DeadLetterList,
        dead_letters::DeadLetterOutcome, dead_letters::ReplayRequest, dead_letters::PurgeRequest,
        webhooks::WebhookEndpointView, webhooks::CreatedWebhookEndpointView,
        webhooks::WebhookEndpointList, webhooks::EventView, webhooks::EventPage,
        webhooks::AttemptView, webhooks::DeliveryView, webhooks::DeliveryList,
        webhooks::EndpointBody, webhooks::UpdateEndpointBody, webhooks::RotateSecretBody,
        webhooks::ResendBody,
    )),
    modifiers(&BearerAuth),
    tags((name = "auth"), (name = "providers"), (name = "users"), (name = "roles"), (name = "cards"), (name = "saldo"),
        (name = "topups"), (name = "withdraws"), (name = "transfers"), (name = "merchants"),
        (name = "merchant documents"), (name = "payments"), (name = "statistics"),
        (name = "events"), (name = "webhooks"))
)]
pub struct ApiDoc;
