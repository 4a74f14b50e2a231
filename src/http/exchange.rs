//! Exchanging an identity provider's token for a local pair: Clerk's own endpoint, a configured
//! provider's, and the RFC 8693 form, whose errors are RFC 6749 bodies.

use std::sync::Arc;

use axum::{
    Json,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    HttpSettings, cookie,
    error::AppError,
    extract::{BearerToken, BodyError, ClientAddr, DrfRequest, Fields},
    schemas::{BadRequest, ErrorDetail},
    tokens::{TokenPairResponse, pair_response},
};
use crate::{
    accounts::AccountError,
    exchange::{Exchange, ExchangeError, Provider},
    external::ExternalError,
    sessions::{IssueError, Sessions},
    store::StoreError,
};

#[derive(Deserialize, ToSchema)]
pub struct ClerkExchangeRequest {
    /// The Clerk session token (`await getToken()`); or send it as `Authorization: Bearer …`.
    #[schema(min_length = 1, pattern = r"^[^\x00]+$")]
    pub token: String,
}

impl DrfRequest for ClerkExchangeRequest {}

#[utoipa::path(
    post, path = "/api/token/clerk/", tag = "external",
    description = "Exchanges a Clerk session token (in `Authorization: Bearer …` or the `token` field) for a \
                   local access/refresh pair for the local user linked to that Clerk user. At the first exchange \
                   that is the existing local user whose id the Clerk user's `external_id` is (read from Clerk's \
                   Backend API with CLERK_SECRET_KEY), else a new one; never one found by email. Enabled by \
                   CLERK_ISSUER.",
    request_body(content(
        (ClerkExchangeRequest = "application/json"),
        (ClerkExchangeRequest = "application/x-www-form-urlencoded"),
    ), description = "Optional when the token is in the Authorization header"),
    responses(
        (status = 200, description = "A new local session", body = TokenPairResponse),
        (status = 400, description = "No token in the header or the body", body = BadRequest),
        (status = 401, description = "The Clerk token failed a check (code external_token_not_valid; detail names \
                                      the check), or the local user is inactive", body = ErrorDetail),
        (status = 403, description = "With REFRESH_TOKEN_COOKIE=true: a browser request from an origin neither \
                                      listed in CORS_ALLOWED_ORIGINS nor the service's own, or a request using the \
                                      cookie without an Origin (CSRF defence)", body = ErrorDetail),
        (status = 404, description = "The Clerk exchange is not configured", body = ErrorDetail),
        (status = 409, description = "At the Clerk user's first exchange: its `external_id` names a local user \
                                      that is linked to another Clerk user (code external_account_conflict). \
                                      Neither that account nor a new one is signed in; an operator decides \
                                      (`tokensmith clerk unlink` / `clerk link`)", body = ErrorDetail),
        (status = 503, description = "Clerk's keys cannot be fetched and none are cached \
                                      (code external_keys_unavailable), a first exchange cannot read the user's \
                                      record from Clerk's Backend API (code external_profile_unavailable), \
                                      or the database is unavailable", body = ErrorDetail),
    )
)]
pub async fn clerk_exchange(
    State(exchange): State<Exchange>,
    State(settings): State<Arc<HttpSettings>>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    fields: Fields,
) -> Result<Response, AppError> {
    sign_in(&exchange, Exchange::clerk, &settings, &client, &headers, fields).await
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
        (status = 403, description = "With REFRESH_TOKEN_COOKIE=true: a browser request from an origin neither \
                                      listed in CORS_ALLOWED_ORIGINS nor the service's own, or a request using the \
                                      cookie without an Origin (CSRF defence)", body = ErrorDetail),
        (status = 404, description = "No provider of that name", body = ErrorDetail),
        (status = 503, description = "The provider's keys cannot be fetched and none are cached \
                                      (code external_keys_unavailable), or the database is unavailable", body = ErrorDetail),
    )
)]
pub async fn provider_exchange(
    State(exchange): State<Exchange>,
    State(settings): State<Arc<HttpSettings>>,
    Path(name): Path<String>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    fields: Fields,
) -> Result<Response, AppError> {
    sign_in(&exchange, |exchange| exchange.named(&name), &settings, &client, &headers, fields).await
}

/// A provider's token (chosen by `provider`) for a local pair, as both exchange endpoints do it.
async fn sign_in<'a>(
    exchange: &'a Exchange,
    provider: impl FnOnce(&'a Exchange) -> Result<Provider<'a>, ExchangeError>,
    settings: &HttpSettings,
    client: &str,
    headers: &HeaderMap,
    fields: Fields,
) -> Result<Response, AppError> {
    cookie::refuse_foreign_origin(headers, settings)?;
    let provider = provider(exchange)?;
    let token = presented_token(headers, &settings.auth_header_types, fields)?;
    let pair = exchange.exchange(provider, &token, client).await?;
    Ok(pair_response(settings, pair))
}

/// The provider's token: `Authorization: Bearer …` (or another of `AUTH_HEADER_TYPES`), else
/// the `token` field. `Bearer` always: it is what the providers' SDKs send, whatever scheme
/// tokensmith's own tokens travel under.
fn presented_token(headers: &HeaderMap, types: &[String], fields: Fields) -> Result<String, AppError> {
    if let Some(token) = BearerToken::from_headers(headers, types)? {
        return Ok(token);
    }
    if let Some(token) = BearerToken::from_headers(headers, &["Bearer"])? {
        return Ok(token);
    }
    Ok(fields.parse::<ClerkExchangeRequest>()?.token)
}

pub const GRANT_TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
pub const TOKEN_TYPE_JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
pub const TOKEN_TYPE_ACCESS: &str = "urn:ietf:params:oauth:token-type:access_token";

// A parameter that is missing (or not a non-empty string) is read as empty, and refused by the
// handler in RFC 6749's words.
/// RFC 8693 §2.1.
#[derive(Deserialize, ToSchema)]
pub struct TokenExchangeRequest {
    /// `urn:ietf:params:oauth:grant-type:token-exchange`
    #[serde(default)]
    #[schema(required = true)]
    pub grant_type: String,
    /// The identity provider's token.
    #[serde(default)]
    #[schema(required = true)]
    pub subject_token: String,
    /// `urn:ietf:params:oauth:token-type:jwt`
    #[serde(default)]
    #[schema(required = true)]
    pub subject_token_type: String,
    /// Optional; only `urn:ietf:params:oauth:token-type:access_token`.
    pub requested_token_type: Option<String>,
}

impl DrfRequest for TokenExchangeRequest {}

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

fn temporarily_unavailable() -> AppError {
    AppError::OAuth {
        status: StatusCode::SERVICE_UNAVAILABLE,
        error: "temporarily_unavailable",
        description: "try again later".to_owned(),
    }
}

/// The endpoint speaks RFC 6749 errors: every way an exchange fails, in OAuth's words. A server
/// fault stays a plain 500.
fn oauth_error(error: ExchangeError) -> AppError {
    match error {
        ExchangeError::Refused(ExternalError::Rejected(reason)) => invalid_request(format!("subject_token: {reason}")),
        ExchangeError::Refused(ExternalError::KeysUnavailable) | ExchangeError::ProfileUnavailable => {
            temporarily_unavailable()
        }
        ExchangeError::Inactive => invalid_request("subject_token: the local user is inactive"),
        ExchangeError::LinkedElsewhere => {
            invalid_request("subject_token: the local account its user is assigned to is linked to another user")
        }
        ExchangeError::NotConfigured | ExchangeError::UntrustedIssuer => {
            invalid_request("subject_token: the issuer is not trusted")
        }
        ExchangeError::Account(AccountError::NoFreeUsername) => temporarily_unavailable(),
        ExchangeError::Account(AccountError::Store(e))
        | ExchangeError::Store(e)
        | ExchangeError::Issue(IssueError::Store(e)) => store_oauth_error(e),
        ExchangeError::Account(
            e @ (AccountError::InvalidUsername(_)
            | AccountError::InvalidEmail(_)
            | AccountError::UsernameTaken(_)
            | AccountError::NoSuchUser(_)
            | AccountError::EmailTaken(_)
            | AccountError::EmailRequired
            | AccountError::InvalidGroupName(_)
            | AccountError::GroupTaken(_)
            | AccountError::NoSuchGroup(_)
            | AccountError::TooManyGroups
            | AccountError::InvalidClaims(_)
            | AccountError::NameTooLong(_)
            | AccountError::WeakPassword(_)
            | AccountError::SuperuserOnly
            | AccountError::UnknownGroup(_)
            | AccountError::Several(_)
            | AccountError::IdentityLinkedElsewhere { .. }
            | AccountError::UserLinkedElsewhere { .. }
            | AccountError::NotLinked(_)
            | AccountError::WrongPassword
            | AccountError::Throttle(_)
            | AccountError::Passwords(_)),
        ) => AppError::internal(e),
        ExchangeError::Issue(e @ (IssueError::Signing(_) | IssueError::PasswordChanged)) => AppError::from(e),
    }
}

fn store_oauth_error(error: StoreError) -> AppError {
    match error {
        StoreError::Unavailable(_) => temporarily_unavailable(),
        StoreError::Failed(_) => AppError::from(error),
    }
}

fn body_oauth_error(error: BodyError) -> AppError {
    match error {
        BodyError::JsonParse(_) | BodyError::Malformed | BodyError::Fields(_) => {
            invalid_request("the body cannot be read")
        }
        BodyError::UnsupportedMediaType(_) => {
            invalid_request("send the parameters as application/x-www-form-urlencoded")
        }
        BodyError::TooLarge => invalid_request("the body is too large"),
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
        (status = 400, description = "invalid_request (missing parameter, unsupported token type, a subject \
                                      token that failed a check, or one whose Clerk user's `external_id` names a \
                                      local user linked to another Clerk user) or unsupported_grant_type", body = OAuthErrorResponse),
        (status = 503, description = "temporarily_unavailable: the provider's keys, Clerk's record of a first-time \
                                      user, or the database", body = OAuthErrorResponse),
    )
)]
pub async fn token_exchange(
    State(exchange): State<Exchange>,
    State(sessions): State<Sessions>,
    ClientAddr(client): ClientAddr,
    fields: Result<Fields, BodyError>,
) -> Result<Json<TokenExchangeResponse>, AppError> {
    let request = fields.and_then(Fields::parse_lenient::<TokenExchangeRequest>).map_err(body_oauth_error)?;
    let subject_token = check_exchange_request(&request)?;
    // The issuer picks the verifier; the token is then verified in full by that verifier.
    let issuer = unverified_issuer(subject_token).ok_or_else(|| invalid_request("subject_token is not a JWT"))?;
    let provider = exchange.by_issuer(&issuer).map_err(oauth_error)?;
    let pair = exchange.exchange(provider, subject_token, &client).await.map_err(oauth_error)?;
    Ok(Json(TokenExchangeResponse {
        access_token: pair.access,
        issued_token_type: TOKEN_TYPE_ACCESS,
        token_type: "Bearer",
        expires_in: sessions.access_token_lifetime().as_secs(),
        refresh_token: pair.refresh,
    }))
}

/// The parameters RFC 8693 requires, in its order; the subject token when all are right.
fn check_exchange_request(request: &TokenExchangeRequest) -> Result<&str, AppError> {
    match request.grant_type.as_str() {
        "" => return Err(invalid_request("grant_type is required")),
        GRANT_TOKEN_EXCHANGE => {}
        _ => {
            return Err(AppError::OAuth {
                status: StatusCode::BAD_REQUEST,
                error: "unsupported_grant_type",
                description: format!("grant_type must be {GRANT_TOKEN_EXCHANGE}"),
            });
        }
    }
    if request.subject_token.is_empty() {
        return Err(invalid_request("subject_token is required"));
    }
    match request.subject_token_type.as_str() {
        "" => return Err(invalid_request("subject_token_type is required")),
        TOKEN_TYPE_JWT => {}
        _ => return Err(invalid_request(format!("subject_token_type must be {TOKEN_TYPE_JWT}"))),
    }
    if request.requested_token_type.as_deref().is_some_and(|t| t != TOKEN_TYPE_ACCESS) {
        return Err(invalid_request(format!("requested_token_type must be {TOKEN_TYPE_ACCESS}")));
    }
    Ok(&request.subject_token)
}

/// The `iss` of a JWT, read without verifying anything: only to choose who verifies it.
fn unverified_issuer(token: &str) -> Option<String> {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    let payload = token.split('.').nth(1)?;
    let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    claims.get("iss")?.as_str().map(str::to_owned)
}
