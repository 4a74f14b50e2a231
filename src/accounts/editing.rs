//! What the admin API does to accounts beyond the CLI's chores: finding users, editing several
//! fields of one in a single transaction, deleting users and groups, and a user's sessions.
//! Who may do which is the admin service's rule (`crate::admin`); these are the account rules.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::{AccountError, Accounts, Actor, NewAccount, Result, check_email, no_such};
use crate::{
    clock::unix_now,
    config::UsernameField,
    domain::{AuditKind, CustomClaims, GroupName, MAX_GROUPS_PER_USER, User, Username},
    store::{Found, GroupSummary, GuardedWrite, SessionSummary, UserChanges, UserUpdate, Window},
};

/// Django's bound on first and last names.
pub const NAME_MAX_CHARS: usize = 150;

/// An edit of a user: `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct AccountEdit {
    pub username: Option<String>,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub is_active: Option<bool>,
    pub is_staff: Option<bool>,
    pub is_superuser: Option<bool>,
    /// Replaces the user's groups (names).
    pub groups: Option<Vec<String>>,
    /// Replaces the user's custom claims.
    pub claims: Option<Map<String, Value>>,
}

/// The fields of a new user or an edit that the account rules check (`None`: not given).
pub(super) struct Fields<'a> {
    email: Option<&'a str>,
    first_name: Option<&'a str>,
    last_name: Option<&'a str>,
    groups: Option<&'a [String]>,
    claims: Option<&'a Map<String, Value>>,
}

impl<'a> Fields<'a> {
    pub(super) fn of_new(new: &'a NewAccount<'a>) -> Self {
        Self {
            email: Some(new.email),
            first_name: Some(new.first_name),
            last_name: Some(new.last_name),
            groups: Some(new.groups),
            claims: new.claims,
        }
    }

    fn of_edit(edit: &'a AccountEdit) -> Self {
        Self {
            email: edit.email.as_deref(),
            first_name: edit.first_name.as_deref(),
            last_name: edit.last_name.as_deref(),
            groups: edit.groups.as_deref(),
            claims: edit.claims.as_ref(),
        }
    }
}

/// Fields checked against the account rules, ready to store.
pub(super) struct Checked {
    pub(super) claims_json: Option<String>,
    pub(super) group_ids: Option<Vec<i64>>,
}

impl Accounts {
    pub async fn by_id(&self, id: i64) -> Result<User> {
        self.store.user_by_id(id).await?.ok_or_else(|| AccountError::NoSuchUser(id.to_string()))
    }

    /// Users whose username, email or names contain every term, ignoring case, by id.
    pub async fn search(&self, terms: &[String], window: Window) -> Result<Found<User>> {
        Ok(self.store.search_users(terms, window).await?)
    }

    /// The group names of each of a page of users.
    pub async fn groups_of_users(&self, users: &[User]) -> Result<HashMap<i64, Vec<String>>> {
        let ids: Vec<i64> = users.iter().map(|u| u.id).collect();
        Ok(self.store.group_names_of_users(&ids).await?)
    }

    /// What `edit` would be refused for, without applying it.
    pub async fn check_edit(&self, edit: &AccountEdit) -> Result<()> {
        let username = edit.username.as_deref().map(Username::parse).transpose().map_err(AccountError::from);
        together(username, self.check_fields(&Fields::of_edit(edit)).await).map(|_| ())
    }

    /// What creating `new` would be refused for, without creating it: the password policy
    /// first, then every refused field.
    pub async fn check_new(&self, new: &NewAccount<'_>) -> Result<()> {
        let username = Username::parse(new.username).map_err(AccountError::from);
        let fields = together(username, self.check_fields(&Fields::of_new(new)).await).map(|_| ());
        AccountError::all([self.check_password_of_new(new), fields])
    }

    /// Applies `edit` to `user` in one transaction with its audit events: every field lands or
    /// none does. A deactivation ends the user's sessions in it; an operator's deactivation
    /// stands until an operator undoes it (see `deactivate`). Every refused field is reported.
    pub async fn edit(&self, user: &User, edit: &AccountEdit, actor: Actor<'_>) -> Result<User> {
        let current_groups = match edit.groups {
            Some(_) => self.groups_of(user).await?,
            None => Vec::new(),
        };
        // Only what changes is written and audited: a client that sends the whole user back
        // neither rewrites the rest nor fills the audit trail with changes that are not.
        let edit = edit.without_unchanged(user, &current_groups);
        if edit.is_empty() {
            return Ok(user.clone());
        }
        let username = edit.username.as_deref().map(Username::parse).transpose().map_err(AccountError::from);
        let (_, checked) = together(username, self.check_fields(&Fields::of_edit(&edit)).await)?;
        let changes = UserChanges {
            username: edit.username.as_deref(),
            email: edit.email.as_deref(),
            first_name: edit.first_name.as_deref(),
            last_name: edit.last_name.as_deref(),
            is_staff: edit.is_staff,
            is_superuser: edit.is_superuser,
            disabled_locally: edit.is_active.map(|active| !active),
            custom_claims: checked.claims_json.as_deref(),
            group_ids: checked.group_ids.as_deref(),
            unique_email: self.settings.tokens.username_field == UsernameField::Email,
            unless_superuser: actor.unless_superuser(),
        };
        let detail = edit.audit_detail();
        let mut events = vec![actor.event(AuditKind::UserUpdated).user(user).detail(&detail)];
        match edit.is_active {
            Some(false) => events.push(actor.event(AuditKind::UserDeactivated).user(user)),
            Some(true) => events.push(actor.event(AuditKind::UserActivated).user(user)),
            None => {}
        }
        let groups_detail = edit.groups.as_ref().map(|g| format!("groups: {}", g.join(", ")));
        if let Some(detail) = &groups_detail {
            events.push(actor.event(AuditKind::UserGroupsChanged).user(user).detail(detail));
        }
        if edit.claims.is_some() {
            events.push(actor.event(AuditKind::UserClaimsChanged).user(user));
        }
        match self.store.update_user(user.id, &changes, &events).await? {
            UserUpdate::Updated(user) => Ok(*user),
            UserUpdate::NoSuchUser => Err(no_such(user)),
            UserUpdate::UsernameTaken => Err(AccountError::UsernameTaken(edit.username.unwrap_or_default())),
            UserUpdate::EmailTaken => Err(AccountError::EmailTaken(edit.email.unwrap_or_default())),
            UserUpdate::Refused => Err(AccountError::SuperuserOnly),
        }
    }

    /// Every field but the username against the account rules; all refusals at once.
    pub(super) async fn check_fields(&self, fields: &Fields<'_>) -> Result<Checked> {
        let mut refused = Vec::new();
        if let Err(e) = check_email(fields.email.unwrap_or("")) {
            refused.push(e);
        }
        for (field, name) in [("first_name", fields.first_name), ("last_name", fields.last_name)] {
            if name.is_some_and(|n| n.chars().count() > NAME_MAX_CHARS) {
                refused.push(AccountError::NameTooLong(field));
            }
        }
        let claims_json = match fields.claims {
            Some(claims) => match self.parse_claims(claims) {
                Ok(claims) => Some(claims.to_json()),
                Err(e) => {
                    refused.push(e);
                    None
                }
            },
            None => None,
        };
        let group_ids = match fields.groups {
            Some(names) => match self.group_ids(names).await {
                Ok(ids) => Some(ids),
                Err(AccountError::Store(e)) => return Err(e.into()),
                Err(e) => {
                    refused.push(e);
                    None
                }
            },
            None => None,
        };
        match refused.len() {
            0 => Ok(Checked { claims_json, group_ids }),
            1 => Err(refused.remove(0)),
            _ => Err(AccountError::Several(refused)),
        }
    }

    fn parse_claims(&self, claims: &Map<String, Value>) -> Result<CustomClaims> {
        let json = Value::Object(claims.clone()).to_string();
        Ok(CustomClaims::parse(&json, |name| self.settings.tokens.is_reserved_claim(name))?)
    }

    /// The ids of the groups `names` names, each once; the first name of no group is refused.
    async fn group_ids(&self, names: &[String]) -> Result<Vec<i64>> {
        let mut seen = HashSet::new();
        let mut wanted: Vec<String> = Vec::new();
        for name in names {
            // A name no group could have names no group.
            GroupName::parse(name).map_err(|_| AccountError::UnknownGroup(name.clone()))?;
            if seen.insert(name.as_str()) {
                wanted.push(name.clone());
            }
            // Counted as they come: a body of thousands of names is refused before it costs more.
            if wanted.len() as i64 > MAX_GROUPS_PER_USER {
                return Err(AccountError::TooManyGroups);
            }
        }
        let found: HashMap<String, i64> = self.store.group_ids(&wanted).await?.into_iter().collect();
        wanted.into_iter().map(|name| found.get(&name).copied().ok_or(AccountError::UnknownGroup(name))).collect()
    }

    /// Deletes the user: its sessions, groups and identity links go with it.
    pub async fn delete(&self, user: &User, actor: Actor<'_>) -> Result<()> {
        let event = actor.event(AuditKind::UserDeleted).user(user);
        match self.store.delete_user(user.id, actor.unless_superuser(), &event).await? {
            GuardedWrite::Done(()) => Ok(()),
            GuardedWrite::NoSuchUser => Err(no_such(user)),
            GuardedWrite::Refused => Err(AccountError::SuperuserOnly),
        }
    }

    /// The user's live sessions, newest first.
    pub async fn sessions_of(&self, user: &User, window: Window) -> Result<Found<SessionSummary>> {
        Ok(self.store.live_sessions(user.id, unix_now(), window).await?)
    }

    /// Ends one live session of the user. `false` when the user has no such live session.
    pub async fn end_session(&self, user: &User, session_id: &str, actor: Actor<'_>) -> Result<bool> {
        let detail = format!("session {session_id}");
        let event = actor.event(AuditKind::SessionsEnded).user(user).detail(&detail);
        Ok(self.store.end_session(user.id, session_id, unix_now(), &event).await?)
    }

    /// Ends every session of the user. Returns how many.
    pub async fn end_all_sessions(&self, user: &User, actor: Actor<'_>) -> Result<u64> {
        let ended = self.end_sessions(user.id, None).await?;
        self.record(AuditKind::SessionsEnded, Some(user), actor, &format!("{ended} sessions")).await?;
        Ok(ended)
    }

    /// Groups whose name contains every term, by name.
    pub async fn search_groups(&self, terms: &[String], window: Window) -> Result<Found<GroupSummary>> {
        Ok(self.store.search_groups(terms, window).await?)
    }

    /// Deletes the group; its members leave it.
    pub async fn delete_group(&self, group_id: i64, actor: Actor<'_>) -> Result<()> {
        let name =
            self.store.group_name(group_id).await?.ok_or_else(|| AccountError::NoSuchGroup(group_id.to_string()))?;
        let detail = format!("group {name}");
        let event = actor.event(AuditKind::GroupDeleted).detail(&detail);
        match self.store.delete_group(group_id, unix_now(), &event).await? {
            true => Ok(()),
            false => Err(AccountError::NoSuchGroup(name)),
        }
    }
}

impl AccountError {
    /// Every refusal among `results` as one error (a failure that is not a refusal, as it is).
    pub fn all<const N: usize>(results: [Result<()>; N]) -> Result<()> {
        let mut refused = Vec::new();
        for result in results {
            match result {
                Ok(()) => {}
                Err(AccountError::Several(more)) => refused.extend(more),
                Err(e @ (AccountError::Store(_) | AccountError::Passwords(_))) => return Err(e),
                Err(e) => refused.push(e),
            }
        }
        match refused.len() {
            0 => Ok(()),
            1 => Err(refused.remove(0)),
            _ => Err(AccountError::Several(refused)),
        }
    }
}

/// Both results, or every refusal among them.
pub(super) fn together<T>(username: Result<T>, fields: Result<Checked>) -> Result<(T, Checked)> {
    match (username, fields) {
        (Ok(username), Ok(fields)) => Ok((username, fields)),
        (Err(e), Ok(_)) | (Ok(_), Err(e)) => Err(e),
        (Err(first), Err(second)) => Err(merge(first, second)),
    }
}

/// Two refusals as one, `first` first (a failure to check wins: nothing was refused yet).
pub(super) fn merge(first: AccountError, second: AccountError) -> AccountError {
    match (first, second) {
        (e @ (AccountError::Store(_) | AccountError::Passwords(_)), _)
        | (_, e @ (AccountError::Store(_) | AccountError::Passwords(_))) => e,
        (first, AccountError::Several(mut more)) => {
            more.insert(0, first);
            AccountError::Several(more)
        }
        (first, second) => AccountError::Several(vec![first, second]),
    }
}

impl AccountEdit {
    /// This edit without the values `user` (in `groups`) already has.
    fn without_unchanged(&self, user: &User, groups: &[String]) -> Self {
        fn changed<T: PartialEq + Clone>(new: &Option<T>, old: &T) -> Option<T> {
            new.as_ref().filter(|new| *new != old).cloned()
        }
        let same_groups = |new: &Vec<String>| {
            let wanted: HashSet<&str> = new.iter().map(String::as_str).collect();
            wanted == groups.iter().map(String::as_str).collect()
        };
        Self {
            username: changed(&self.username, &user.username),
            email: changed(&self.email, &user.email),
            first_name: changed(&self.first_name, &user.first_name),
            last_name: changed(&self.last_name, &user.last_name),
            is_active: changed(&self.is_active, &user.is_active),
            is_staff: changed(&self.is_staff, &user.is_staff),
            is_superuser: changed(&self.is_superuser, &user.is_superuser),
            groups: self.groups.clone().filter(|new| !same_groups(new)),
            claims: self.claims.clone().filter(|new| new != user.custom_claims.as_map()),
        }
    }

    fn is_empty(&self) -> bool {
        self.changed_fields().is_empty()
    }

    /// The names of the fields this edit sets.
    fn changed_fields(&self) -> Vec<&'static str> {
        [
            ("username", self.username.is_some()),
            ("email", self.email.is_some()),
            ("first_name", self.first_name.is_some()),
            ("last_name", self.last_name.is_some()),
            ("is_active", self.is_active.is_some()),
            ("is_staff", self.is_staff.is_some()),
            ("is_superuser", self.is_superuser.is_some()),
            ("groups", self.groups.is_some()),
            ("claims", self.claims.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect()
    }

    /// `changed: …` naming the fields, with the new username and flags (who was made what).
    fn audit_detail(&self) -> String {
        let mut detail = format!("changed: {}", self.changed_fields().join(", "));
        if let Some(username) = &self.username {
            detail.push_str(&format!("; username={username}"));
        }
        for (name, value) in [("is_staff", self.is_staff), ("is_superuser", self.is_superuser)] {
            if let Some(value) = value {
                detail.push_str(&format!("; {name}={value}"));
            }
        }
        detail
    }
}
