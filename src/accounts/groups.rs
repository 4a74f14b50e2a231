//! Groups and custom claims: what a user's access tokens say besides the user record. Every
//! change is audited, naming the actor, as the other account chores are.

use super::{AccountError, Accounts, Actor, Result};
use crate::{
    domain::{AuditKind, CustomClaims, GroupName, MAX_GROUPS_PER_USER, User},
    store::{GroupJoin, GroupSummary},
};

impl Accounts {
    pub async fn create_group(&self, name: &str, actor: Actor<'_>) -> Result<i64> {
        let name = GroupName::parse(name)?;
        let id =
            self.store.create_group(name.as_str()).await?.ok_or_else(|| AccountError::GroupTaken(name.to_string()))?;
        let detail = format!("group {name}");
        self.record(AuditKind::GroupCreated, None, actor, &detail).await?;
        Ok(id)
    }

    pub async fn list_groups(&self) -> Result<Vec<GroupSummary>> {
        Ok(self.store.list_groups().await?)
    }

    /// The names of the user's groups.
    pub async fn groups_of(&self, user: &User) -> Result<Vec<String>> {
        Ok(self.store.group_names_of(user.id).await?)
    }

    /// Returns whether the user was not in the group yet.
    pub async fn add_to_group(&self, user: &User, group: &str, actor: Actor<'_>) -> Result<bool> {
        let id = self.group_id(group).await?;
        let added = match self.store.add_user_to_group(user.id, id, MAX_GROUPS_PER_USER).await? {
            GroupJoin::Joined => true,
            GroupJoin::AlreadyMember => false,
            GroupJoin::TooManyGroups => return Err(AccountError::TooManyGroups),
        };
        if added {
            let detail = format!("joined {group}");
            self.record(AuditKind::UserGroupsChanged, Some(user), actor, &detail).await?;
        }
        Ok(added)
    }

    /// Returns whether the user was in the group.
    pub async fn remove_from_group(&self, user: &User, group: &str, actor: Actor<'_>) -> Result<bool> {
        let id = self.group_id(group).await?;
        let removed = self.store.remove_user_from_group(user.id, id).await?;
        if removed {
            let detail = format!("left {group}");
            self.record(AuditKind::UserGroupsChanged, Some(user), actor, &detail).await?;
        }
        Ok(removed)
    }

    /// Replaces the user's custom claims with the JSON object `json`. Names tokensmith writes
    /// itself (`exp`, `sub`, the `USER_ID_CLAIM`, …) are refused.
    pub async fn set_claims(&self, user: &User, json: &str, actor: Actor<'_>) -> Result<CustomClaims> {
        let claims = CustomClaims::parse(json, |name| self.settings.tokens.is_reserved_claim(name))?;
        if !self.store.set_custom_claims(user.id, &claims.to_json()).await? {
            return Err(AccountError::NoSuchUser(user.username.clone()));
        }
        let names: Vec<&str> = claims.as_map().keys().map(String::as_str).collect();
        let detail = format!("claims: {}", names.join(", "));
        self.record(AuditKind::UserClaimsChanged, Some(user), actor, &detail).await?;
        Ok(claims)
    }

    async fn group_id(&self, name: &str) -> Result<i64> {
        self.store.group_id(name).await?.ok_or_else(|| AccountError::NoSuchGroup(name.to_owned()))
    }
}
