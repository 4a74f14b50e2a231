//! The signed-in user: who am I, change my password.

use axum::{Json, extract::State};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    error::AppError,
    extract::{Authenticated, ClientAddr, DrfRequest, JsonOrForm},
    schemas::{BadRequest, Empty, ErrorDetail},
};
use crate::{
    accounts::{AccountError, Accounts},
    domain::{CustomClaims, User},
};

/// The user, as Django's user model names the fields.
#[derive(Serialize, ToSchema)]
pub struct MeResponse {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub is_staff: bool,
    pub is_superuser: bool,
    /// The names of the user's groups.
    pub groups: Vec<String>,
    /// The custom claims merged into the user's access tokens.
    #[schema(value_type = Object)]
    pub claims: CustomClaims,
}

impl MeResponse {
    fn new(u: User, groups: Vec<String>) -> Self {
        Self {
            id: u.id,
            username: u.username,
            email: u.email,
            first_name: u.first_name,
            last_name: u.last_name,
            is_staff: u.is_staff,
            is_superuser: u.is_superuser,
            groups,
            claims: u.custom_claims,
        }
    }
}

#[derive(Deserialize, ToSchema)]
pub struct PasswordChangeRequest {
    #[schema(min_length = 1, pattern = r"^[^\x00]+$")]
    pub current_password: String,
    #[schema(min_length = 1, pattern = r"^[^\x00]+$")]
    pub new_password: String,
}

impl DrfRequest for PasswordChangeRequest {}

#[utoipa::path(
    get, path = "/api/me/", tag = "account",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The signed-in user", body = MeResponse),
        (status = 401, description = "Missing, invalid or expired access token; user gone or inactive", body = ErrorDetail),
        (status = 503, description = "Database unavailable", body = ErrorDetail),
    )
)]
pub async fn me(State(accounts): State<Accounts>, caller: Authenticated) -> Result<Json<MeResponse>, AppError> {
    let groups = accounts.groups_of(&caller.user).await?;
    Ok(Json(MeResponse::new(caller.user, groups)))
}

#[utoipa::path(
    post, path = "/api/password/change/", tag = "account",
    description = "Changes the caller's password; every other session of the user is revoked.",
    security(("bearer" = [])),
    request_body(content(
        (PasswordChangeRequest = "application/json"),
        (PasswordChangeRequest = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "Changed", body = Empty),
        (status = 400, description = "Wrong current password, a field missing or blank, or a new password the \
                                      password policy refuses (`new_password`: Django's messages)", body = BadRequest),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorDetail),
        (status = 429, description = "Too many wrong passwords for this user from this address (they count as \
                                      failed logins); Retry-After says when to try again", body = ErrorDetail,
         headers(("Retry-After" = u64, description = "Seconds until the next attempt is allowed"))),
        (status = 413, description = "Body too large", body = ErrorDetail),
        (status = 415, description = "Neither JSON nor a form", body = ErrorDetail),
        (status = 503, description = "Database unavailable", body = ErrorDetail),
    )
)]
pub async fn change_password(
    State(accounts): State<Accounts>,
    ClientAddr(client): ClientAddr,
    caller: Authenticated,
    JsonOrForm(request): JsonOrForm<PasswordChangeRequest>,
) -> Result<Json<Empty>, AppError> {
    let (current, new) = (SecretString::from(request.current_password), SecretString::from(request.new_password));
    match accounts.change_password(&caller.user, &caller.token, current, new, &client).await {
        Ok(()) => Ok(Json(Empty {})),
        // The policy's messages under the field that carried the password.
        Err(AccountError::WeakPassword(rejected)) => Err(AppError::field_messages("new_password", rejected.0)),
        Err(e) => Err(e.into()),
    }
}
