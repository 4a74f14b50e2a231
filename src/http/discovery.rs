//! OpenID Connect discovery: `/.well-known/openid-configuration`, so that gateways and OIDC
//! libraries configured with nothing but the issuer URL find the signing keys. Served when
//! `JWT_ISSUER` is set to the service's public base URL: every URL in the document is built
//! from it, and clients fetch `{issuer}/.well-known/openid-configuration` to begin with.

use std::{sync::Arc, time::Duration};

use axum::{
    Json,
    extract::State,
    http::header,
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;

use super::{HttpSettings, error::AppError, schemas::ErrorDetail};
use crate::{config::Config, tokens::TokenService};

/// The discovery document. tokensmith has no authorization endpoint and issues no ID tokens;
/// these are the members that let a client verify its access tokens by issuer alone.
#[derive(Serialize, ToSchema)]
pub struct OpenIdConfiguration {
    /// `JWT_ISSUER`, exactly: the `iss` of every token.
    #[schema(example = "https://auth.example.com")]
    pub issuer: String,
    /// The key set (`{issuer}/.well-known/jwks.json`).
    #[schema(example = "https://auth.example.com/.well-known/jwks.json")]
    pub jwks_uri: String,
    /// Where a username and password get tokens (`{issuer}/api/token/`).
    #[schema(example = "https://auth.example.com/api/token/")]
    pub token_endpoint: String,
    /// The algorithms of the keys in the key set: the signing key's first.
    #[schema(example = json!(["ES256"]))]
    pub id_token_signing_alg_values_supported: Vec<String>,
    /// `password` (`/api/token/`), `refresh_token` (`/api/token/refresh/`), and RFC 8693's
    /// token exchange (`/api/token/exchange/`) when an identity provider is configured.
    #[schema(example = json!(["password", "refresh_token"]))]
    pub grant_types_supported: Vec<String>,
    /// Always `["public"]`: `sub` is the user's id.
    #[schema(example = json!(["public"]))]
    pub subject_types_supported: Vec<String>,
}

/// What the document says that does not change while the process runs.
pub struct Discovery {
    issuer: String,
    grant_types: Vec<String>,
}

const GRANT_TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

impl Discovery {
    /// `None` without `JWT_ISSUER`, or when it is not an http(s) URL that paths can be appended
    /// to (then the operator is told once, at start).
    pub fn new(config: &Config) -> Option<Self> {
        let issuer = config.jwt_issuer.as_ref()?;
        let base = url::Url::parse(issuer).ok().filter(|url| {
            matches!(url.scheme(), "https" | "http")
                && url.has_host()
                && url.query().is_none()
                && url.fragment().is_none()
        });
        if base.is_none() {
            tracing::warn!(
                "JWT_ISSUER is not the service's http(s) URL: /.well-known/openid-configuration is not served"
            );
            return None;
        }
        let mut grant_types = vec!["password".to_owned(), "refresh_token".to_owned()];
        if config.clerk.is_some() || !config.external_issuers.is_empty() {
            grant_types.push(GRANT_TOKEN_EXCHANGE.to_owned());
        }
        Some(Self { issuer: issuer.clone(), grant_types })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer.trim_end_matches('/'))
    }
}

/// As long as downstream services may cache the key set.
const MAX_AGE: Duration = Duration::from_secs(300);

#[utoipa::path(
    get, path = "/.well-known/openid-configuration", tag = "keys",
    description = "OpenID Connect discovery, for clients configured with the issuer URL alone: where the key set \
                   is, and the algorithms of its keys. Served when JWT_ISSUER is set (to the service's public base \
                   URL).",
    responses(
        (status = 200, description = "The discovery document", body = OpenIdConfiguration),
        (status = 404, description = "JWT_ISSUER is not set", body = ErrorDetail),
    )
)]
pub async fn openid_configuration(
    State(settings): State<Arc<HttpSettings>>,
    State(tokens): State<Arc<TokenService>>,
) -> Result<Response, AppError> {
    let discovery = settings.discovery.as_ref().ok_or(AppError::NotFound)?;
    let document = OpenIdConfiguration {
        issuer: discovery.issuer.clone(),
        jwks_uri: discovery.url("/.well-known/jwks.json"),
        token_endpoint: discovery.url("/api/token/"),
        id_token_signing_alg_values_supported: algorithms(&tokens),
        grant_types_supported: discovery.grant_types.clone(),
        subject_types_supported: vec!["public".to_owned()],
    };
    let cache = format!("public, max-age={}", MAX_AGE.as_secs());
    Ok(([(header::CACHE_CONTROL, cache)], Json(document)).into_response())
}

/// The algorithms of the published keys, by their JOSE names.
fn algorithms(tokens: &TokenService) -> Vec<String> {
    let ring = tokens.key_ring();
    let names = ring.algorithms.iter().map(|a| serde_json::to_value(a).ok()?.as_str().map(str::to_owned));
    names.flatten().collect()
}
