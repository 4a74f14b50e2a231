//! The one error type of the HTTP API (and, in `mapping`, the one mapping into it from every
//! service's errors). Every body is JSON, shaped as djangorestframework and simplejwt shape theirs, so
//! existing clients parse them unchanged. Causes are logged by `log_errors`, a middleware, from
//! the response's extensions: rendering an error has no side effects.

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use serde_json::{Map, Value, json};

mod mapping;

use super::HttpSettings;
use crate::{
    external::{Rejection, svix::SignatureError},
    sessions::BearerRefusal,
    tokens::TokenError,
};

/// DRF's `PermissionDenied` detail.
pub(super) const PERMISSION_DENIED: &str = "You do not have permission to perform this action.";

/// Field name → messages, as DRF reports validation errors.
pub type FieldErrors = Map<String, Value>;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("validation failed")]
    Validation(FieldErrors),
    #[error("no active account found with the given credentials")]
    InvalidCredentials,
    #[error("token refused: {0}")]
    Token(TokenError),
    /// A refresh token whose user is gone or deactivated.
    #[error("no active account for the token")]
    NoActiveAccountForToken,
    #[error("bearer authentication failed")]
    Bearer(BearerError),
    #[error("JSON parse error")]
    JsonParse(String),
    #[error("malformed request")]
    Malformed,
    #[error("unsupported media type")]
    UnsupportedMediaType(String),
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("method not allowed")]
    MethodNotAllowed(String),
    #[error("not found")]
    NotFound,
    /// A page number past the last page, or not a page number (DRF's pagination).
    #[error("invalid page")]
    InvalidPage,
    /// Refused by policy (a cookie request from a foreign origin).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// Too many failed logins: the client may try again in this many seconds.
    #[error("throttled for {0} s")]
    Throttled(u64),
    #[error("external token refused: {0}")]
    ExternalToken(Rejection),
    #[error("the identity provider's keys are unavailable")]
    ExternalKeysUnavailable,
    #[error("the identity provider's user record is unavailable")]
    ExternalProfileUnavailable,
    /// A verified provider user names (Clerk's `external_id`) a local account that is linked to
    /// another of the provider's users: an operator must sort it out.
    #[error("the local account is linked to another external user")]
    ExternalAccountConflict,
    #[error("webhook signature refused: {0}")]
    WebhookSignature(SignatureError),
    /// RFC 6749 §5.2 error bodies, for the RFC 8693 token-exchange endpoint.
    #[error("OAuth error {error}: {description}")]
    OAuth { status: StatusCode, error: &'static str, description: String },
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// Failures of `Authorization: Bearer` on protected endpoints, as simplejwt's
/// `JWTAuthentication` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BearerError {
    Missing,
    Malformed,
    Refused(BearerRefusal),
}

impl AppError {
    pub fn field(name: &str, message: &str) -> Self {
        let mut errors = FieldErrors::new();
        errors.insert(name.to_owned(), json!([message]));
        Self::Validation(errors)
    }

    /// A field refused with several messages (the password policy's, each a string).
    pub fn field_messages(name: &str, messages: Vec<String>) -> Self {
        let mut errors = FieldErrors::new();
        errors.insert(name.to_owned(), json!(messages));
        Self::Validation(errors)
    }

    /// Several refusals as one: their field errors together; anything else wins as it is.
    pub(super) fn merged(errors: impl Iterator<Item = AppError>) -> Self {
        let mut fields = FieldErrors::new();
        for error in errors {
            let Self::Validation(more) = error else { return error };
            for (name, messages) in more {
                match (fields.get_mut(&name), messages) {
                    (Some(Value::Array(known)), Value::Array(messages)) => known.extend(messages),
                    (_, messages) => {
                        fields.insert(name, messages);
                    }
                }
            }
        }
        Self::Validation(fields)
    }

    pub fn internal(error: impl std::fmt::Display) -> Self {
        Self::Internal(error.to_string())
    }

    fn status_and_body(&self) -> (StatusCode, Value) {
        use StatusCode as S;
        match self {
            Self::Validation(errors) => (S::BAD_REQUEST, Value::Object(errors.clone())),
            Self::InvalidCredentials => {
                (S::UNAUTHORIZED, json!({"detail": "No active account found with the given credentials"}))
            }
            Self::Token(e) => (S::UNAUTHORIZED, json!({"detail": e.to_string(), "code": "token_not_valid"})),
            Self::NoActiveAccountForToken => (
                S::UNAUTHORIZED,
                json!({"detail": "No active account found for the given token.", "code": "no_active_account"}),
            ),
            Self::Bearer(e) => (S::UNAUTHORIZED, bearer_body(*e)),
            Self::JsonParse(message) => (S::BAD_REQUEST, json!({"detail": format!("JSON parse error - {message}")})),
            Self::Malformed => (S::BAD_REQUEST, json!({"detail": "Malformed request."})),
            Self::UnsupportedMediaType(media) => (
                S::UNSUPPORTED_MEDIA_TYPE,
                json!({"detail": format!("Unsupported media type \"{media}\" in request.")}),
            ),
            Self::PayloadTooLarge => (S::PAYLOAD_TOO_LARGE, json!({"detail": "Request body is too large."})),
            Self::MethodNotAllowed(method) => {
                (S::METHOD_NOT_ALLOWED, json!({"detail": format!("Method \"{method}\" not allowed.")}))
            }
            Self::NotFound => (S::NOT_FOUND, json!({"detail": "Not found."})),
            Self::InvalidPage => (S::NOT_FOUND, json!({"detail": "Invalid page."})),
            Self::Forbidden(detail) => (S::FORBIDDEN, json!({"detail": detail})),
            // DRF's `Throttled` wording, singular and plural.
            Self::Throttled(wait) => (
                S::TOO_MANY_REQUESTS,
                json!({"detail": format!("Request was throttled. Expected available in {wait} second{}.", if *wait == 1 { "" } else { "s" })}),
            ),
            Self::ExternalToken(reason) => {
                (S::UNAUTHORIZED, json!({"detail": reason.to_string(), "code": "external_token_not_valid"}))
            }
            Self::ExternalKeysUnavailable => (
                S::SERVICE_UNAVAILABLE,
                json!({"detail": "The identity provider's signing keys cannot be fetched; try again later.", "code": "external_keys_unavailable"}),
            ),
            Self::ExternalProfileUnavailable => (
                S::SERVICE_UNAVAILABLE,
                json!({"detail": "The identity provider's record of this user cannot be read; try again later.", "code": "external_profile_unavailable"}),
            ),
            Self::ExternalAccountConflict => (
                S::CONFLICT,
                json!({"detail": "The local account this user is assigned to is linked to another user of the identity provider.", "code": "external_account_conflict"}),
            ),
            Self::WebhookSignature(reason) => (
                S::BAD_REQUEST,
                json!({"detail": format!("Webhook signature is invalid: {reason}."), "code": "webhook_signature_invalid"}),
            ),
            Self::OAuth { status, error, description } => {
                (*status, json!({"error": error, "error_description": description}))
            }
            Self::Unavailable(_) => (
                S::SERVICE_UNAVAILABLE,
                json!({"detail": "Service temporarily unavailable, try again later.", "code": "service_unavailable"}),
            ),
            Self::Internal(_) => (S::INTERNAL_SERVER_ERROR, json!({"detail": "A server error occurred."})),
        }
    }
}

fn bearer_body(error: BearerError) -> Value {
    match error {
        BearerError::Missing => json!({"detail": "Authentication credentials were not provided."}),
        BearerError::Malformed => json!({
            "detail": "Authorization header must contain two space-delimited values",
            "code": "bad_authorization_header",
        }),
        BearerError::Refused(BearerRefusal::Token(e)) => json!({
            "detail": "Given token not valid for any token type",
            "code": "token_not_valid",
            "messages": [{"token_class": "AccessToken", "token_type": "access", "message": e.to_string()}],
        }),
        BearerError::Refused(BearerRefusal::Sliding(e)) => json!({
            "detail": "Given token not valid for any token type",
            "code": "token_not_valid",
            "messages": [{"token_class": "SlidingToken", "token_type": "sliding", "message": e.to_string()}],
        }),
        BearerError::Refused(BearerRefusal::UserNotFound) => {
            json!({"detail": "User not found", "code": "user_not_found"})
        }
        BearerError::Refused(BearerRefusal::UserInactive) => {
            json!({"detail": "User is inactive", "code": "user_inactive"})
        }
    }
}

/// The cause of a 5xx, carried in the response's extensions for `log_errors`.
#[derive(Clone)]
struct ErrorCause {
    unavailable: bool,
    cause: String,
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, body) = self.status_and_body();
        let mut response = (status, axum::Json(body)).into_response();
        match self {
            Self::Internal(cause) => {
                response.extensions_mut().insert(ErrorCause { unavailable: false, cause });
            }
            Self::Unavailable(cause) => {
                response.extensions_mut().insert(ErrorCause { unavailable: true, cause });
            }
            Self::Throttled(wait) => {
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(wait));
            }
            _ => {}
        }
        response
    }
}

/// Every 401 names the scheme to authenticate with: the first of `AUTH_HEADER_TYPES`
/// (`Bearer realm="api"` by default), as simplejwt's `authenticate_header` does.
pub async fn challenge(State(settings): State<Arc<HttpSettings>>, req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    if response.status() == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, settings.challenge.clone());
    }
    response
}

/// Logs the cause of every failed request (never sent to the client) and takes it off the response.
pub async fn log_errors(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    if let Some(ErrorCause { unavailable, cause }) = response.extensions_mut().remove::<ErrorCause>() {
        if unavailable {
            tracing::warn!(%cause, "database unavailable");
        } else {
            tracing::error!(%cause, "request failed");
        }
    }
    response
}
