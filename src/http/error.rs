//! The one error type of the HTTP API, and the one mapping into it from every service's
//! errors. Every body is JSON, shaped as djangorestframework and simplejwt shape theirs, so
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

use super::{HttpSettings, extract::BodyError};
use crate::{
    accounts::AccountError,
    admin::AdminError,
    exchange::ExchangeError,
    external::{ExternalError, Rejection, svix::SignatureError},
    passwords::PasswordError,
    sessions::{AuthError, BearerRefusal, IssueError},
    store::StoreError,
    throttle::ThrottleError,
    tokens::TokenError,
    webhooks::WebhookError,
};

/// DRF's `PermissionDenied` detail.
const PERMISSION_DENIED: &str = "You do not have permission to perform this action.";

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

    /// Several refusals as one: their field errors together; anything else wins as it is.
    fn merged(errors: impl Iterator<Item = AppError>) -> Self {
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

impl From<ThrottleError> for AppError {
    fn from(e: ThrottleError) -> Self {
        match e {
            ThrottleError::Throttled { retry_after } => Self::Throttled(retry_after),
            ThrottleError::Store(e) => e.into(),
        }
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(source) => Self::Unavailable(source.to_string()),
            StoreError::Failed(source) => Self::Internal(source.to_string()),
        }
    }
}

impl From<PasswordError> for AppError {
    fn from(e: PasswordError) -> Self {
        Self::internal(e)
    }
}

impl From<IssueError> for AppError {
    fn from(e: IssueError) -> Self {
        match e {
            IssueError::Signing(e) => Self::internal(format!("signing failed: {e}")),
            IssueError::PasswordChanged => Self::InvalidCredentials,
            IssueError::Store(e) => e.into(),
        }
    }
}

impl From<AuthError> for AppError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::InvalidCredentials => Self::InvalidCredentials,
            AuthError::Throttle(e) => e.into(),
            AuthError::Token(e) => Self::Token(e),
            AuthError::NoActiveAccountForToken => Self::NoActiveAccountForToken,
            AuthError::Bearer(refusal) => Self::Bearer(BearerError::Refused(refusal)),
            AuthError::Issue(e) => e.into(),
            AuthError::Store(e) => e.into(),
            AuthError::Passwords(e) => e.into(),
        }
    }
}

impl From<AccountError> for AppError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::WrongPassword => {
                Self::field("current_password", "Your current password was entered incorrectly.")
            }
            AccountError::InvalidUsername(e) => Self::field("username", username_message(&e.0)),
            AccountError::InvalidEmail(_) => Self::field("email", "Enter a valid email address."),
            AccountError::UsernameTaken(_) => Self::field("username", "A user with that username already exists."),
            AccountError::NoSuchUser(_) | AccountError::NoSuchGroup(_) => Self::NotFound,
            AccountError::EmailTaken(_) => Self::field("email", "A user with that email already exists."),
            AccountError::InvalidGroupName(e) => Self::field("name", &group_name_message(&e)),
            AccountError::GroupTaken(_) => Self::field("name", "group with this name already exists."),
            AccountError::InvalidClaims(e) => Self::field("claims", &e.to_string()),
            AccountError::TooManyGroups => Self::field("groups", &e.to_string()),
            AccountError::WeakPassword(rejected) => {
                Self::Validation([("password".to_owned(), json!(rejected.0))].into_iter().collect())
            }
            AccountError::SuperuserOnly => Self::Forbidden(PERMISSION_DENIED.to_owned()),
            AccountError::NameTooLong(field) => {
                Self::field(field, "Ensure this field has no more than 150 characters.")
            }
            // DRF's SlugRelatedField.
            AccountError::UnknownGroup(name) => {
                Self::field("groups", &format!("Object with name={name} does not exist."))
            }
            AccountError::Several(refusals) => Self::merged(refusals.into_iter().map(Self::from)),
            AccountError::IdentityLinkedElsewhere { .. } | AccountError::UserLinkedElsewhere { .. } => {
                Self::ExternalAccountConflict
            }
            AccountError::NotLinked(_) => Self::NotFound,
            AccountError::Throttle(e) => e.into(),
            // Retrying makes new candidate usernames.
            AccountError::NoFreeUsername => Self::Unavailable(e.to_string()),
            AccountError::Store(e) => e.into(),
            AccountError::Passwords(e) => e.into(),
        }
    }
}

impl From<AdminError> for AppError {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::Forbidden => Self::Forbidden(PERMISSION_DENIED.to_owned()),
            AdminError::SelfLockout => {
                Self::Forbidden("You cannot deactivate, delete or demote your own account.".to_owned())
            }
            AdminError::InactiveUser => Self::field("non_field_errors", "User is inactive."),
            AdminError::Account(e) => e.into(),
            AdminError::Issue(e) => e.into(),
        }
    }
}

/// DRF's words for a refused group name where it has them (Django's `Group.name` field).
fn group_name_message(error: &crate::domain::InvalidGroupName) -> String {
    let name = error.0.trim();
    if name.is_empty() {
        "This field may not be blank.".to_owned()
    } else if name.chars().count() > crate::domain::GROUP_NAME_MAX_CHARS {
        "Ensure this field has no more than 150 characters.".to_owned()
    } else {
        error.to_string()
    }
}

/// Django's words for a refused username: its field's `max_length`, then its validator.
fn username_message(username: &str) -> &'static str {
    if username.is_empty() {
        "This field may not be blank."
    } else if username.chars().count() > crate::domain::username::MAX_CHARS {
        "Ensure this field has no more than 150 characters."
    } else {
        "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters."
    }
}

impl From<ExchangeError> for AppError {
    fn from(e: ExchangeError) -> Self {
        match e {
            ExchangeError::NotConfigured | ExchangeError::UntrustedIssuer => Self::NotFound,
            ExchangeError::Refused(e) => e.into(),
            ExchangeError::Inactive => Self::NoActiveAccountForToken,
            ExchangeError::LinkedElsewhere => Self::ExternalAccountConflict,
            ExchangeError::ProfileUnavailable => Self::ExternalProfileUnavailable,
            ExchangeError::Account(e) => e.into(),
            ExchangeError::Issue(e) => e.into(),
            ExchangeError::Store(e) => e.into(),
        }
    }
}

impl From<WebhookError> for AppError {
    fn from(e: WebhookError) -> Self {
        match e {
            WebhookError::NotConfigured => Self::NotFound,
            WebhookError::Signature(reason) => Self::WebhookSignature(reason),
            WebhookError::Payload(_) => Self::Malformed,
            WebhookError::Account(e) => e.into(),
            WebhookError::Store(e) => e.into(),
        }
    }
}

impl From<BodyError> for AppError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::Fields(errors) => Self::Validation(errors),
            BodyError::JsonParse(message) => Self::JsonParse(message),
            BodyError::Malformed => Self::Malformed,
            BodyError::UnsupportedMediaType(media) => Self::UnsupportedMediaType(media),
            BodyError::TooLarge => Self::PayloadTooLarge,
        }
    }
}
