//! Every service's errors into `AppError`: which status and body each refusal gets, in one
//! place per service, exhaustively, so a new refusal cannot reach a client without a decision.

use super::{AppError, PERMISSION_DENIED};
use crate::{
    accounts::{AccountError, ResetError},
    admin::AdminError,
    exchange::ExchangeError,
    external::ExternalError,
    http::{error::BearerError, extract::BodyError},
    passwords::PasswordError,
    sessions::{AuthError, IssueError},
    store::StoreError,
    throttle::ThrottleError,
    tokens::TokenError,
    webhooks::WebhookError,
};

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
            AccountError::EmailRequired => Self::field("email", "This field is required."),
            AccountError::InvalidGroupName(e) => Self::field("name", &group_name_message(&e)),
            AccountError::GroupTaken(_) => Self::field("name", "group with this name already exists."),
            AccountError::InvalidClaims(e) => Self::field("claims", &e.to_string()),
            AccountError::TooManyGroups => Self::field("groups", &e.to_string()),
            AccountError::WeakPassword(rejected) => Self::field_messages("password", rejected.0),
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

impl From<ResetError> for AppError {
    fn from(e: ResetError) -> Self {
        match e {
            ResetError::Disabled => Self::NotFound,
            ResetError::InvalidToken => Self::field("token", "Invalid or expired token."),
            // The field is `new_password` here.
            ResetError::Account(AccountError::WeakPassword(rejected)) => {
                Self::field_messages("new_password", rejected.0)
            }
            ResetError::Account(e) => e.into(),
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
