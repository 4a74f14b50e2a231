//! What the rest of the crate talks about: users, usernames, organizations, what a provider says
//! about a user, and audit events. A leaf: it uses nothing of the crate, so the store, the
//! services and the HTTP layer can all share these types without depending on each other.

mod audit;
mod claims;
mod email;
pub mod django;
pub mod username;

use serde::Serialize;

/// Django's `EmailField` bound, and RFC 5321's on a forward path.
pub const EMAIL_MAX_CHARS: usize = 254;

pub use audit::{AuditEvent, AuditKind};
pub use claims::{CustomClaims, GROUP_NAME_MAX_CHARS, GroupName, InvalidClaims, InvalidGroupName, MAX_GROUPS_PER_USER};
pub use email::is_valid_email;
pub use username::{InvalidUsername, Username};

/// A local user, as Django's user model names the fields.
#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    #[serde(skip)]
    pub password_hash: Option<String>,
    pub is_active: bool,
    pub is_staff: bool,
    pub is_superuser: bool,
    pub created_at: i64,
    pub last_login: Option<i64>,
    /// Merged into the user's access tokens.
    #[sqlx(try_from = "String")]
    pub custom_claims: CustomClaims,
}

/// The organization active in an external session, carried into local access tokens.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Organization {
    pub id: String,
    pub role: Option<String>,
    pub slug: Option<String>,
}

/// What an identity provider says about a user; empty strings where it says nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExternalProfile {
    pub username: Option<String>,
    /// Only a verified address.
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    /// The provider's `updated_at` in ms (0 when unknown): older updates never overwrite newer.
    pub updated_at_ms: i64,
    /// `(is_staff, is_superuser)` as the provider's roles make them; `None` when no roles are
    /// mapped or the provider said nothing about them, which leaves the flags as they are.
    pub roles: Option<(bool, bool)>,
    /// When `roles` were the provider's, in ms on its clock: a user object's `updated_at`, a
    /// Clerk session token's `iat`. Roles older than those last applied never overwrite them, so
    /// an old session token cannot bring back a role a webhook took away. `None`: no order (a
    /// configured issuer's tokens, which nothing else sets roles against), applied as they come.
    pub roles_as_of_ms: Option<i64>,
    /// The existing local user the provider says this is (Clerk's `external_id`, which only the
    /// operator can set, with Clerk's secret key): an identity not linked yet is linked to it
    /// instead of a new user. Never derived from an email.
    pub local_user_id: Option<i64>,
    /// Refused only by the provider's lockout after failed sign-ins (Clerk's `locked`, not
    /// `banned`): temporary, and anyone who knows the user's identifier can cause it. It does not
    /// deactivate a user who had a local account before the link, whose password login and
    /// sessions are not the provider's to end.
    pub locked_out: bool,
}
