//! Password logins: one credential check (throttle, the password hash, the failure's audit) for
//! every kind of session a login starts, a pair of tokens or a sliding token, and the upgrade of
//! an outdated hash (one of Django's, moved over with its user) written with the session.

use std::borrow::Cow;

use secrecy::SecretString;

use super::{AuthError, IssueError, Result, Sessions, TokenPair};
use crate::{
    config::UsernameField,
    domain::{AuditEvent, AuditKind, EMAIL_MAX_CHARS, User, username},
    passwords::Verdict,
    store::SessionOrigin,
};

/// A login whose password matched: the user as read for the check and, when the stored hash was
/// outdated, the hash that replaces it. The password stays (secret) for the one recheck that a
/// lost upgrade race needs.
pub(super) struct CheckedLogin {
    pub(super) user: User,
    upgrade: Option<Upgrade>,
    password: SecretString,
    rechecked: bool,
}

/// A stored hash's replacement, and what the login's audit event says of it.
struct Upgrade {
    hash: String,
    detail: String,
}

impl CheckedLogin {
    fn new(user: User, verdict: Verdict, password: SecretString, rechecked: bool) -> Self {
        let upgrade = match verdict {
            Verdict::MatchedOutdated { rehash, from } => {
                Some(Upgrade { hash: rehash, detail: format!("password_upgraded from {from}") })
            }
            Verdict::Matched | Verdict::Mismatch => None,
        };
        Self { user, upgrade, password, rechecked }
    }

    /// The session starts only over the hash the login checked, and stores its upgrade.
    pub(super) fn origin<'a>(&'a self, client: &'a str) -> SessionOrigin<'a> {
        SessionOrigin {
            client_addr: Some(client),
            password_hash: self.user.password_hash.as_deref(),
            upgraded_password_hash: self.upgrade.as_ref().map(|u| u.hash.as_str()),
            ..SessionOrigin::default()
        }
    }

    /// `login_ok`; an upgrade is said in its detail (`password_upgraded from pbkdf2_sha256`):
    /// it is not a password change, and ends no session.
    pub(super) fn event<'a>(&'a self, client: &'a str) -> AuditEvent<'a> {
        let event = AuditEvent::new(AuditKind::LoginOk).user(&self.user).client(client);
        match &self.upgrade {
            Some(upgrade) => event.detail(&upgrade.detail),
            None => event,
        }
    }
}

impl Sessions {
    /// `POST /api/token/`. `username` is an email with `USERNAME_FIELD=email`.
    pub async fn login(&self, username: &str, password: SecretString, client: &str) -> Result<TokenPair> {
        let mut login = self.check_credentials(username, password, client).await?;
        loop {
            let issued = self.start_session(&login.user, login.origin(client), &login.event(client)).await;
            if let Some(pair) = self.settle_login(issued, &mut login).await? {
                return Ok(pair);
            }
        }
    }

    /// The active user a login's credentials name, for every kind of login. Throttled before the
    /// password is checked, so a throttled attempt costs no hashing (only the user's lookup,
    /// which says under what name failures count); a failure is counted and audited. Unknown
    /// users, wrong passwords and imported hashes take this same path (one lookup, one
    /// reservation, one hashing job, one audit row): only the stored hash's own cost differs.
    pub(super) async fn check_credentials(
        &self,
        username: &str,
        password: SecretString,
        client: &str,
    ) -> Result<CheckedLogin> {
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
        let verdict = self.passwords.verify(password.clone(), hash).await?;
        let user = match user {
            Some(user) if verdict.matched() && user.is_active => user,
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
        Ok(CheckedLogin::new(user, verdict, password, false))
    }

    /// The answer to a login once its session started, or `None` to start it again. Two logins
    /// of a user whose hash is outdated both upgrade it: the one that loses finds the hash it
    /// checked gone, checks the password once more against the hash that won (the same
    /// password, so it matches) and starts again over that one. Anything else that replaced the
    /// hash meanwhile was a password change: refused as a wrong password is.
    pub(super) async fn settle_login<T>(
        &self,
        issued: Result<T, IssueError>,
        login: &mut CheckedLogin,
    ) -> Result<Option<T>> {
        let lost_upgrade = matches!(issued, Err(IssueError::PasswordChanged)) && login.upgrade.is_some();
        if lost_upgrade
            && !login.rechecked
            && let Some(again) = self.recheck(login).await?
        {
            *login = again;
            return Ok(None);
        }
        logged_in(issued).map(Some)
    }

    /// After losing the race to upgrade the hash: the user as stored now, if the password
    /// matches the hash stored now.
    async fn recheck(&self, login: &CheckedLogin) -> Result<Option<CheckedLogin>> {
        let Some(user) = self.store.user_by_id(login.user.id).await?.filter(|u| u.is_active) else {
            return Ok(None);
        };
        let verdict = self.passwords.verify(login.password.clone(), user.password_hash.as_deref()).await?;
        Ok(verdict.matched().then(|| CheckedLogin::new(user, verdict, login.password.clone(), true)))
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
fn logged_in<T>(issued: Result<T, IssueError>) -> Result<T> {
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
