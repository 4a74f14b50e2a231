//! The OpenAPI document, assembled from the handlers' annotations.

use std::sync::Arc;

use axum::{extract::State, http::header, response::IntoResponse};
use utoipa::{
    Modify, OpenApi,
    openapi::{
        Ref, RefOr, Required,
        security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    },
};

use super::{
    HttpSettings, account, admin, discovery, exchange, ops, password_reset, register, sliding, tokens, webhooks,
};
use crate::config::UsernameField;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "tokensmith",
        description = "A self-hosted JWT issuing service: simplejwt-compatible token endpoints, refresh \
                       rotation with reuse detection, and published signing keys (JWKS)."
    ),
    paths(
        tokens::obtain, tokens::refresh, tokens::verify, tokens::blacklist, tokens::revoke_all,
        sliding::obtain_sliding, sliding::refresh_sliding,
        exchange::clerk_exchange, exchange::provider_exchange, exchange::token_exchange, webhooks::clerk_webhook,
        account::me, account::change_password, password_reset::request_reset, password_reset::confirm_reset, register::register,
        admin::users::list_users, admin::users::create_user, admin::users::get_user, admin::users::patch_user,
        admin::users::delete_user, admin::users::set_password, admin::users::issue_tokens,
        admin::sessions::list_sessions, admin::sessions::end_session, admin::sessions::end_sessions,
        admin::groups::list_groups, admin::groups::create_group, admin::groups::delete_group,
        ops::jwks, discovery::openid_configuration, ops::healthz, ops::readyz, ops::metrics, openapi_json,
    ),
    components(schemas(tokens::EmailTokenObtainRequest)),
    modifiers(&BearerAuth),
    tags(
        (name = "tokens", description = "Obtain, refresh, verify and revoke tokens"),
        (name = "external", description = "Sign-in through an identity provider (Clerk): token exchange and webhooks"),
        (name = "account", description = "The signed-in user, and signing up"),
        (name = "admin", description = "Users, sessions and groups, for staff access tokens (superusers for \
                                         granting staff and minting tokens)"),
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
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token, as `Authorization: Bearer <token>`. AUTH_HEADER_TYPES names the schemes \
                         accepted instead (e.g. `JWT,Bearer` also takes `JWT <token>`); this page sends `Bearer`.",
                    ))
                    .build(),
            ),
        );
    }
}

#[utoipa::path(
    get, path = "/openapi.json", tag = "operations",
    description = "This document (OpenAPI 3.1).",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json"))
)]
pub async fn openapi_json(State(settings): State<Arc<HttpSettings>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], settings.openapi_json.clone())
}

/// The document for this configuration: with `USERNAME_FIELD=email`, logins take an email.
pub fn document(username_field: UsernameField) -> utoipa::openapi::OpenApi {
    let mut document = ApiDoc::openapi();
    if username_field == UsernameField::Email {
        for path in tokens::LOGIN_PATHS {
            let body = document.paths.paths.get_mut(*path).and_then(|p| p.post.as_mut()?.request_body.as_mut());
            let Some(RefOr::T(body)) = body else { continue };
            for content in body.content.values_mut() {
                let RefOr::T(content) = content else { continue };
                content.schema = Some(RefOr::Ref(Ref::from_schema_name("EmailTokenObtainRequest")));
            }
        }
    }
    // A PATCH with no body changes nothing and answers the user (utoipa marks every body required).
    let patch = document.paths.paths.get_mut("/api/admin/users/{id}/").and_then(|p| p.patch.as_mut());
    if let Some(RefOr::T(body)) = patch.and_then(|op| op.request_body.as_mut()) {
        body.required = Some(Required::False);
    }
    document
}
