//! A Django + simplejwt deployment as `tokensmith import django` reads it: users, groups and
//! simplejwt's outstanding tokens, whichever source (dumpdata JSON or the database) they came
//! from. And the rule for importing again: only what changed in Django since the last import
//! is applied, so a later import never undoes what was done in tokensmith meanwhile (a password
//! set here or upgraded at login, a deactivation, a group left).

mod records;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use records::{
    BlacklistedRecord, DjangoRecords, GroupRecord, GroupRef, OutstandingRecord, RecordError, UserRecord, parse_datetime,
};

/// Django's `max_length`s (auth.User, auth.Group, OutstandingToken.jti): longer is malformed.
/// (An email's is `domain::EMAIL_MAX_CHARS`.)
pub const NAME_MAX_CHARS: usize = 150;
pub const PASSWORD_MAX_CHARS: usize = 128;
pub const JTI_MAX_CHARS: usize = 255;

/// One `auth.user`, its groups by name (sorted). Stored as JSON after each import: the next
/// import compares Django's record with it, field by field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DjangoUser {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    /// Django's `password` field as it is: `algorithm$…`, or `!…` / empty for no password.
    pub password: String,
    pub is_active: bool,
    pub is_staff: bool,
    pub is_superuser: bool,
    /// Unix seconds.
    pub date_joined: i64,
    pub last_login: Option<i64>,
    pub groups: Vec<String>,
}

impl DjangoUser {
    /// The hash to store: none when Django marks the password unusable (`!…`, or empty).
    pub fn password_hash(&self) -> Option<&str> {
        Some(self.password.as_str()).filter(|p| !p.is_empty() && !p.starts_with('!'))
    }

    /// The record as kept for the next import to compare with: the password field only as a
    /// SHA-256 fingerprint, which tells whether it changed in Django but is no hash of the
    /// password. A kept copy of Django's hash (salted MD5, say) would outlive its upgrade to
    /// argon2id at the first login, and undo that upgrade for anyone who reads the database.
    pub fn remembered(&self) -> DjangoUser {
        DjangoUser { password: password_fingerprint(&self.password), ..self.clone() }
    }
}

/// `sha256:` and the hex SHA-256 of Django's password field. Django's hashes carry a random salt
/// of their own, so the fingerprint cannot be computed from a guessed password.
fn password_fingerprint(password: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(password.as_bytes());
    format!("sha256:{}", digest.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// What kind of simplejwt token an outstanding record is: a refresh token, or a sliding token
/// (a session of its own, whose jti it keeps at every refresh).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutstandingKind {
    Refresh,
    Sliding,
}

/// One of simplejwt's outstanding tokens, as it is carried over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DjangoToken {
    /// The record's primary key, to name it in errors.
    pub pk: i64,
    pub jti: String,
    pub user_id: i64,
    pub kind: OutstandingKind,
    pub issued_at: i64,
    /// When it stops refreshing: a refresh token's `exp`, a sliding token's `refresh_exp`.
    pub expires_at: i64,
    pub blacklisted_at: Option<i64>,
}

/// Everything one import brings, checked: every group a user names exists, every token's user
/// is among the users.
#[derive(Debug, Clone, Default)]
pub struct DjangoSnapshot {
    pub groups: Vec<String>,
    pub users: Vec<DjangoUser>,
    pub tokens: Vec<DjangoToken>,
    /// Outstanding tokens left behind: expired, or their user deleted in Django.
    pub tokens_skipped: u64,
}

/// What changed in Django since a user's last import: each `Some` is applied, the rest of the
/// tokensmith user is left as it is.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct UserUpdate<'a> {
    pub username: Option<&'a str>,
    pub email: Option<&'a str>,
    pub first_name: Option<&'a str>,
    pub last_name: Option<&'a str>,
    pub is_active: Option<bool>,
    pub is_staff: Option<bool>,
    pub is_superuser: Option<bool>,
    pub date_joined: Option<i64>,
    pub last_login: Option<i64>,
    /// `Some(None)`: Django made the password unusable.
    pub password_hash: Option<Option<&'a str>>,
    pub groups_joined: Vec<&'a str>,
    pub groups_left: Vec<&'a str>,
}

impl DjangoUser {
    /// The changes from `previous` (this user as last imported) to `self`; `None` when there
    /// are none. A later `last_login` in Django counts; an earlier one (a login here since) not.
    pub fn update_since<'a>(&'a self, previous: &'a DjangoUser) -> Option<UserUpdate<'a>> {
        fn changed<'a, T: PartialEq + ?Sized>(new: &'a T, old: &T) -> Option<&'a T> {
            (new != old).then_some(new)
        }
        let update = UserUpdate {
            username: changed(self.username.as_str(), &previous.username),
            email: changed(self.email.as_str(), &previous.email),
            first_name: changed(self.first_name.as_str(), &previous.first_name),
            last_name: changed(self.last_name.as_str(), &previous.last_name),
            is_active: changed(&self.is_active, &previous.is_active).copied(),
            is_staff: changed(&self.is_staff, &previous.is_staff).copied(),
            is_superuser: changed(&self.is_superuser, &previous.is_superuser).copied(),
            date_joined: changed(&self.date_joined, &previous.date_joined).copied(),
            last_login: self.last_login.filter(|new| previous.last_login.is_none_or(|old| *new > old)),
            password_hash: password_changed(&self.password, &previous.password).then(|| self.password_hash()),
            groups_joined: difference(&self.groups, &previous.groups),
            groups_left: difference(&previous.groups, &self.groups),
        };
        (update != UserUpdate::default()).then_some(update)
    }
}

impl UserUpdate<'_> {
    /// A new password or a deactivation in Django ends the user's sessions here, as the same
    /// change made in tokensmith does.
    pub fn ends_sessions(&self) -> bool {
        self.password_hash.is_some() || self.is_active == Some(false)
    }
}

/// What an import did (or, in a dry run, would do), for its one line of output and its audit
/// event.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ImportCounts {
    pub users_created: u64,
    pub users_updated: u64,
    pub users_unchanged: u64,
    /// Imported before and deleted in tokensmith since: not brought back.
    pub users_deleted_here: u64,
    /// Imported before and gone from Django since: left as they are here (the operator decides).
    pub users_gone_from_django: u64,
    pub groups_created: u64,
    /// Outstanding tokens that became sessions here, live or revoked (blacklisted in Django, or
    /// issued before the user's sessions were last ended here).
    pub sessions_created: u64,
    /// Sessions carried over before and blacklisted in Django since: revoked here now.
    pub sessions_blacklisted: u64,
    pub sessions_unchanged: u64,
    /// Outstanding tokens past their expiry, or of users Django or tokensmith deleted.
    pub tokens_skipped: u64,
}

impl fmt::Display for ImportCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "users: {} created, {} updated, {} unchanged, {} deleted here (kept deleted), {} gone from Django (kept); \
             groups: {} created; \
             sessions: {} created, {} blacklisted since, {} unchanged, {} tokens skipped (expired or userless)",
            self.users_created,
            self.users_updated,
            self.users_unchanged,
            self.users_deleted_here,
            self.users_gone_from_django,
            self.groups_created,
            self.sessions_created,
            self.sessions_blacklisted,
            self.sessions_unchanged,
            self.tokens_skipped,
        )
    }
}

/// Whether Django's password field `now` differs from the one last imported, `kept` as
/// `DjangoUser::remembered` keeps it (or as it is, in a record kept before fingerprints).
fn password_changed(now: &str, kept: &str) -> bool {
    now != kept && password_fingerprint(now) != kept
}

/// The names in `a` that are not in `b`.
fn difference<'a>(a: &'a [String], b: &[String]) -> Vec<&'a str> {
    a.iter().filter(|name| !b.contains(name)).map(String::as_str).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> DjangoUser {
        DjangoUser {
            id: 7,
            username: "alice".into(),
            email: "alice@example.com".into(),
            first_name: "Alice".into(),
            last_name: "Liddell".into(),
            password: "pbkdf2_sha256$1000000$salt$hash".into(),
            is_active: true,
            is_staff: false,
            is_superuser: false,
            date_joined: 1_700_000_000,
            last_login: Some(1_700_000_100),
            groups: vec!["editors".into(), "readers".into()],
        }
    }

    #[test]
    fn the_same_record_is_no_update() {
        assert_eq!(alice().update_since(&alice()), None);
    }

    #[test]
    fn only_what_django_changed_is_applied() {
        let before = alice();
        let mut now = alice();
        now.is_staff = true;
        now.groups = vec!["editors".into(), "staff".into()];
        let update = now.update_since(&before).unwrap();
        assert_eq!(update.is_staff, Some(true));
        assert_eq!(update.is_active, None);
        assert_eq!(update.password_hash, None, "an unchanged Django password leaves the one here alone");
        assert_eq!(update.groups_joined, ["staff"]);
        assert_eq!(update.groups_left, ["readers"]);
        assert!(!update.ends_sessions());
    }

    #[test]
    fn a_new_password_or_a_deactivation_ends_sessions() {
        let mut now = alice();
        now.password = "!unusable".into();
        let before = alice();
        let update = now.update_since(&before).unwrap();
        assert_eq!(update.password_hash, Some(None));
        assert!(update.ends_sessions());
        let mut now = alice();
        now.is_active = false;
        assert!(now.update_since(&alice()).unwrap().ends_sessions());
    }

    #[test]
    fn an_older_last_login_is_not_applied() {
        let mut now = alice();
        now.last_login = Some(1_600_000_000);
        assert_eq!(now.update_since(&alice()), None);
        now.last_login = Some(1_800_000_000);
        assert_eq!(now.update_since(&alice()).unwrap().last_login, Some(1_800_000_000));
    }

    #[test]
    fn the_remembered_record_holds_no_hash_and_still_tells_a_password_change() {
        let kept = alice().remembered();
        assert!(!kept.password.contains("hash") && kept.password.starts_with("sha256:"), "{}", kept.password);
        assert_eq!(alice().update_since(&kept), None);
        let mut now = alice();
        now.password = "pbkdf2_sha256$1000000$salt$other".into();
        assert_eq!(now.update_since(&kept).unwrap().password_hash, Some(Some("pbkdf2_sha256$1000000$salt$other")));
    }

    #[test]
    fn unusable_passwords_are_no_hash() {
        let mut user = alice();
        assert_eq!(user.password_hash(), Some("pbkdf2_sha256$1000000$salt$hash"));
        user.password = "!x".into();
        assert_eq!(user.password_hash(), None);
        user.password = String::new();
        assert_eq!(user.password_hash(), None);
    }
}
