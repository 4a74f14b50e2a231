//! simplejwt's sliding-token views (`TokenObtainSlidingView`, `TokenRefreshSlidingView`): the
//! token travels in the body, never in the refresh cookie, as simplejwt sends it.

use std::sync::Arc;

use axum::{Json, extract::State, http::HeaderMap};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    HttpSettings, cookie,
    error::AppError,
    extract::{ClientAddr, DrfRequest, Fields},
    schemas::{BadRequest, ErrorDetail},
    tokens::{TokenObtainRequest, login_credentials},
};
use crate::sessions::Sessions;

#[derive(Deserialize, ToSchema)]
pub struct SlidingTokenRefreshRequest {
    /// A sliding token.
    #[schema(min_length = 1, pattern = r"^[^\x00]+$")]
    pub token: String,
}

impl DrfRequest for SlidingTokenRefreshRequest {}

/// A sliding token: `token_type` `sliding`, `exp`, `refresh_exp`, and the claims an access token carries.
#[derive(Serialize, ToSchema)]
pub struct SlidingTokenResponse {
    pub token: String,
}

#[utoipa::path(
    post, path = "/api/token/sliding/", tag = "tokens",
    description = "Takes a username and password and returns a sliding token: it authenticates as an access \
                   token does until its exp (SLIDING_TOKEN_LIFETIME) and can be refreshed until its refresh_exp \
                   (SLIDING_TOKEN_REFRESH_LIFETIME, at most SESSION_MAX_LIFETIME).",
    request_body(content(
        (TokenObtainRequest = "application/json"),
        (TokenObtainRequest = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "A new sliding session", body = SlidingTokenResponse),
        (status = 400, description = "A field is missing or blank, or the body is not valid JSON", body = BadRequest),
        (status = 401, description = "Wrong password, unknown or inactive user", body = ErrorDetail),
        (status = 403, description = "With REFRESH_TOKEN_COOKIE=true: a browser request from an origin neither \
                                      listed in CORS_ALLOWED_ORIGINS nor the service's own (CSRF defence)",
         body = ErrorDetail),
        (status = 429, description = "Too many failed logins for this username from this address, or from this \
                                      address; Retry-After says when to try again", body = ErrorDetail,
         headers(("Retry-After" = u64, description = "Seconds until the next attempt is allowed"))),
        (status = 413, description = "Body too large", body = ErrorDetail),
        (status = 415, description = "Neither JSON nor a form", body = ErrorDetail),
        (status = 503, description = "Database unavailable", body = ErrorDetail),
    )
)]
pub async fn obtain_sliding(
    State(sessions): State<Sessions>,
    State(settings): State<Arc<HttpSettings>>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    fields: Fields,
) -> Result<Json<SlidingTokenResponse>, AppError> {
    cookie::refuse_foreign_origin(&headers, &settings)?;
    let (username, password) = login_credentials(fields, &settings)?;
    let token = sessions.login_sliding(&username, password, &client).await?;
    Ok(Json(SlidingTokenResponse { token }))
}

#[utoipa::path(
    post, path = "/api/token/sliding/refresh/", tag = "tokens",
    description = "Takes a sliding token and returns it with a new exp (SLIDING_TOKEN_LIFETIME from now, never past \
                   refresh_exp), the same jti and refresh_exp, and the user's claims as the user record says now. \
                   A token past its exp is refreshed until its refresh_exp.",
    request_body(content(
        (SlidingTokenRefreshRequest = "application/json"),
        (SlidingTokenRefreshRequest = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "Refreshed", body = SlidingTokenResponse),
        (status = 400, description = "The field is missing or blank, or the body is not valid JSON", body = BadRequest),
        (status = 401, description = "Invalid, wrong type, blacklisted, past its refresh_exp (\"Token 'refresh_exp' \
                                      claim has expired\"), or its user gone or inactive", body = ErrorDetail),
        (status = 403, description = "With REFRESH_TOKEN_COOKIE=true: a browser request from an origin neither \
                                      listed in CORS_ALLOWED_ORIGINS nor the service's own (CSRF defence)",
         body = ErrorDetail),
        (status = 413, description = "Body too large", body = ErrorDetail),
        (status = 415, description = "Neither JSON nor a form", body = ErrorDetail),
        (status = 503, description = "Database unavailable", body = ErrorDetail),
    )
)]
pub async fn refresh_sliding(
    State(sessions): State<Sessions>,
    State(settings): State<Arc<HttpSettings>>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    fields: Fields,
) -> Result<Json<SlidingTokenResponse>, AppError> {
    cookie::refuse_foreign_origin(&headers, &settings)?;
    let request = fields.parse::<SlidingTokenRefreshRequest>()?;
    let token = sessions.refresh_sliding(&request.token, &client).await?;
    Ok(Json(SlidingTokenResponse { token }))
}
