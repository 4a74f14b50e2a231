//! Exchanging an identity provider's token for a local pair (Clerk's own endpoint, and the
//! RFC 8693 form), and Clerk's webhooks.

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, StatusCode},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    AppState,
    extract::{BearerToken, ClientAddr, FieldReader, Fields, RawBody},
    tokens::{BadRequest, Empty, ErrorDetail, TokenPairResponse, pair_response},
};
use crate::{
    auth::{exchange::apply_clerk_event, keys::unix_now},
    error::AppError,
    external::clerk_api::ClerkEvent,
    store::AuditEvent,
};

#[derive(Deserialize, ToSchema)]
pub struct ClerkExchangeRequest {
    /// The Clerk session token (`await getToken()`); or send it as `Authorization: Bearer …`.
    #[schema(min_length = 1, pattern = r"^[^\x00]+$")]
    pub token: String,
}

#[utoipa::path(
    post, path = "/api/token/clerk/", tag = "external",
    description = "Exchanges a Clerk session token (in `Authorization: Bearer …` or the `token` field) for a \
                   local access/refresh pair for the local user linked to that Clerk user, created at the first \
                   exchange. Enabled by CLERK_ISSUER.",
    request_body(content(
        (ClerkExchangeRequest = "application/json"),
        (ClerkExchangeRequest = "application/x-www-form-urlencoded"),
    ), description = "Optional when the token is in the Authorization header"),
    responses(
        (status = 200, description = "A new local session", body = TokenPairResponse),
        (status = 400, description = "No token in the header or the body", body = BadRequest),
        (status = 401, description = "The Clerk token failed a check (code external_token_not_valid; detail names \
                                      the check), or the local user is inactive", body = ErrorDetail),
        (status = 404, description = "The Clerk exchange is not configured", body = ErrorDetail),
        (status = 503, description = "Clerk's keys cannot be fetched and none are cached \
                                      (code external_keys_unavailable), or the database is unavailable", body = ErrorDetail),
    )
)]
pub async fn clerk_exchange(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    fields: Fields,
) -> Result<axum::response::Response, AppError> {
    state.auth.clerk()?;
    let token = presented_token(&headers, &fields)?;
    let pair = state.auth.exchange_clerk_token(&token, &client).await?;
    Ok(pair_response(&state.auth.config, pair))
}

#[utoipa::path(
    post, path = "/api/token/{provider}/", tag = "external",
    description = "Exchanges a token of a provider configured in EXTERNAL_ISSUERS_FILE (Descope, Auth0, Firebase, \
                   any OIDC issuer) for a local pair, as /api/token/clerk/ does for Clerk. Roles in the token are \
                   re-applied to the local user at every exchange.",
    params(("provider" = String, Path, description = "The `name` of an `[[issuer]]` entry")),
    request_body(content(
        (ClerkExchangeRequest = "application/json"),
        (ClerkExchangeRequest = "application/x-www-form-urlencoded"),
    ), description = "Optional when the token is in the Authorization header"),
    responses(
        (status = 200, description = "A new local session", body = TokenPairResponse),
        (status = 400, description = "No token in the header or the body", body = BadRequest),
        (status = 401, description = "The token failed a check (code external_token_not_valid; detail names the \
                                      check), or the local user is inactive", body = ErrorDetail),
        (status = 404, description = "No provider of that name", body = ErrorDetail),
        (status = 503, description = "The provider's keys cannot be fetched and none are cached \
                                      (code external_keys_unavailable), or the database is unavailable", body = ErrorDetail),
    )
)]
pub async fn provider_exchange(
    State(state): State<AppState>,
    axum::extract::Path(provider): axum::extract::Path<String>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    fields: Fields,
) -> Result<axum::response::Response, AppError> {
    let verifier = state.auth.issuer_named(&provider).ok_or(AppError::NotFound)?;
    let token = presented_token(&headers, &fields)?;
    let pair = state.auth.exchange_external_token(verifier, &token, &client).await?;
    Ok(pair_response(&state.auth.config, pair))
}

/// The provider's token: `Authorization: Bearer …`, else the `token` field.
fn presented_token(headers: &HeaderMap, fields: &Fields) -> Result<String, AppError> {
    if let Some(token) = BearerToken::from_headers(headers)? {
        return Ok(token);
    }
    let mut reader = FieldReader::new(fields);
    let token = reader.required("token", false);
    reader.finish()?;
    Ok(token)
}

pub const GRANT_TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
pub const TOKEN_TYPE_JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
pub const TOKEN_TYPE_ACCESS: &str = "urn:ietf:params:oauth:token-type:access_token";

/// RFC 8693 §2.1.
#[derive(Deserialize, ToSchema)]
pub struct TokenExchangeRequest {
    /// `urn:ietf:params:oauth:grant-type:token-exchange`
    pub grant_type: String,
    /// The identity provider's token.
    pub subject_token: String,
    /// `urn:ietf:params:oauth:token-type:jwt`
    pub subject_token_type: String,
    /// Optional; only `urn:ietf:params:oauth:token-type:access_token`.
    pub requested_token_type: Option<String>,
}

/// RFC 8693 §2.2.1.
#[derive(Serialize, ToSchema)]
pub struct TokenExchangeResponse {
    pub access_token: String,
    /// `urn:ietf:params:oauth:token-type:access_token`
    pub issued_token_type: &'static str,
    /// `Bearer`
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    pub refresh_token: String,
}

/// RFC 6749 §5.2.
#[derive(Serialize, ToSchema)]
pub struct OAuthErrorResponse {
    pub error: String,
    pub error_description: String,
}

fn invalid_request(description: impl Into<String>) -> AppError {
    AppError::OAuth { status: StatusCode::BAD_REQUEST, error: "invalid_request", description: description.into() }
}

/// The endpoint speaks RFC 6749 errors only, so every failure is translated here.
fn as_oauth_error(error: AppError) -> AppError {
    match error {
        AppError::OAuth { .. } => error,
        AppError::ExternalToken(reason) => invalid_request(format!("subject_token: {reason}")),
        AppError::NoActiveAccountForToken => invalid_request("subject_token: the local user is inactive"),
        AppError::NotFound => invalid_request("subject_token: the issuer is not trusted"),
        AppError::ExternalKeysUnavailable | AppError::Unavailable(_) => AppError::OAuth {
            status: StatusCode::SERVICE_UNAVAILABLE,
            error: "temporarily_unavailable",
            description: "try again later".to_owned(),
        },
        AppError::JsonParse(_) | AppError::Malformed | AppError::Validation(_) => {
            invalid_request("the body cannot be read")
        }
        AppError::UnsupportedMediaType(_) => {
            invalid_request("send the parameters as application/x-www-form-urlencoded")
        }
        AppError::PayloadTooLarge => invalid_request("the body is too large"),
        other => other,
    }
}

#[utoipa::path(
    post, path = "/api/token/exchange/", tag = "external",
    description = "RFC 8693 token exchange: an identity provider's token (Clerk, or any provider of \
                   EXTERNAL_ISSUERS_FILE, chosen by the token's `iss`) for a local access/refresh pair. Errors are \
                   RFC 6749 bodies.",
    request_body(content(
        (TokenExchangeRequest = "application/x-www-form-urlencoded"),
        (TokenExchangeRequest = "application/json"),
    )),
    responses(
        (status = 200, description = "A new local session", body = TokenExchangeResponse),
        (status = 400, description = "invalid_request (missing parameter, unsupported token type, or a subject \
                                      token that failed a check) or unsupported_grant_type", body = OAuthErrorResponse),
        (status = 503, description = "temporarily_unavailable: the provider's keys or the database", body = OAuthErrorResponse),
    )
)]
pub async fn token_exchange(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    fields: Result<Fields, AppError>,
) -> Result<Json<TokenExchangeResponse>, AppError> {
    let fields = fields.map_err(as_oauth_error)?;
    exchange_rfc8693(&state, &client, fields).await.map_err(as_oauth_error)
}

async fn exchange_rfc8693(
    state: &AppState,
    client: &str,
    fields: Fields,
) -> Result<Json<TokenExchangeResponse>, AppError> {
    let field = |name: &str| fields.0.get(name).and_then(|v| v.as_str()).filter(|v| !v.is_empty());
    match field("grant_type") {
        None => return Err(invalid_request("grant_type is required")),
        Some(GRANT_TOKEN_EXCHANGE) => {}
        Some(_) => {
            return Err(AppError::OAuth {
                status: StatusCode::BAD_REQUEST,
                error: "unsupported_grant_type",
                description: format!("grant_type must be {GRANT_TOKEN_EXCHANGE}"),
            });
        }
    }
    let subject_token = field("subject_token").ok_or_else(|| invalid_request("subject_token is required"))?;
    match field("subject_token_type") {
        None => return Err(invalid_request("subject_token_type is required")),
        Some(TOKEN_TYPE_JWT) => {}
        Some(_) => return Err(invalid_request(format!("subject_token_type must be {TOKEN_TYPE_JWT}"))),
    }
    if field("requested_token_type").is_some_and(|t| t != TOKEN_TYPE_ACCESS) {
        return Err(invalid_request(format!("requested_token_type must be {TOKEN_TYPE_ACCESS}")));
    }
    // The issuer picks the verifier; the token is then verified in full by that verifier.
    let issuer = unverified_issuer(subject_token).ok_or_else(|| invalid_request("subject_token is not a JWT"))?;
    let untrusted = || invalid_request("subject_token: the issuer is not trusted");
    let pair = match state.auth.clerk().ok().filter(|clerk| clerk.issuer() == issuer) {
        Some(_) => state.auth.exchange_clerk_token(subject_token, client).await?,
        None => {
            let verifier = state.auth.issuers.iter().find(|v| v.issuer() == issuer).ok_or_else(untrusted)?;
            state.auth.exchange_external_token(verifier, subject_token, client).await?
        }
    };
    Ok(Json(TokenExchangeResponse {
        access_token: pair.access,
        issued_token_type: TOKEN_TYPE_ACCESS,
        token_type: "Bearer",
        expires_in: state.auth.config.access_token_lifetime.as_secs(),
        refresh_token: pair.refresh,
    }))
}

/// The `iss` of a JWT, read without verifying anything: only to choose who verifies it.
fn unverified_issuer(token: &str) -> Option<String> {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    let payload = token.split('.').nth(1)?;
    let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    claims.get("iss")?.as_str().map(str::to_owned)
}

/// Deliveries are remembered this long (Svix retries for about a day and a half).
pub const WEBHOOK_DEDUP_RETENTION_SECS: i64 = 7 * 24 * 3600;

#[utoipa::path(
    post, path = "/webhooks/clerk/", tag = "external",
    description = "Clerk's webhooks, signed by Svix. user.created / user.updated upsert the linked local user; \
                   user.deleted, or a banned or locked user, deactivates it and ends its sessions; session.ended / \
                   removed / revoked end the local sessions born from that Clerk session. A redelivery (same \
                   svix-id) and an update older than the stored one change nothing. Enabled by \
                   CLERK_WEBHOOK_SIGNING_SECRET.",
    request_body(content_type = "application/json", description = "A Clerk event: {\"type\", \"data\", …}"),
    params(
        ("svix-id" = String, Header, description = "Delivery id"),
        ("svix-timestamp" = String, Header, description = "Unix seconds; within 5 minutes of now"),
        ("svix-signature" = String, Header, description = "Space-separated `v1,<base64 HMAC-SHA256>`"),
    ),
    responses(
        (status = 200, description = "Applied, ignored, or already applied", body = Empty),
        (status = 400, description = "Missing or bad signature (code webhook_signature_invalid), or not an event", body = ErrorDetail),
        (status = 404, description = "Webhooks are not configured", body = ErrorDetail),
        (status = 503, description = "Not applied (database unavailable): Svix retries", body = ErrorDetail),
    )
)]
pub async fn clerk_webhook(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Json<Empty>, AppError> {
    let verifier = state.auth.clerk_webhooks.as_deref().ok_or(AppError::NotFound)?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let store = &state.auth.store;
    let now = unix_now();
    if let Err(reason) =
        verifier.verify(header("svix-id"), header("svix-timestamp"), header("svix-signature"), &body, now)
    {
        metrics::counter!("tokensmith_webhooks_total", "provider" => "clerk", "result" => "rejected").increment(1);
        let detail = reason.to_string();
        let event =
            AuditEvent { event: "webhook_rejected", client_addr: Some(&client), detail: &detail, ..Default::default() };
        store.record_audit_event(&event, now).await?;
        return Err(AppError::WebhookSignature(reason));
    }
    let delivery = format!("clerk:{}", header("svix-id").unwrap_or_default());
    if store.webhook_delivery_seen(&delivery).await? {
        metrics::counter!("tokensmith_webhooks_total", "provider" => "clerk", "result" => "duplicate").increment(1);
        return Ok(Json(Empty {}));
    }
    let event = ClerkEvent::parse(&body).map_err(|cause| {
        tracing::warn!(%cause, "signed Clerk webhook with an unreadable payload");
        AppError::Malformed
    })?;
    // A failure here is a 5xx and nothing is recorded, so Svix delivers again.
    let applied = apply_clerk_event(store, &event).await?;
    store.record_webhook_delivery(&delivery, now).await?;
    metrics::counter!("tokensmith_webhooks_total", "provider" => "clerk", "result" => "applied").increment(1);
    let detail = format!("{}: {applied:?}", event.describe());
    let record =
        AuditEvent { event: "webhook_applied", client_addr: Some(&client), detail: &detail, ..Default::default() };
    store.record_audit_event(&record, now).await?;
    Ok(Json(Empty {}))
}
