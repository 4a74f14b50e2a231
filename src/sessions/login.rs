//! Password logins: one credential check (throttle, argon2, the failure's audit) for every kind
//! of session a login starts, a pair of tokens or a sliding token.

use std::borrow::Cow;

use secrecy::SecretString;

use super::{AuthError, IssueError, Result, Sessions, TokenPair};
use crate::{
    config::UsernameField,
    domain::{AuditEvent, AuditKind, User, username},
    store::SessionOrigin,
};

/// Django's `EmailField` bound, and RFC 5321's on a forward path.
const EMAIL_MAX_CHARS: usize = 254;

impl Sessions {
    /// `POST /api/token/`. `username` is an email with `USERNAME_FIELD=email`.
    pub async fn login(&self, username: &str, password: SecretString, client: &str) -> Result<TokenPair> {
        let user = self.check_credentials(username, password, client).await?;
        let event = AuditEvent::new(AuditKind::LoginOk).user(&user).client(client);
        let origin = SessionOrigin { password_hash: user.password_hash.as_deref(), ..SessionOrigin::default() };
        logged_in(self.start_session(&user, origin, &event).await)
    }

    /// The active user a login's credentials name, for every kind of login. Throttled before the
    /// password is checked, so a throttled attempt costs no argon2 (only the user's lookup, which
    /// says under what name failures count); a failure is counted and audited.
    pub(super) async fn check_credentials(&self, username: &str, password: SecretString, client: &str) -> Result<User> {
        // No such user can exist: refused before the database (no audit row, no throttle row
        // grows from attacker-chosen megabytes). Nothing is learnt from how fast.
        if username.chars().count() > self.login_name_max_chars() {
            metrics::counter!("tokensmith_logins_total", "result" => "failed").increment(1);
            return Err(AuthError::InvalidCredentials);
        }
        let user = self.user_to_log_in(username).await?;
        let throttled_name = self.throttled_name(username, user.as_ref());
        let attempt = self.throttle.reserve(&throttled_name, client).await?;
        let hash = user.as_ref().and_then(|u| u.password_hash.as_deref());
        let password_ok = self.passwords.verify(password, hash).await?;
        let user = match user {
            Some(user) if password_ok && user.is_active => user,
            other => {
                // The attempt's reservation stays: it is the failure the throttle counts.
                metrics::counter!("tokensmith_logins_total", "result" => "failed").increment(1);
                let mut event = AuditEvent::new(AuditKind::LoginFailed).username(username).client(client);
                event.user_id = other.map(|u| u.id);
                self.audit(event).await?;
                return Err(AuthError::InvalidCredentials);
            }
        };
        self.throttle.succeeded(attempt, &throttled_name).await?;
        Ok(user)
    }

    /// What failures are counted under. An email matches ignoring case, and the database's idea
    /// of case (PostgreSQL folds `İ` to `i`) is not Rust's: the failures against a user are
    /// counted under that user's own email, however the attempt spelled it.
    fn throttled_name<'a>(&self, given: &'a str, user: Option<&User>) -> Cow<'a, str> {
        match (self.settings.tokens.username_field, user) {
            (UsernameField::Username, _) => Cow::Borrowed(given),
            (UsernameField::Email, Some(user)) => Cow::Owned(user.email.to_lowercase()),
            (UsernameField::Email, None) => Cow::Owned(given.to_lowercase()),
        }
    }

    fn login_name_max_chars(&self) -> usize {
        match self.settings.tokens.username_field {
            UsernameField::Username => username::MAX_CHARS,
            UsernameField::Email => EMAIL_MAX_CHARS,
        }
    }

    /// The user a login names: by username, or by email ignoring case. An email two users share
    /// names nobody (account creation keeps emails unique under `USERNAME_FIELD=email`, but
    /// users made before the switch may share one).
    async fn user_to_log_in(&self, name: &str) -> Result<Option<User>> {
        Ok(match self.settings.tokens.username_field {
            UsernameField::Username => self.store.user_by_username(name).await?,
            UsernameField::Email => {
                let mut users = self.store.password_users_by_email(name).await?;
                if users.len() == 1 { users.pop() } else { None }
            }
        })
    }
}

/// A login's answer: a session that could not start because the password changed meanwhile is
/// refused as a wrong password would be.
pub(super) fn logged_in<T>(issued: Result<T, IssueError>) -> Result<T> {
    match issued {
        Ok(issued) => {
            metrics::counter!("tokensmith_logins_total", "result" => "ok").increment(1);
            Ok(issued)
        }
        Err(IssueError::PasswordChanged) => {
            metrics::counter!("tokensmith_logins_total", "result" => "failed").increment(1);
            Err(AuthError::InvalidCredentials)
        }
        Err(e) => Err(e.into()),
    }
}
