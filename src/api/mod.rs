//! The JSON admin API under `/api/v1/`, its OpenAPI 3 document at `/api/v1/openapi.json`
//! and a browsable Swagger UI at `/api/docs` (assets built into the binary).
//!
//! Every route is registered through `utoipa_axum::routes!`, so the document and the router
//! are built from the same list and cannot drift apart.

pub mod auth;
pub mod error;
pub mod mfa;
pub mod tenancy;

use axum::Router;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

use crate::state::AppState;

pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";
pub const DOCS_PATH: &str = "/api/docs";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Portcullis admin API",
        description = "Tenants, clients, MFA policies, resets and the audit log. Authenticate with a bearer \
                       access token issued by Portcullis with the `admin` scope: an administrator's \
                       (company_admin or reseller_admin), or a service client's (client_credentials).",
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "tenancy", description = "Resellers, companies, users and clients"),
        (name = "mfa", description = "MFA policies, enforcement, per-user MFA and reset requests"),
        (name = "audit", description = "The audit log"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
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

/// The API's routes and its OpenAPI document, built together.
pub fn routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let v1 = OpenApiRouter::<AppState>::new()
        .routes(routes!(tenancy::list_resellers, tenancy::create_reseller))
        .routes(routes!(
            tenancy::get_reseller,
            tenancy::update_reseller,
            tenancy::delete_reseller
        ))
        .routes(routes!(tenancy::list_companies, tenancy::create_company))
        .routes(routes!(
            tenancy::get_company,
            tenancy::update_company,
            tenancy::delete_company
        ))
        .routes(routes!(tenancy::list_users, tenancy::create_user))
        .routes(routes!(
            tenancy::get_user,
            tenancy::update_user,
            tenancy::delete_user
        ))
        .routes(routes!(tenancy::list_clients, tenancy::create_client))
        .routes(routes!(
            tenancy::get_client,
            tenancy::update_client,
            tenancy::delete_client
        ))
        .routes(routes!(mfa::get_policy, mfa::put_policy))
        .routes(routes!(mfa::put_enforcement, mfa::delete_enforcement))
        .routes(routes!(mfa::get_user_mfa))
        .routes(routes!(mfa::reset_user_mfa))
        .routes(routes!(mfa::put_membership))
        .routes(routes!(mfa::list_reset_requests))
        .routes(routes!(mfa::approve_reset_request))
        .routes(routes!(mfa::decline_reset_request))
        .routes(routes!(mfa::list_audit_events));
    let (router, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/api/v1", v1)
        .split_for_parts();
    (router, openapi)
}

/// The API router with the document and the docs page.
pub fn router() -> Router<AppState> {
    let (router, openapi) = routes();
    router.merge(SwaggerUi::new(DOCS_PATH).url(OPENAPI_PATH, openapi))
}
