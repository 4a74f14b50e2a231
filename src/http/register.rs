//! `POST /api/register/`: self-service sign-up, when the operator allows it
//! (`ALLOW_REGISTRATION`); the rules are `accounts::Registrations`'.

use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    error::AppError,
    extract::{ClientAddr, DrfRequest, JsonOrForm},
    schemas::{BadRequest, ErrorDetail},
};
use crate::accounts::{Applicant, Registrations};

#[derive(Deserialize, ToSchema)]
pub struct RegisterRequest {
    /// Letters, digits and `@.+-_`, at most 150 characters (Django's username rules), once
    /// surrounding whitespace is trimmed as DRF does (so the schema cannot state them).
    #[schema(min_length = 1, pattern = r"^[^\x00]+$")]
    pub username: String,
    /// Checked against the password policy (Django's four default validators).
    #[schema(min_length = 1, pattern = r"^[^\x00]+$")]
    pub password: String,
    /// Optional, but required under `USERNAME_FIELD=email` (then unique: it is what the user
    /// logs in with).
    #[serde(default)]
    pub email: Option<String>,
}

impl DrfRequest for RegisterRequest {
    // DRF's CharField trims; passwords are taken as typed.
    const TRIMMED: &'static [&'static str] = &["username"];
}

/// The user created.
#[derive(Serialize, ToSchema)]
pub struct RegisterResponse {
    pub id: i64,
    pub username: String,
    pub email: String,
}

#[utoipa::path(
    post, path = "/api/register/", tag = "account",
    description = "Creates a password user (never staff) when `ALLOW_REGISTRATION` is on; at most \
                   `REGISTRATION_LIMIT` accepted registrations an hour from one client address.",
    request_body(content(
        (RegisterRequest = "application/json"),
        (RegisterRequest = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 201, description = "Created; the user logs in at /api/token/", body = RegisterResponse),
        (status = 400, description = "A field missing, blank or invalid; the username (or, under \
                                      `USERNAME_FIELD=email`, the email) taken; or a password the policy \
                                      refuses (`password`: Django's messages)", body = BadRequest),
        (status = 404, description = "Registration is off (`ALLOW_REGISTRATION=false`)", body = ErrorDetail),
        (status = 429, description = "Too many registrations from this address within the hour; Retry-After \
                                      says when to try again", body = ErrorDetail,
         headers(("Retry-After" = u64, description = "Seconds until the next registration is allowed"))),
        (status = 413, description = "Body too large", body = ErrorDetail),
        (status = 415, description = "Neither JSON nor a form", body = ErrorDetail),
        (status = 503, description = "Database unavailable", body = ErrorDetail),
    )
)]
pub async fn register(
    State(registrations): State<Registrations>,
    ClientAddr(client): ClientAddr,
    JsonOrForm(request): JsonOrForm<RegisterRequest>,
) -> Result<Response, AppError> {
    if !registrations.allowed() {
        return Err(AppError::NotFound);
    }
    let applicant = Applicant {
        username: &request.username,
        email: request.email.as_deref().unwrap_or(""),
        password: SecretString::from(request.password),
    };
    let user = registrations.register(applicant, &client).await?;
    let created = RegisterResponse { id: user.id, username: user.username, email: user.email };
    Ok((StatusCode::CREATED, Json(created)).into_response())
}
