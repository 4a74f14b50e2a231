//! Password reset by email: ask for a link, then set a new password with its token. Both are
//! 404 while `SMTP_URL` is unset. The rules live in `accounts::PasswordResets`.

use axum::{Json, extract::State};
use secrecy::SecretString;
use serde::Deserialize;
use utoipa::ToSchema;

use super::{
    error::AppError,
    extract::{ClientAddr, DrfRequest, JsonOrForm},
    schemas::{BadRequest, Empty, ErrorDetail},
};
use crate::accounts::PasswordResets;

#[derive(Deserialize, ToSchema)]
pub struct PasswordResetRequest {
    #[schema(min_length = 1, pattern = r"^[^\x00]+$")]
    pub email: String,
}

impl DrfRequest for PasswordResetRequest {}

#[derive(Deserialize, ToSchema)]
pub struct PasswordResetConfirm {
    /// The token from the mailed link.
    #[schema(min_length = 1, pattern = r"^[^\x00]+$")]
    pub token: String,
    #[schema(min_length = 1, pattern = r"^[^\x00]+$")]
    pub new_password: String,
}

impl DrfRequest for PasswordResetConfirm {}

#[utoipa::path(
    post, path = "/api/password/reset/", tag = "account",
    description = "Mails a password-reset link to the active users with a password and this email (ignoring \
                   case), each their own. The answer is the same whether or not the address is known, and so \
                   is its timing: the mail is sent afterwards. Throttled per client address and per email; \
                   past the limits the answer is still 200 but no mail goes out.",
    request_body(content(
        (PasswordResetRequest = "application/json"),
        (PasswordResetRequest = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "Accepted (whether or not a mail goes out)", body = Empty),
        (status = 400, description = "The email missing, blank or not an address", body = BadRequest),
        (status = 404, description = "Password reset is off (SMTP_URL unset)", body = ErrorDetail),
        (status = 413, description = "Body too large", body = ErrorDetail),
        (status = 415, description = "Neither JSON nor a form", body = ErrorDetail),
        (status = 503, description = "Database unavailable", body = ErrorDetail),
    )
)]
pub async fn request_reset(
    State(resets): State<PasswordResets>,
    ClientAddr(client): ClientAddr,
    JsonOrForm(request): JsonOrForm<PasswordResetRequest>,
) -> Result<Json<Empty>, AppError> {
    resets.request(&request.email, &client).await?;
    Ok(Json(Empty {}))
}

#[utoipa::path(
    post, path = "/api/password/reset/confirm/", tag = "account",
    description = "Sets a new password with a mailed token; every session of the user ends. A token works \
                   once, expires after PASSWORD_RESET_TIMEOUT, and dies when the password changes.",
    request_body(content(
        (PasswordResetConfirm = "application/json"),
        (PasswordResetConfirm = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "Password set", body = Empty),
        (status = 400, description = "Invalid, used or expired token ({\"token\": […]}), a password the policy \
                                      refuses ({\"new_password\": […]}), or a field missing or blank", body = BadRequest),
        (status = 404, description = "Password reset is off (SMTP_URL unset)", body = ErrorDetail),
        (status = 413, description = "Body too large", body = ErrorDetail),
        (status = 415, description = "Neither JSON nor a form", body = ErrorDetail),
        (status = 503, description = "Database unavailable", body = ErrorDetail),
    )
)]
pub async fn confirm_reset(
    State(resets): State<PasswordResets>,
    ClientAddr(client): ClientAddr,
    JsonOrForm(request): JsonOrForm<PasswordResetConfirm>,
) -> Result<Json<Empty>, AppError> {
    resets.confirm(&request.token, SecretString::from(request.new_password), &client).await?;
    Ok(Json(Empty {}))
}
