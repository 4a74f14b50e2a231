//! The OpenAPI document, assembled from the handlers' annotations.

use std::sync::OnceLock;

use axum::{http::header, response::IntoResponse};
use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use super::{account, exchange, ops, tokens, webhooks};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "tokensmith",
        description = "A self-hosted JWT issuing service: simplejwt-compatible token endpoints, refresh \
                       rotation with reuse detection, and published signing keys (JWKS)."
    ),
    paths(
        tokens::obtain, tokens::refresh, tokens::verify, tokens::blacklist, tokens::revoke_all,
        exchange::clerk_exchange, exchange::provider_exchange, exchange::token_exchange, webhooks::clerk_webhook,
        account::me, account::change_password,
        ops::jwks, ops::healthz, ops::readyz, ops::metrics, openapi_json,
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "tokens", description = "Obtain, refresh, verify and revoke tokens"),
        (name = "external", description = "Sign-in through an identity provider (Clerk): token exchange and webhooks"),
        (name = "account", description = "The signed-in user"),
        (name = "keys", description = "Public keys for downstream verification"),
        (name = "operations", description = "Health, readiness, metrics and this document"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
}

#[utoipa::path(
    get, path = "/openapi.json", tag = "operations",
    description = "This document (OpenAPI 3.1).",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json"))
)]
pub async fn openapi_json() -> impl IntoResponse {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    let body = DOCUMENT.get_or_init(|| ApiDoc::openapi().to_pretty_json().expect("the document serializes"));
    ([(header::CONTENT_TYPE, "application/json")], body.as_str())
}
