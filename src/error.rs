//! The one error type of the HTTP API. Every body is JSON, shaped as djangorestframework
//! and simplejwt shape theirs, so existing clients parse them unchanged.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Map, Value, json};

use crate::{
    auth::tokens::TokenError,
    external::{ExternalError, Rejection, svix::SignatureError},
};

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
    Token(TokenError),
    UserNotFound,
    UserInactive,
}

impl AppError {
    pub fn field(name: &str, message: &str) -> Self {
        let mut errors = FieldErrors::new();
        errors.insert(name.to_owned(), json!([message]));
        Self::Validation(errors)
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
        BearerError::Token(e) => json!({
            "detail": "Given token not valid for any token type",
            "code": "token_not_valid",
            "messages": [{"token_class": "AccessToken", "token_type": "access", "message": e.to_string()}],
        }),
        BearerError::UserNotFound => json!({"detail": "User not found", "code": "user_not_found"}),
        BearerError::UserInactive => json!({"detail": "User is inactive", "code": "user_inactive"}),
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, body) = self.status_and_body();
        match &self {
            // The cause goes to the log, never to the client.
            Self::Internal(cause) => tracing::error!(%cause, "request failed"),
            Self::Unavailable(cause) => tracing::warn!(%cause, "database unavailable"),
            _ => {}
        }
        let mut response = (status, axum::Json(body)).into_response();
        if let Self::Throttled(wait) = &self {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(*wait));
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"api\""));
        }
        response
    }
}

impl From<TokenError> for AppError {
    fn from(e: TokenError) -> Self {
        Self::Token(e)
    }
}

impl From<ExternalError> for AppError {
    fn from(e: ExternalError) -> Self {
        match e {
            ExternalError::Rejected(reason) => Self::ExternalToken(reason),
            ExternalError::KeysUnavailable => Self::ExternalKeysUnavailable,
        }
    }
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            // The database is down, saturated, busy or cut off mid-handshake (a connection closed
            // during TLS negotiation reads as a protocol error): the caller may retry.
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => Self::Unavailable(e.to_string()),
            sqlx::Error::Database(db) if db.code().as_deref() == Some("5") => Self::Unavailable(e.to_string()),
            _ => Self::Internal(e.to_string()),
        }
    }
}

impl From<crate::auth::passwords::PasswordError> for AppError {
    fn from(e: crate::auth::passwords::PasswordError) -> Self {
        Self::internal(e)
    }
}

impl From<jsonwebtoken::errors::Error> for AppError {
    fn from(e: jsonwebtoken::errors::Error) -> Self {
        Self::internal(format!("signing failed: {e}"))
    }
}
