//! The rules of local accounts, in one place for every caller (the CLI, the HTTP API, provider
//! webhooks and sync): creating a user, setting or changing a password, activating and
//! deactivating. Whatever ends a user's right to a session ends its sessions here, and each
//! operator action writes its audit event here.

mod editing;
mod external;
mod groups;
mod links;
mod reset;
mod registration;

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

pub use self::{
    editing::{AccountEdit, NAME_MAX_CHARS},
    external::Applied,
    links::NamedLink,
    registration::{Applicant, Registrations},
    reset::{PasswordResets, ResetError, THROTTLE_WINDOW as RESET_THROTTLE_WINDOW},
};
use crate::{
    clock::unix_now,
    config::{Config, TokenCustomisation, UsernameField},
    domain::{AuditEvent, AuditKind, InvalidClaims, InvalidGroupName, InvalidUsername, User, Username, is_valid_email},
    passwords::{PasswordError, PasswordHasherPool, PasswordOwner, PasswordPolicy, PasswordRejected},
    store::{GuardedWrite, NewUser, Store, StoreError, UserInsert},
    throttle::{LoginThrottle, ThrottleError},
    tokens::VerifiedToken,
};

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error(transparent)]
    InvalidUsername(#[from] InvalidUsername),
    #[error("not an email address: {0:?}")]
    InvalidEmail(String),
    #[error("a user named {0:?} already exists")]
    UsernameTaken(String),
    #[error("no user named {0:?}")]
    NoSuchUser(String),
    /// With `USERNAME_FIELD=email`, where emails name users.
    #[error("another user has the email {0:?}")]
    EmailTaken(String),
    /// Self-service registration under `USERNAME_FIELD=email`: the email names the user.
    #[error("an email is required")]
    EmailRequired,
    /// First and last names are at most `NAME_MAX_CHARS` characters (the field's name).
    #[error("{0} is longer than {NAME_MAX_CHARS} characters")]
    NameTooLong(&'static str),
    /// The user became a superuser while an admin who is not one was changing it.
    #[error("only a superuser may change a superuser")]
    SuperuserOnly,
    #[error(transparent)]
    InvalidGroupName(#[from] InvalidGroupName),
    #[error("a group named {0:?} already exists")]
    GroupTaken(String),
    #[error("no group named {0:?}")]
    NoSuchGroup(String),
    /// Access tokens list every group of their user.
    #[error("a user belongs to at most {} groups", crate::domain::MAX_GROUPS_PER_USER)]
    TooManyGroups,
    #[error(transparent)]
    InvalidClaims(#[from] InvalidClaims),
    #[error("the current password is wrong")]
    WrongPassword,
    /// The password policy refused a new password (Django's messages).
    #[error(transparent)]
    WeakPassword(#[from] PasswordRejected),
    /// Too many wrong passwords (they count as failed logins).
    #[error(transparent)]
    Throttle(#[from] ThrottleError),
    /// `tokensmith clerk link`: the provider's user is linked to another local user.
    #[error("{subject} is already linked to user {username:?}")]
    IdentityLinkedElsewhere { subject: String, username: String },
    /// `tokensmith clerk link`: the local user is linked to another of the provider's users.
    #[error("user {username:?} is already linked to {subject}")]
    UserLinkedElsewhere { username: String, subject: String },
    #[error("user {0:?} is not linked")]
    NotLinked(String),
    /// Every username made for a new linked user was taken (it ends with a random part, so
    /// this takes a collision after several inserts lost their races).
    #[error("no free username for the external user")]
    NoFreeUsername,
    /// Group names that name no group.
    #[error("no group named {0:?}")]
    UnknownGroup(String),
    /// Several of an edit's fields were refused (each error names its field).
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Several(Vec<AccountError>),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Passwords(#[from] PasswordError),
}

type Result<T, E = AccountError> = std::result::Result<T, E>;

/// A user to create.
pub struct NewAccount<'a> {
    pub username: &'a str,
    pub email: &'a str,
    pub first_name: &'a str,
    pub last_name: &'a str,
    /// `None`: no password login.
    pub password: Option<SecretString>,
    pub is_staff: bool,
    pub is_superuser: bool,
    /// `false`: created deactivated (by the operator, as `deactivate` does).
    pub is_active: bool,
    /// The names of the groups it joins.
    pub groups: &'a [String],
    /// Its custom claims.
    pub claims: Option<&'a Map<String, Value>>,
}

/// Who acts on an account, as the audit trail names them: the client address (or `cli`), and
/// the admin when one acts over the admin API.
#[derive(Clone, Copy)]
pub struct Actor<'a> {
    client: &'a str,
    admin: Option<&'a User>,
}

impl<'a> Actor<'a> {
    /// An operator at the command line.
    pub const CLI: Actor<'static> = Actor { client: "cli", admin: None };

    /// A user on their own account, or a provider's event, from `client`.
    pub fn client(client: &'a str) -> Self {
        Self { client, admin: None }
    }

    /// A staff user over the admin API, from `client`.
    pub fn admin(admin: &'a User, client: &'a str) -> Self {
        Self { client, admin: Some(admin) }
    }

    /// Whether this actor's changes to a superuser's account stand: not an admin who is not one
    /// (checked again at the write, against the record as it is then).
    fn unless_superuser(self) -> bool {
        self.admin.is_some_and(|admin| !admin.is_superuser)
    }

    /// An audit event of `kind` naming this actor.
    pub fn event(self, kind: AuditKind) -> AuditEvent<'a> {
        let event = AuditEvent::new(kind).client(self.client);
        match self.admin {
            Some(admin) => event.actor(admin),
            None => event,
        }
    }
}

/// What a user's new password is compared with: its record's attributes.
pub fn owner_of(user: &User) -> PasswordOwner<'_> {
    PasswordOwner {
        username: &user.username,
        email: &user.email,
        first_name: &user.first_name,
        last_name: &user.last_name,
    }
}

fn no_such(user: &User) -> AccountError {
    AccountError::NoSuchUser(user.username.clone())
}

/// The username and email of a new user, checked: a valid username, and an email (when
/// given) that is at least shaped like one.
pub fn check_profile(username: &str, email: &str) -> Result<Username> {
    let username = Username::parse(username)?;
    check_email(email)?;
    Ok(username)
}

/// Empty, or an address Django's `EmailValidator` accepts.
fn check_email(email: &str) -> Result<()> {
    if !email.is_empty() && !is_valid_email(email) {
        return Err(AccountError::InvalidEmail(email.to_owned()));
    }
    Ok(())
}

/// The settings account rules follow.
struct Settings {
    /// Custom claims may not take the names tokensmith writes (the `USER_ID_CLAIM` among them);
    /// `USERNAME_FIELD=email` makes emails unique.
    tokens: TokenCustomisation,
    /// What a new password must be (`PASSWORD_MIN_LENGTH` and Django's other validators).
    policy: PasswordPolicy,
}

#[derive(Clone)]
pub struct Accounts {
    settings: Arc<Settings>,
    store: Store,
    passwords: PasswordHasherPool,
    /// Wrong current passwords count as failed logins.
    throttle: LoginThrottle,
}

impl Accounts {
    pub fn new(config: &Config, store: Store, passwords: PasswordHasherPool, throttle: LoginThrottle) -> Self {
        let settings =
            Settings { tokens: config.tokens.clone(), policy: PasswordPolicy::new(config.password_min_length) };
        Self { settings: Arc::new(settings), store, passwords, throttle }
    }

    /// Creates a user; `actor` (a client address, or `cli`) is what the audit trail names.
    pub async fn create(&self, new: NewAccount<'_>, actor: Actor<'_>) -> Result<User> {
        let username = Username::parse(new.username).map_err(AccountError::from);
        let checked = self.check_fields(&editing::Fields::of_new(&new)).await;
        // Every refusal at once: the password policy's with the fields'.
        let (username, checked) = match (self.check_password_of_new(&new), editing::together(username, checked)) {
            (Ok(()), checked) => checked?,
            (Err(weak), Ok(_)) => return Err(weak),
            (Err(weak), Err(more)) => return Err(editing::merge(weak, more)),
        };
        let password_hash = match new.password {
            Some(password) => Some(self.passwords.hash(password).await?),
            None => None,
        };
        let record = NewUser {
            username: username.as_str(),
            email: new.email,
            first_name: new.first_name,
            last_name: new.last_name,
            password_hash: password_hash.as_deref(),
            is_staff: new.is_staff,
            is_superuser: new.is_superuser,
            disabled_locally: !new.is_active,
            custom_claims: checked.claims_json.as_deref().unwrap_or("{}"),
            group_ids: checked.group_ids.as_deref().unwrap_or_default(),
            created_at: unix_now(),
        };
        let unique_email = self.settings.tokens.username_field == UsernameField::Email && !new.email.is_empty();
        let user = match self.store.create_user(&record, unique_email).await? {
            UserInsert::Created(user) => *user,
            UserInsert::UsernameTaken => return Err(AccountError::UsernameTaken(username.into_string())),
            UserInsert::EmailTaken => return Err(AccountError::EmailTaken(new.email.to_owned())),
        };
        let detail = format!(
            "is_active={}, is_staff={}, is_superuser={}; groups: {}; claims: {}",
            new.is_active,
            new.is_staff,
            new.is_superuser,
            new.groups.join(", "),
            new.claims.map(|c| c.keys().cloned().collect::<Vec<_>>().join(", ")).unwrap_or_default()
        );
        self.record(AuditKind::UserCreated, Some(&user), actor, &detail).await?;
        Ok(user)
    }

    pub async fn by_username(&self, username: &str) -> Result<User> {
        self.store.user_by_username(username).await?.ok_or_else(|| AccountError::NoSuchUser(username.to_owned()))
    }

    pub async fn list(&self) -> Result<Vec<User>> {
        Ok(self.store.list_users().await?)
    }

    /// Whether `password` may be set for `owner`: the password policy, Django's validators. Every
    /// operation here that sets a password asks it first (before hashing); existing passwords
    /// are never checked, so a password set before the policy keeps working.
    pub fn check_new_password(&self, password: &str, owner: &PasswordOwner<'_>) -> Result<()> {
        Ok(self.settings.policy.check(password, owner)?)
    }

    /// The policy for the password of a user to create (none given: nothing to check).
    fn check_password_of_new(&self, new: &NewAccount<'_>) -> Result<()> {
        let Some(password) = &new.password else { return Ok(()) };
        let owner = PasswordOwner {
            username: new.username,
            email: new.email,
            first_name: new.first_name,
            last_name: new.last_name,
        };
        self.check_new_password(password.expose_secret(), &owner)
    }

    /// An operator sets the password (the policy applies): every session of the user ends, in
    /// the same transaction. Returns how many.
    pub async fn set_password(&self, user: &User, password: SecretString, actor: Actor<'_>) -> Result<u64> {
        self.check_new_password(password.expose_secret(), &owner_of(user))?;
        let hash = self.passwords.hash(password).await?;
        let event = actor.event(AuditKind::PasswordSet).user(user);
        match self.store.set_password_ending_sessions(user.id, &hash, actor.unless_superuser(), &event).await? {
            GuardedWrite::Done(ended) => Ok(ended),
            GuardedWrite::NoSuchUser => Err(no_such(user)),
            GuardedWrite::Refused => Err(AccountError::SuperuserOnly),
        }
    }

    /// The user changes their own password (the policy applies, against the user's record as
    /// the caller read it): every session but the one the caller's access (or sliding) `token`
    /// belongs to ends. Guesses of the current password are throttled as logins are (a
    /// stolen access token must not become a password oracle).
    pub async fn change_password(
        &self,
        user: &User,
        token: &VerifiedToken,
        current: SecretString,
        new: SecretString,
        client: &str,
    ) -> Result<()> {
        // Before the throttle and any hashing: a refused new password costs no guess and no
        // argon2, and says nothing about the current one.
        self.check_new_password(new.expose_secret(), &owner_of(user))?;
        let attempt = self.throttle.reserve(&user.username, client).await?;
        if !self.passwords.verify(current.clone(), user.password_hash.as_deref()).await?.matched() {
            return Err(AccountError::WrongPassword);
        }
        self.throttle.succeeded(attempt, &user.username).await?;
        let hash = self.passwords.hash(new).await?;
        // Only over the hash just checked: of two changes racing (a thief with the old password
        // and the owner), the second finds the password changed and is refused. A login that
        // upgraded the hash meanwhile (an imported one, rehashed) changed no password.
        if !self.store.replace_password_hash(user.id, user.password_hash.as_deref(), &hash).await?
            && !self.replace_upgraded_hash(user.id, current, &hash).await?
        {
            return Err(AccountError::WrongPassword);
        }
        let keep = match token.session_id() {
            Some(id) => Some(id.to_owned()),
            None => self.store.family_of_access_token(&token.jti).await?,
        };
        self.end_sessions(user.id, keep.as_deref()).await?;
        self.audit(AuditKind::PasswordChanged, user, Actor::client(client)).await
    }

    /// After a password change lost the hash it checked: replaces the hash stored now if
    /// `current` matches it too (a login upgraded the same password), else `false`.
    async fn replace_upgraded_hash(&self, user_id: i64, current: SecretString, hash: &str) -> Result<bool> {
        let Some(stored) = self.store.user_by_id(user_id).await?.and_then(|u| u.password_hash) else {
            return Ok(false);
        };
        if !self.passwords.verify(current, Some(&stored)).await?.matched() {
            return Ok(false);
        }
        Ok(self.store.replace_password_hash(user_id, Some(&stored), hash).await?)
    }

    /// No login and no refresh from now on: every session of the user ends. Returns how many.
    /// An operator's deactivation stands until an operator undoes it: no identity provider's
    /// event or sync reactivates the user.
    pub async fn deactivate(&self, user: &User, actor: Actor<'_>) -> Result<u64> {
        self.store.set_disabled_locally(user.id, true).await?.ok_or_else(|| no_such(user))?;
        let ended = self.end_sessions(user.id, None).await?;
        self.audit(AuditKind::UserDeactivated, user, actor).await?;
        Ok(ended)
    }

    /// Undoes the operator's deactivation. Returns whether the user is active now: not while
    /// its identity provider refuses it (banned, locked or deleted there).
    pub async fn activate(&self, user: &User, actor: Actor<'_>) -> Result<bool> {
        let active = self.store.set_disabled_locally(user.id, false).await?.ok_or_else(|| no_such(user))?;
        self.audit(AuditKind::UserActivated, user, actor).await?;
        Ok(active)
    }

    /// Ends every session of the user but `keep` (a session id). Returns how many ended.
    async fn end_sessions(&self, user_id: i64, keep: Option<&str>) -> Result<u64> {
        Ok(self.store.revoke_user_sessions(user_id, keep, unix_now()).await?)
    }

    async fn audit(&self, kind: AuditKind, user: &User, actor: Actor<'_>) -> Result<()> {
        self.record(kind, Some(user), actor, "").await
    }

    async fn record(&self, kind: AuditKind, user: Option<&User>, actor: Actor<'_>, detail: &str) -> Result<()> {
        let mut event = actor.event(kind).detail(detail);
        if let Some(user) = user {
            event = event.user(user);
        }
        Ok(self.store.record_audit_event(&event, unix_now()).await?)
    }
}
