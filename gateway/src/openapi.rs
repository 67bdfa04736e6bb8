//! The OpenAPI document, served at `GET /api/v1/openapi.json`.
//!
//! It is generated from the code: every handler carries a `#[utoipa::path]` attribute, and
//! the router is built from those same handlers ([`utoipa_axum::routes!`] in
//! [`crate::router::router`]), so a route cannot exist without its entry or the other way round
//! (a test also calls every documented path and method). Request bodies and query parameters
//! are derived from the structs the handlers parse, answers from the structs they serialise,
//! and every status an endpoint can answer is listed with its body: the error statuses with
//! [`ErrorBody`] and the codes they carry ([`crate::schema`] has the shared sets and the string
//! formats). `scripts/schemathesis.sh` holds a live server to the document.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// Every refusal: `{"error": {"code", "message"}}`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorDetail {
    /// Machine-readable, e.g. `insufficient_funds` (the table in docs/api.md).
    #[schema(pattern = "^[a-z_]+$")]
    code: String,
    /// For people: what was wrong, precisely.
    message: String,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Bourse API",
        description = "Accounts, wallet, products, orders, trades and fees of the Bourse trading platform. Money is a decimal string, times are unix milliseconds, JSON is camelCase. See docs/api.md."
    ),
    modifiers(&Security),
    components(schemas(ErrorBody, ErrorDetail))
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("<accountId>.<64 hex digits>, from PUT /api/v1/account")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "admin",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("the admin-token setting")
                    .build(),
            ),
        );
    }
}
