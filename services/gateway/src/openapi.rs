//! The OpenAPI 3 document (`/api/v1/openapi.json`) and a Swagger UI page (`/api/v1/docs`).

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{
    auth, cards, dead_letters, ledger, merchant_views, merchants, money_views, movements, payments,
    roles, stats, users, views,
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
    paths(
        auth::register, auth::verify_email, auth::resend_verification, auth::login, auth::refresh,
        auth::logout, auth::forgot_password, auth::reset_password, auth::me,
        users::list, users::create, users::get, users::update, users::trash, users::restore,
        users::delete, users::restore_all, users::delete_all_trashed,
        roles::list, roles::create, roles::get, roles::update, roles::trash, roles::restore,
        roles::delete, roles::restore_all, roles::delete_all_trashed, roles::permissions,
        roles::user_roles, roles::assign, roles::revoke,
        cards::create, cards::list, cards::get, cards::by_number, cards::cvv, cards::update, cards::trash,
        cards::restore, cards::delete, cards::restore_all, cards::delete_all_trashed,
        cards::balance, cards::statement,
        ledger::accounts, ledger::posting, ledger::reconcile,
        dead_letters::list, dead_letters::replay, dead_letters::purge,
        movements::create_topup, movements::get_topup, movements::list_topups, movements::card_topups,
        movements::create_withdraw, movements::get_withdraw, movements::list_withdraws,
        movements::card_withdraws,
        movements::create_transfer, movements::get_transfer, movements::list_transfers,
        movements::card_transfers,
        merchants::apply, merchants::list, merchants::get, merchants::update, merchants::set_status,
        merchants::trash, merchants::restore, merchants::delete, merchants::restore_all,
        merchants::delete_all_trashed, merchants::balance, merchants::statement,
        merchants::create_key, merchants::list_keys, merchants::rotate_key, merchants::revoke_key,
        merchants::submit_document, merchants::merchant_documents, merchants::list_documents,
        merchants::get_document, merchants::update_document, merchants::review_document,
        merchants::trash_document, merchants::restore_document, merchants::delete_document,
        merchants::restore_all_documents, merchants::delete_all_trashed_documents,
        payments::create_payment, payments::get_payment, payments::list_payments,
        payments::card_payments, payments::merchant_payments, payments::create_refund,
        payments::payment_refunds, payments::list_refunds, payments::get_refund,
        stats::monthly_amounts, stats::yearly_amounts, stats::monthly_methods,
        stats::yearly_methods, stats::monthly_status, stats::yearly_status,
        stats::monthly_balances, stats::yearly_balances, stats::monthly_total_balance,
        stats::yearly_total_balance, stats::dashboard,
    ),
    components(schemas(
        crate::error::ErrorBody, crate::error::ErrorObject, crate::error::FieldDetail,
        views::UserView, views::TokenPairView, views::MeView, views::PageView, views::UserPage,
        views::RoleView, views::RolePage, views::UserRolesView, views::PermissionView,
        views::BulkView, views::AcceptedView,
        cards::CreateCardBody, cards::UpdateCardBody, cards::CardLookupBody, cards::CvvView, movements::CardMovementBody,
        movements::TransferBody,
        money_views::CardView, money_views::CreatedCardView, money_views::CardPage,
        money_views::AccountView, money_views::AccountPage, money_views::StatementLineView,
        money_views::StatementView, money_views::PostingView, money_views::MismatchView,
        money_views::ReconcileView, money_views::CardMovementView, money_views::CardMovementPage,
        money_views::TransferView, money_views::TransferPage,
        merchants::ApplyBody, merchants::UpdateMerchantBody, merchants::StatusBody,
        merchants::RotateBody, merchants::DocumentBody, merchants::UpdateDocumentBody,
        merchants::ReviewBody, payments::PaymentBody, payments::RefundBody,
        merchant_views::MerchantView, merchant_views::MerchantPage, merchant_views::ApiKeyView,
        merchant_views::CreatedApiKeyView, merchant_views::ApiKeyList,
        merchant_views::DocumentView, merchant_views::DocumentPage, merchant_views::PaymentView,
        merchant_views::PaymentPage, merchant_views::RefundView, merchant_views::RefundPage,
        stats::TotalView, stats::PeriodView, stats::PeriodsView, stats::MethodView,
        stats::MethodsView, stats::StatusView, stats::StatusComparisonView,
        stats::BalancePeriodView, stats::BalancePeriodsView, stats::BalanceComparisonView,
        stats::DashboardView,
        dead_letters::DeadLetterView, dead_letters::DeadLetterList,
        dead_letters::DeadLetterOutcome, dead_letters::ReplayRequest, dead_letters::PurgeRequest,
    )),
    modifiers(&BearerAuth),
    tags((name = "auth"), (name = "users"), (name = "roles"), (name = "cards"), (name = "ledger"),
        (name = "topups"), (name = "withdraws"), (name = "transfers"), (name = "merchants"),
        (name = "merchant documents"), (name = "payments"), (name = "statistics"),
        (name = "events"))
)]
pub struct ApiDoc;
