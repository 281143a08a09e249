//! The OpenAPI 3 document (`/api/v1/openapi.json`) and a Swagger UI page (`/api/v1/docs`).

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{auth, roles, users, views};

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
    ),
    components(schemas(
        crate::error::ErrorBody, crate::error::ErrorObject, crate::error::FieldDetail,
        views::UserView, views::TokenPairView, views::MeView, views::PageView, views::UserPage,
        views::RoleView, views::RolePage, views::UserRolesView, views::PermissionView,
        views::BulkView, views::AcceptedView,
    )),
    modifiers(&BearerAuth),
    tags((name = "auth"), (name = "users"), (name = "roles"))
)]
pub struct ApiDoc;

/// Swagger UI, loaded from a CDN by the browser (nothing is bundled into the binary).
pub const SWAGGER_UI: &str = r##"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Payment platform API</title>
  <link rel="stylesheet" href="https://unpkg.com/swagger-ui-dist@5/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="https://unpkg.com/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({ url: "/api/v1/openapi.json", dom_id: "#swagger-ui" });
  </script>
</body>
</html>
"##;
