//! Local users of identity providers: linked by (provider, subject), never by email; created at
//! their first exchange or from the provider's events, and kept to the provider's view of them.

use super::{AccountError, Accounts, Result, links::NamedLink};
use crate::{
    clock::unix_now,
    domain::{AuditEvent, AuditKind, ExternalProfile, User, Username, username},
    store::LinkedUserInsert,
};

/// What applying one provider event or user record did, for logs, audit and sync counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Created,
    /// An existing local user, named by the provider (`external_id`), was linked.
    Linked,
    /// The provider named a local user linked to another of its users: nothing applied.
    Skipped,
    Updated,
    Deactivated,
    SessionsEnded(u64),
    /// Older than what is stored, about a user never linked, or a type we do not act on.
    Ignored,
}

impl Accounts {
    pub async fn linked_user(&self, provider: &str, subject: &str) -> Result<Option<User>> {
        Ok(self.store.user_by_identity(provider, subject).await?)
    }

    /// Creates a local user (no password) linked to the identity, created at `now`, staff as
    /// the profile's roles say. When another request links it first, returns that user
    /// instead: one identity, one local user. `actor` is the client address (or `cli`) audited.
    pub async fn link_new_user(
        &self,
        provider: &str,
        subject: &str,
        profile: &ExternalProfile,
        may_sign_in: bool,
        now: i64,
        actor: &str,
    ) -> Result<User> {
        for username in username_candidates(profile, subject) {
            if self.store.username_taken(&username, None).await? {
                continue;
            }
            let inserted =
                self.store.insert_linked_user(provider, subject, &username, profile, may_sign_in, now).await?;
            match inserted {
                LinkedUserInsert::Created(user) => {
                    self.audit_roles(&user, (false, false), provider, actor).await?;
                    return Ok(*user);
                }
                // Either the identity was linked meanwhile, or the username was just taken.
                LinkedUserInsert::Conflict => {
                    if let Some(user) = self.store.user_by_identity(provider, subject).await? {
                        return Ok(user);
                    }
                }
            }
        }
        Err(AccountError::NoFreeUsername)
    }

    /// `is_staff` / `is_superuser` as the roles in one of the provider's tokens for `subject`
    /// say, unless roles at least as new were applied (`as_of`, see `ExternalProfile`): a token
    /// minted before a webhook took a role away does not bring it back, and `user` then gets the
    /// flags that hold (a webhook may have set them since it was read). A change is audited.
    pub async fn apply_token_roles(
        &self,
        user: &mut User,
        subject: &str,
        roles: (bool, bool),
        as_of: Option<i64>,
        provider: &str,
        actor: &str,
    ) -> Result<()> {
        let Some(write) = self.store.set_linked_user_roles(provider, subject, user.id, roles, as_of).await? else {
            return Ok(());
        };
        if !write.applied {
            (user.is_staff, user.is_superuser) = write.before;
            return Ok(());
        }
        (user.is_staff, user.is_superuser) = roles;
        self.audit_roles(user, write.before, provider, actor).await
    }

    /// A `roles_changed` event when the user's flags are not `before` any more.
    async fn audit_roles(&self, user: &User, before: (bool, bool), provider: &str, actor: &str) -> Result<()> {
        if (user.is_staff, user.is_superuser) == before {
            return Ok(());
        }
        let detail = format!(
            "{provider}: is_staff {}, is_superuser {} (were {}, {})",
            user.is_staff, user.is_superuser, before.0, before.1
        );
        let event = AuditEvent::new(AuditKind::RolesChanged).user(user).client(actor).detail(&detail);
        Ok(self.store.record_audit_event(&event, unix_now()).await?)
    }

    /// The provider's current view of one user (a webhook, or a directory sync): creates the
    /// linked user, links the existing user the profile names (`local_user_id`), or updates the
    /// linked user unless the stored view is newer. The username changes only when the new one
    /// is free, and never for a user that existed before its link; the staff flags follow the
    /// profile's roles when it has any. A user who may not sign in is deactivated, its sessions
    /// ended.
    pub async fn apply_provider_view(
        &self,
        provider: &str,
        subject: &str,
        profile: &ExternalProfile,
        may_sign_in: bool,
        actor: &str,
    ) -> Result<Applied> {
        if let Some(user) = self.store.user_by_identity(provider, subject).await? {
            return Ok(self.update_linked(provider, subject, &user, profile, may_sign_in, actor).await?.0);
        }
        if let Some(local_id) = profile.local_user_id {
            match self.link_named_user(provider, subject, local_id, profile, may_sign_in, actor).await? {
                NamedLink::Linked(_) => return Ok(Applied::Linked),
                NamedLink::AlreadyLinked(user) => {
                    return Ok(self.update_linked(provider, subject, &user, profile, may_sign_in, actor).await?.0);
                }
                NamedLink::Refused => return Ok(Applied::Skipped),
                NamedLink::NoSuchUser => {}
            }
        }
        let user = self.link_new_user(provider, subject, profile, may_sign_in, unix_now(), actor).await?;
        if !user.is_active {
            self.end_sessions(user.id, None).await?;
        }
        Ok(Applied::Created)
    }

    /// The provider's view applied to `user`, linked to the identity: what it did, and the user
    /// as it is now (`None` when the view was older than the stored one, or the link is gone).
    pub(super) async fn update_linked(
        &self,
        provider: &str,
        subject: &str,
        user: &User,
        profile: &ExternalProfile,
        may_sign_in: bool,
        actor: &str,
    ) -> Result<(Applied, Option<User>)> {
        let username = self.new_username(user, profile).await?;
        let updated =
            self.store.update_linked_user(provider, subject, user.id, &username, profile, may_sign_in).await?;
        let Some(updated) = updated else { return Ok((Applied::Ignored, None)) };
        self.audit_roles(&updated, (user.is_staff, user.is_superuser), provider, actor).await?;
        if !updated.is_active {
            self.end_sessions(updated.id, None).await?;
            return Ok((Applied::Deactivated, Some(updated)));
        }
        Ok((Applied::Updated, Some(updated)))
    }

    /// The username the provider's view gives `user`: the one it asks for, made to satisfy the
    /// username rule as at creation, when no other user has it in any case; else the current one.
    async fn new_username(&self, user: &User, profile: &ExternalProfile) -> Result<String> {
        let wanted = profile.username.as_deref().map(Username::sanitize).filter(|w| !w.is_empty());
        match wanted {
            Some(wanted) if wanted != user.username && !self.store.username_taken(&wanted, Some(user.id)).await? => {
                Ok(wanted)
            }
            _ => Ok(user.username.clone()),
        }
    }

    /// The provider deleted the user: deactivated for good, every session ended.
    pub async fn provider_deleted_user(&self, provider: &str, subject: &str) -> Result<Applied> {
        match self.store.deactivate_external_user(provider, subject).await? {
            Some(user_id) => {
                self.end_sessions(user_id, None).await?;
                Ok(Applied::Deactivated)
            }
            None => Ok(Applied::Ignored),
        }
    }

    /// The provider ended one of its sessions: the local sessions born from it end too (not
    /// another provider's that happen to carry the same session id).
    pub async fn provider_ended_session(&self, provider: &str, external_session_id: &str) -> Result<Applied> {
        let ended = self.store.revoke_external_session(provider, external_session_id, unix_now()).await?;
        Ok(Applied::SessionsEnded(ended))
    }

    /// The user's membership of an organization changed (another role) or ended: the local
    /// sessions exchanged in that organization carry what it was, so they end; the next
    /// exchange carries what it is now.
    pub async fn provider_changed_membership(&self, provider: &str, subject: &str, org_id: &str) -> Result<Applied> {
        let ended = self.store.revoke_organization_sessions(provider, subject, org_id, unix_now()).await?;
        Ok(Applied::SessionsEnded(ended))
    }
}

/// A base cut to this leaves room for `-` and an 8-character tail within the username rule.
const SHORT_CHARS: usize = username::MAX_CHARS - 10;

/// Candidate usernames for a new linked user: the provider's username, else the email, else
/// the subject; then the same with a piece of the subject, then the subject with a random part.
fn username_candidates(profile: &ExternalProfile, subject: &str) -> Vec<String> {
    let preferred = profile.username.clone().or_else(|| Some(profile.email.clone()).filter(|e| !e.is_empty()));
    let subject_clean = Username::sanitize(subject);
    let tail: String = subject_clean.chars().rev().take(8).collect::<Vec<_>>().into_iter().rev().collect();
    let mut candidates = Vec::new();
    if let Some(base) = preferred.map(|p| Username::sanitize(&p)).filter(|b| !b.is_empty()) {
        let short: String = base.chars().take(SHORT_CHARS).collect();
        candidates.push(base);
        candidates.push(format!("{short}-{tail}"));
    }
    candidates.push(subject_clean.clone());
    let short: String = subject_clean.chars().take(SHORT_CHARS).collect();
    candidates.push(format!("{short}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]));
    candidates.retain(|c| !c.is_empty());
    candidates
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_prefer_the_provider_username_then_email_then_subject() {
        let mut profile =
            ExternalProfile { username: Some("ada".into()), email: "ada@x.io".into(), ..Default::default() };
        assert_eq!(
            username_candidates(&profile, "user_2abcDEF12345")[..3],
            ["ada", "ada-DEF12345", "user_2abcDEF12345"]
        );
        profile.username = None;
        assert_eq!(username_candidates(&profile, "user_2abc")[0], "ada@x.io");
        profile.email.clear();
        assert_eq!(username_candidates(&profile, "user_2abc")[0], "user_2abc");
        profile.username = Some("bad name!".into());
        assert_eq!(username_candidates(&profile, "user_2abc")[0], "badname");
    }

    #[test]
    fn every_candidate_satisfies_the_username_rule() {
        let profile = ExternalProfile { username: Some("x".repeat(300)), ..Default::default() };
        for candidate in username_candidates(&profile, &"s".repeat(300)) {
            assert!(Username::parse(&candidate).is_ok(), "{candidate}");
        }
    }
}
