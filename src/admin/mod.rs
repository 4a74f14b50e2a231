//! The admin API's rules: who may do what to whom. A staff user manages accounts, groups and
//! sessions through the same `Accounts` operations as the CLI; only a superuser grants staff or
//! superuser status, changes a superuser's account, or takes a session of another user; and no
//! admin deactivates, deletes or demotes their own account (the last admin would lock everyone
//! out). The caller's rights come from their user record as it is now, read at each request, never
//! from a token's claims: a token outlives a demotion.

use secrecy::SecretString;

use crate::{
    accounts::{AccountEdit, AccountError, Accounts, Actor, NewAccount},
    domain::{AuditKind, User},
    sessions::{IssueError, Sessions, TokenPair},
    store::{Found, GroupSummary, SessionOrigin, SessionSummary, Window},
};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Not staff, or a superuser's right asked for by a staff user who is not one.
    #[error("permission denied")]
    Forbidden,
    /// An admin deactivating, deleting or demoting their own account.
    #[error("an admin cannot deactivate, delete or demote their own account")]
    SelfLockout,
    /// Tokens asked for a deactivated user.
    #[error("the user is inactive")]
    InactiveUser,
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error(transparent)]
    Issue(#[from] IssueError),
}

type Result<T, E = AdminError> = std::result::Result<T, E>;

/// An active staff user calling the admin API, and the address they call from.
pub struct Staff {
    user: User,
    client: String,
}

impl Staff {
    /// `user` as the record says now (the caller's token was checked, the record read).
    pub fn new(user: User, client: String) -> Result<Self> {
        if !(user.is_active && user.is_staff) {
            return Err(AdminError::Forbidden);
        }
        Ok(Self { user, client })
    }

    fn actor(&self) -> Actor<'_> {
        Actor::admin(&self.user, &self.client)
    }

    fn require_superuser(&self) -> Result<()> {
        if self.user.is_superuser { Ok(()) } else { Err(AdminError::Forbidden) }
    }

    /// A superuser's account is changed by superusers only: whoever may set its password may
    /// become it.
    fn may_change(&self, target: &User) -> Result<()> {
        if target.is_superuser { self.require_superuser() } else { Ok(()) }
    }
}

/// A user an admin creates.
pub struct NewUser {
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub password: Option<SecretString>,
    pub is_active: bool,
    pub is_staff: bool,
    pub is_superuser: bool,
    pub groups: Vec<String>,
    pub claims: Option<serde_json::Map<String, serde_json::Value>>,
}

impl NewUser {
    fn account(&self) -> NewAccount<'_> {
        NewAccount {
            username: &self.username,
            email: &self.email,
            first_name: &self.first_name,
            last_name: &self.last_name,
            password: self.password.clone(),
            is_staff: self.is_staff,
            is_superuser: self.is_superuser,
            is_active: self.is_active,
            groups: &self.groups,
            claims: self.claims.as_ref(),
        }
    }
}

#[derive(Clone)]
pub struct Admin {
    accounts: Accounts,
    sessions: Sessions,
}

impl Admin {
    pub fn new(accounts: Accounts, sessions: Sessions) -> Self {
        Self { accounts, sessions }
    }

    /// A user and the names of its groups.
    pub async fn user(&self, _: &Staff, id: i64) -> Result<(User, Vec<String>)> {
        let user = self.accounts.by_id(id).await?;
        let groups = self.accounts.groups_of(&user).await?;
        Ok((user, groups))
    }

    /// A page of users matching `terms`, each with its groups' names.
    pub async fn users(&self, _: &Staff, terms: &[String], window: Window) -> Result<Found<(User, Vec<String>)>> {
        let found = self.accounts.search(terms, window).await?;
        let mut groups = self.accounts.groups_of_users(&found.rows).await?;
        let rows = found.rows.into_iter().map(|user| {
            let names = groups.remove(&user.id).unwrap_or_default();
            (user, names)
        });
        Ok(Found { count: found.count, rows: rows.collect() })
    }

    /// What creating `new` would be refused for, without creating it: flags that take a
    /// superuser first, then every refused field at once (the password policy among them).
    pub async fn check_new_user(&self, staff: &Staff, new: &NewUser) -> Result<()> {
        if new.is_staff || new.is_superuser {
            staff.require_superuser()?;
        }
        Ok(self.accounts.check_new(&new.account()).await?)
    }

    pub async fn create_user(&self, staff: &Staff, new: NewUser) -> Result<(User, Vec<String>)> {
        self.check_new_user(staff, &new).await?;
        let user = self.accounts.create(new.account(), staff.actor()).await?;
        let groups = self.accounts.groups_of(&user).await?;
        Ok((user, groups))
    }

    /// What editing the user `id` with `edit` would be refused for, without editing it.
    pub async fn check_edit(&self, staff: &Staff, id: i64, edit: &AccountEdit) -> Result<()> {
        let target = self.accounts.by_id(id).await?;
        permit_edit(staff, &target, edit)?;
        Ok(self.accounts.check_edit(edit).await?)
    }

    pub async fn edit_user(&self, staff: &Staff, id: i64, edit: AccountEdit) -> Result<(User, Vec<String>)> {
        let target = self.accounts.by_id(id).await?;
        permit_edit(staff, &target, &edit)?;
        let user = self.accounts.edit(&target, &edit, staff.actor()).await?;
        let groups = self.accounts.groups_of(&user).await?;
        Ok((user, groups))
    }

    pub async fn delete_user(&self, staff: &Staff, id: i64) -> Result<()> {
        let target = self.accounts.by_id(id).await?;
        if target.id == staff.user.id {
            return Err(AdminError::SelfLockout);
        }
        staff.may_change(&target)?;
        Ok(self.accounts.delete(&target, staff.actor()).await?)
    }

    /// Sets the password (the policy applies); every session of the user ends.
    pub async fn set_password(&self, staff: &Staff, id: i64, password: SecretString) -> Result<()> {
        let target = self.accounts.by_id(id).await?;
        staff.may_change(&target)?;
        self.accounts.set_password(&target, password, staff.actor()).await?;
        Ok(())
    }

    pub async fn sessions(&self, _: &Staff, id: i64, window: Window) -> Result<Found<SessionSummary>> {
        let target = self.accounts.by_id(id).await?;
        Ok(self.accounts.sessions_of(&target, window).await?)
    }

    /// `false` when the user has no such live session.
    pub async fn end_session(&self, staff: &Staff, id: i64, session_id: &str) -> Result<bool> {
        let target = self.accounts.by_id(id).await?;
        staff.may_change(&target)?;
        Ok(self.accounts.end_session(&target, session_id, staff.actor()).await?)
    }

    pub async fn end_sessions(&self, staff: &Staff, id: i64) -> Result<()> {
        let target = self.accounts.by_id(id).await?;
        staff.may_change(&target)?;
        self.accounts.end_all_sessions(&target, staff.actor()).await?;
        Ok(())
    }

    /// A new session of another user, for a superuser (support, provisioning): its own audit
    /// event names both.
    pub async fn issue_tokens(&self, staff: &Staff, id: i64) -> Result<TokenPair> {
        staff.require_superuser()?;
        let target = self.accounts.by_id(id).await?;
        if !target.is_active {
            return Err(AdminError::InactiveUser);
        }
        let origin = SessionOrigin { provider: "admin", client_addr: Some(&staff.client), ..SessionOrigin::default() };
        let event = staff.actor().event(AuditKind::AdminTokensIssued).user(&target);
        match self.sessions.start_session(&target, origin, &event).await {
            // Deactivated since it was read: no session starts.
            Err(IssueError::PasswordChanged) => Err(AdminError::InactiveUser),
            issued => Ok(issued?),
        }
    }

    pub async fn groups(&self, _: &Staff, terms: &[String], window: Window) -> Result<Found<GroupSummary>> {
        Ok(self.accounts.search_groups(terms, window).await?)
    }

    pub async fn create_group(&self, staff: &Staff, name: &str) -> Result<i64> {
        Ok(self.accounts.create_group(name, staff.actor()).await?)
    }

    pub async fn delete_group(&self, staff: &Staff, id: i64) -> Result<()> {
        Ok(self.accounts.delete_group(id, staff.actor()).await?)
    }
}

/// Whether `staff` may make `edit` to `target`: nobody demotes themselves; a superuser's
/// account, and the flags, are a superuser's to change.
fn permit_edit(staff: &Staff, target: &User, edit: &AccountEdit) -> Result<()> {
    if target.id == staff.user.id && demotes(target, edit) {
        return Err(AdminError::SelfLockout);
    }
    staff.may_change(target)?;
    let grants = edit.is_staff.is_some_and(|v| v != target.is_staff)
        || edit.is_superuser.is_some_and(|v| v != target.is_superuser);
    if grants {
        staff.require_superuser()?;
    }
    Ok(())
}

/// Whether `edit` takes from `user` its activation or an admin flag it has.
fn demotes(user: &User, edit: &AccountEdit) -> bool {
    edit.is_active == Some(false)
        || (user.is_staff && edit.is_staff == Some(false))
        || (user.is_superuser && edit.is_superuser == Some(false))
}
