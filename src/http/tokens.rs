//! The simplejwt-compatible endpoints, plus revoke-all.

use std::sync::Arc;

use axum::{
    Json,
    extract::State,
    http::HeaderMap,
    response::{IntoResponse, Response},
};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    HttpSettings, cookie,
    error::AppError,
    extract::{Authenticated, ClientAddr, DrfRequest, Fields, JsonOrForm},
    schemas::{BadRequest, Empty, ErrorDetail},
};
use crate::{
    config::UsernameField,
    sessions::{Sessions, TokenPair},
    tokens::TokenType,
};

#[derive(Deserialize, ToSchema)]
pub struct TokenObtainRequest {
    /// Not blank (surrounding whitespace is trimmed, as DRF does), no NUL characters.
    #[schema(min_length = 1, pattern = r"^[^\x00]*[^\s\x00][^\x00]*$")]
    pub username: String,
    /// Not blank, never trimmed.
    #[schema(min_length = 1, pattern = r"^[^\x00]+$")]
    pub password: String,
}

impl DrfRequest for TokenObtainRequest {
    const TRIMMED: &'static [&'static str] = &["username"];
}

/// A login with `USERNAME_FIELD=email`.
#[derive(Deserialize, ToSchema)]
pub struct EmailTokenObtainRequest {
    /// Not blank (trimmed, as DRF does), no NUL characters; matched ignoring case.
    #[schema(min_length = 1, pattern = r"^[^\x00]*[^\s\x00][^\x00]*$")]
    pub email: String,
    /// Not blank, never trimmed.
    #[schema(min_length = 1, pattern = r"^[^\x00]+$")]
    pub password: String,
}

impl DrfRequest for EmailTokenObtainRequest {
    const TRIMMED: &'static [&'static str] = &["email"];
}

/// The endpoints that take a login body: their documented body follows `USERNAME_FIELD`.
pub const LOGIN_PATHS: &[&str] = &["/api/token/", "/api/token/sliding/"];

/// The user's name (or email) and password from a login body, by `USERNAME_FIELD`.
pub fn login_credentials(fields: Fields, settings: &HttpSettings) -> Result<(String, SecretString), AppError> {
    Ok(match settings.username_field {
        UsernameField::Username => {
            let request = fields.parse::<TokenObtainRequest>()?;
            (request.username, SecretString::from(request.password))
        }
        UsernameField::Email => {
            let request = fields.parse::<EmailTokenObtainRequest>()?;
            (request.email, SecretString::from(request.password))
        }
    })
}

#[derive(Deserialize, ToSchema)]
pub struct TokenRefreshRequest {
    /// A refresh token.
    #[schema(min_length = 1, pattern = r"^[^\x00]+$")]
    pub refresh: String,
}

impl DrfRequest for TokenRefreshRequest {}

#[derive(Deserialize, ToSchema)]
pub struct TokenVerifyRequest {
    /// An access, refresh or sliding token.
    #[schema(min_length = 1, pattern = r"^[^\x00]+$")]
    pub token: String,
}

impl DrfRequest for TokenVerifyRequest {}

/// The pair, refresh first, as simplejwt orders it. With `REFRESH_TOKEN_COOKIE=true` the refresh
/// token is in an HttpOnly cookie instead, and only `access` is here.
#[derive(Serialize, ToSchema)]
pub struct TokenPairResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh: Option<String>,
    pub access: String,
}

/// A new session's answer: the refresh token in the body, or in the cookie.
pub fn pair_response(settings: &HttpSettings, pair: TokenPair) -> Response {
    if settings.refresh_token_cookie {
        let body = Json(TokenPairResponse { refresh: None, access: pair.access });
        cookie::with(body, cookie::set(&pair.refresh, pair.refresh_expires_at))
    } else {
        Json(TokenPairResponse { refresh: Some(pair.refresh), access: pair.access }).into_response()
    }
}

/// The refresh token of a refresh or blacklist request: the body's `refresh`, else, with
/// `REFRESH_TOKEN_COOKIE=true`, the cookie, from an allowed origin. In cookie mode the answer
/// sets or clears the cookie either way, so a body token from a foreign page is refused too.
fn presented_refresh_token(fields: Fields, headers: &HeaderMap, settings: &HttpSettings) -> Result<String, AppError> {
    if settings.refresh_token_cookie
        && !fields.contains("refresh")
        && let Some(token) = cookie::read(headers)?
    {
        cookie::check_origin(headers, &settings.cors_allowed_origins)?;
        return Ok(token);
    }
    cookie::refuse_foreign_origin(headers, settings)?;
    Ok(fields.parse::<TokenRefreshRequest>()?.refresh)
}

/// The new access token, and the new refresh token when rotation is on.
#[derive(Serialize, ToSchema)]
pub struct TokenRefreshResponse {
    pub access: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh: Option<String>,
}

#[utoipa::path(
    post, path = "/api/token/", tag = "tokens",
    description = "Takes a username and password and returns an access and a refresh token.",
    request_body(content(
        (TokenObtainRequest = "application/json"),
        (TokenObtainRequest = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "A new session", body = TokenPairResponse),
        (status = 400, description = "A field is missing or blank, or the body is not valid JSON", body = BadRequest),
        (status = 401, description = "Wrong password, unknown or inactive user", body = ErrorDetail),
        (status = 403, description = "With REFRESH_TOKEN_COOKIE=true: a browser request from an origin neither \
                                      listed in CORS_ALLOWED_ORIGINS nor the service's own, or a request using the \
                                      cookie without an Origin (CSRF defence)", body = ErrorDetail),
        (status = 429, description = "Too many failed logins for this username from this address, or from this \
                                      address; Retry-After says when to try again", body = ErrorDetail,
         headers(("Retry-After" = u64, description = "Seconds until the next attempt is allowed"))),
        (status = 413, description = "Body too large", body = ErrorDetail),
        (status = 415, description = "Neither JSON nor a form", body = ErrorDetail),
        (status = 503, description = "Database unavailable", body = ErrorDetail),
    )
)]
pub async fn obtain(
    State(sessions): State<Sessions>,
    State(settings): State<Arc<HttpSettings>>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    fields: Fields,
) -> Result<Response, AppError> {
    cookie::refuse_foreign_origin(&headers, &settings)?;
    let (username, password) = login_credentials(fields, &settings)?;
    let pair = sessions.login(&username, password, &client).await?;
    Ok(pair_response(&settings, pair))
}

#[utoipa::path(
    post, path = "/api/token/refresh/", tag = "tokens",
    description = "Takes a refresh token and returns a new access token and, with rotation on, a new refresh \
                   token; the presented one stops working. Presenting a rotated-away token again after \
                   REFRESH_REUSE_GRACE revokes the whole session.",
    request_body(content(
        (TokenRefreshRequest = "application/json"),
        (TokenRefreshRequest = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "Refreshed", body = TokenRefreshResponse),
        (status = 400, description = "The field is missing or blank", body = BadRequest),
        (status = 401, description = "Invalid, expired, wrong type, or blacklisted", body = ErrorDetail),
        (status = 403, description = "With REFRESH_TOKEN_COOKIE=true: a browser request from an origin neither \
                                      listed in CORS_ALLOWED_ORIGINS nor the service's own, or a request using the \
                                      cookie without an Origin (CSRF defence)", body = ErrorDetail),
        (status = 413, description = "Body too large", body = ErrorDetail),
        (status = 415, description = "Neither JSON nor a form", body = ErrorDetail),
        (status = 503, description = "Database unavailable", body = ErrorDetail),
    )
)]
pub async fn refresh(
    State(sessions): State<Sessions>,
    State(settings): State<Arc<HttpSettings>>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    fields: Fields,
) -> Result<Response, AppError> {
    let token = presented_refresh_token(fields, &headers, &settings)?;
    let refreshed = sessions.refresh(&token, &client).await?;
    Ok(match refreshed.refresh {
        Some((refresh, expires_at)) if settings.refresh_token_cookie => {
            let body = Json(TokenRefreshResponse { access: refreshed.access, refresh: None });
            cookie::with(body, cookie::set(&refresh, expires_at))
        }
        refresh => Json(TokenRefreshResponse { access: refreshed.access, refresh: refresh.map(|(token, _)| token) })
            .into_response(),
    })
}

#[utoipa::path(
    post, path = "/api/token/verify/", tag = "tokens",
    description = "Answers 200 when the token's signature is valid, it has not expired and, for a refresh \
                   token, it has not been blacklisted or rotated away; for a sliding token, its session has not \
                   ended.",
    request_body(content(
        (TokenVerifyRequest = "application/json"),
        (TokenVerifyRequest = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "Valid", body = Empty),
        (status = 400, description = "The field is missing or blank", body = BadRequest),
        (status = 401, description = "Invalid, expired or blacklisted", body = ErrorDetail),
        (status = 413, description = "Body too large", body = ErrorDetail),
        (status = 415, description = "Neither JSON nor a form", body = ErrorDetail),
        (status = 503, description = "Database unavailable", body = ErrorDetail),
    )
)]
pub async fn verify(
    State(sessions): State<Sessions>,
    ClientAddr(client): ClientAddr,
    JsonOrForm(request): JsonOrForm<TokenVerifyRequest>,
) -> Result<Json<Empty>, AppError> {
    sessions.verify(&request.token, &client).await?;
    Ok(Json(Empty {}))
}

#[utoipa::path(
    post, path = "/api/token/blacklist/", tag = "tokens",
    description = "Logs a session out: the refresh token, and every token rotated from the same login, \
                   can never be used again. A sliding token is taken in `refresh` too (beyond simplejwt): \
                   it neither refreshes nor authenticates again.",
    request_body(content(
        (TokenRefreshRequest = "application/json"),
        (TokenRefreshRequest = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "Blacklisted", body = Empty),
        (status = 400, description = "The field is missing or blank", body = BadRequest),
        (status = 401, description = "Invalid, expired, wrong type, or already blacklisted", body = ErrorDetail),
        (status = 403, description = "With REFRESH_TOKEN_COOKIE=true: a browser request from an origin neither \
                                      listed in CORS_ALLOWED_ORIGINS nor the service's own, or a request using the \
                                      cookie without an Origin (CSRF defence)", body = ErrorDetail),
        (status = 413, description = "Body too large", body = ErrorDetail),
        (status = 415, description = "Neither JSON nor a form", body = ErrorDetail),
        (status = 503, description = "Database unavailable", body = ErrorDetail),
    )
)]
pub async fn blacklist(
    State(sessions): State<Sessions>,
    State(settings): State<Arc<HttpSettings>>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    fields: Fields,
) -> Result<Response, AppError> {
    let token = presented_refresh_token(fields, &headers, &settings)?;
    let blacklisted = sessions.blacklist(&token, &client).await?;
    // A sliding token's session is not the cookie's.
    if settings.refresh_token_cookie && blacklisted == TokenType::Refresh {
        return Ok(cookie::with(Json(Empty {}), cookie::clear()));
    }
    Ok(Json(Empty {}).into_response())
}

#[utoipa::path(
    post, path = "/api/token/revoke-all/", tag = "tokens",
    description = "Logs the caller out everywhere: every refresh token of the user stops working. Access \
                   tokens already issued stay valid until they expire.",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every session ended", body = Empty),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorDetail),
        (status = 503, description = "Database unavailable", body = ErrorDetail),
    )
)]
pub async fn revoke_all(
    State(sessions): State<Sessions>,
    ClientAddr(client): ClientAddr,
    caller: Authenticated,
) -> Result<Json<Empty>, AppError> {
    sessions.revoke_all(&caller.user, &client).await?;
    Ok(Json(Empty {}))
}
