//! Security events: who did what, from where, and when. Never a secret.

use std::borrow::Cow;

/// What happened. Stored by name; the names are what `tokensmith audit tail` shows and what
/// log pipelines match on, so they never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditKind {
    LoginOk,
    LoginFailed,
    LoginThrottled,
    Refresh,
    RefreshReuseDetected,
    Blacklist,
    RevokeAll,
    PasswordChanged,
    PasswordSet,
    UserCreated,
    UserActivated,
    UserDeactivated,
    KeyRotated,
    GroupCreated,
    /// A user joined or left a group.
    UserGroupsChanged,
    UserClaimsChanged,
    /// A provider's token was exchanged for a local session (`clerk_exchange_ok`).
    ExchangeOk {
        provider: &'static str,
    },
    /// A provider's token, or its user, was refused (`clerk_exchange_failed`).
    ExchangeFailed {
        provider: &'static str,
    },
    WebhookRejected,
    WebhookApplied,
    /// An identity provider's roles changed a user's `is_staff` / `is_superuser`.
    RolesChanged,
    /// `tokensmith import django` wrote users, groups and sessions (the detail has the counts).
    DjangoImported,
    /// An existing local user was linked to a provider's user (its `external_id`, or by hand).
    IdentityLinked,
    /// An operator unlinked a local user from its provider's user.
    IdentityUnlinked,
    /// A provider's user named (by `external_id`) a local user linked to another of its users:
    /// not linked, and no new user made for it.
    IdentityLinkRefused,
    /// An admin changed a user's profile or flags (the detail names the fields).
    UserUpdated,
    UserDeleted,
    GroupDeleted,
    /// An admin ended one or all of a user's sessions.
    SessionsEnded,
    /// A superuser was given a session of another user (`POST /api/admin/users/{id}/tokens/`).
    AdminTokensIssued,
    /// A password-reset mail was made for the user (never the token).
    PasswordResetRequested,
    /// The user set a new password with a reset token.
    PasswordResetCompleted,
}

impl AuditKind {
    pub fn name(self) -> Cow<'static, str> {
        Cow::Borrowed(match self {
            Self::LoginOk => "login_ok",
            Self::LoginFailed => "login_failed",
            Self::LoginThrottled => "login_throttled",
            Self::Refresh => "refresh",
            Self::RefreshReuseDetected => "refresh_reuse_detected",
            Self::Blacklist => "blacklist",
            Self::RevokeAll => "revoke_all",
            Self::PasswordChanged => "password_changed",
            Self::PasswordSet => "password_set",
            Self::UserCreated => "user_created",
            Self::UserActivated => "user_activated",
            Self::UserDeactivated => "user_deactivated",
            Self::KeyRotated => "key_rotated",
            Self::GroupCreated => "group_created",
            Self::UserGroupsChanged => "user_groups_changed",
            Self::UserClaimsChanged => "user_claims_changed",
            Self::ExchangeOk { provider } => return Cow::Owned(format!("{provider}_exchange_ok")),
            Self::ExchangeFailed { provider } => return Cow::Owned(format!("{provider}_exchange_failed")),
            Self::WebhookRejected => "webhook_rejected",
            Self::WebhookApplied => "webhook_applied",
            Self::RolesChanged => "roles_changed",
            Self::DjangoImported => "django_imported",
            Self::IdentityLinked => "identity_linked",
            Self::IdentityUnlinked => "identity_unlinked",
            Self::IdentityLinkRefused => "identity_link_refused",
            Self::UserUpdated => "user_updated",
            Self::UserDeleted => "user_deleted",
            Self::GroupDeleted => "group_deleted",
            Self::SessionsEnded => "sessions_ended",
            Self::PasswordResetRequested => "password_reset_requested",
            Self::PasswordResetCompleted => "password_reset_completed",
            Self::AdminTokensIssued => "admin_tokens_issued",
        })
    }
}

/// An event about to be recorded.
#[derive(Debug, Clone)]
pub struct AuditEvent<'a> {
    pub kind: AuditKind,
    pub user_id: Option<i64>,
    pub username: Option<&'a str>,
    pub client_addr: Option<&'a str>,
    pub detail: &'a str,
    /// The admin who did it (the user fields name whom it was done to).
    pub actor_id: Option<i64>,
    pub actor_username: Option<&'a str>,
}

impl<'a> AuditEvent<'a> {
    pub fn new(kind: AuditKind) -> Self {
        Self {
            kind,
            user_id: None,
            username: None,
            client_addr: None,
            detail: "",
            actor_id: None,
            actor_username: None,
        }
    }

    /// The user it is about: id and username.
    pub fn user(self, user: &'a super::User) -> Self {
        self.user_id(user.id).username(&user.username)
    }

    pub fn user_id(mut self, id: i64) -> Self {
        self.user_id = Some(id);
        self
    }

    /// At most a username's worth of it is recorded: the name may be anyone's words.
    pub fn username(mut self, username: &'a str) -> Self {
        self.username = Some(prefix(username, MAX_USERNAME_CHARS));
        self
    }

    pub fn client(mut self, addr: &'a str) -> Self {
        self.client_addr = Some(addr);
        self
    }

    /// The admin acting on the user.
    pub fn actor(mut self, admin: &'a super::User) -> Self {
        self.actor_id = Some(admin.id);
        self.actor_username = Some(prefix(&admin.username, MAX_USERNAME_CHARS));
        self
    }

    pub fn detail(mut self, detail: &'a str) -> Self {
        self.detail = prefix(detail, MAX_DETAIL_CHARS);
        self
    }
}

/// Bounds on attacker-chosen text in an audit row: each costs disk until `AUDIT_RETENTION`.
/// No username is longer than the username rule allows.
const MAX_USERNAME_CHARS: usize = super::username::MAX_CHARS;
const MAX_DETAIL_CHARS: usize = 500;

/// The first `max` characters of `text`.
fn prefix(text: &str, max: usize) -> &str {
    text.char_indices().nth(max).map_or(text, |(end, _)| &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_text_is_bounded() {
        let long = "é".repeat(1000);
        let event = AuditEvent::new(AuditKind::LoginFailed).username(&long).detail(&long);
        assert_eq!(event.username.unwrap().chars().count(), 150);
        assert_eq!(event.detail.chars().count(), 500);
        assert_eq!(prefix("short", 150), "short");
    }

    #[test]
    fn names_are_the_stored_ones() {
        assert_eq!(AuditKind::RefreshReuseDetected.name(), "refresh_reuse_detected");
        assert_eq!(AuditKind::ExchangeOk { provider: "clerk" }.name(), "clerk_exchange_ok");
        assert_eq!(AuditKind::ExchangeFailed { provider: "auth0" }.name(), "auth0_exchange_failed");
    }
}
