//! Existing local users linked to a provider's users: an account that was there before the
//! provider (a Django user imported with its id, say) is linked when the provider names it (Clerk's
//! `external_id`, which only the operator can set) or when the operator links it by hand, never by
//! email. One local user per provider user and one provider user per local user: a link never
//! moves by itself, and a local user already linked to someone else is never handed to another.
//! Linking ends no session and touches no password; unlinking takes every say from the provider.

use super::{AccountError, Accounts, Actor, Result, no_such};
use crate::{
    clock::unix_now,
    domain::{AuditKind, ExternalProfile, User},
    store::{IdentityLink, Unlinked},
};

/// What the provider naming an existing local user came to.
#[derive(Debug)]
pub enum NamedLink {
    /// Linked now, and the provider's view applied to it: the user as it is now.
    Linked(User),
    /// The provider's user was linked meanwhile (a racing request): the link stands, to this user.
    AlreadyLinked(User),
    /// The named user is linked to another of the provider's users: not linked, audited.
    Refused,
    /// No local user has that id: the identity is like any other new one.
    NoSuchUser,
}

impl Accounts {
    /// The provider says its user `subject`, linked to no local user yet, is local user
    /// `local_id`: links them unless that user is linked to another of the provider's users. A
    /// user linked this way keeps its username, email and names (its password login goes by
    /// them); the view applies as it would to any linked user otherwise (roles, may sign in).
    pub async fn link_named_user(
        &self,
        provider: &str,
        subject: &str,
        local_id: i64,
        profile: &ExternalProfile,
        may_sign_in: bool,
        actor: &str,
    ) -> Result<NamedLink> {
        let Some(user) = self.store.user_by_id(local_id).await? else {
            tracing::warn!(provider, subject, local_id, "the provider's user names no local user: linked to a new one");
            return Ok(NamedLink::NoSuchUser);
        };
        match self.store.link_existing_user(provider, subject, user.id, unix_now()).await? {
            IdentityLink::Linked => {
                let detail = format!("{provider} {subject}, by its external_id");
                self.record(AuditKind::IdentityLinked, Some(&user), Actor::client(actor), &detail).await?;
                let (_, updated) = self.update_linked(provider, subject, &user, profile, may_sign_in, actor).await?;
                // A newer view applied meanwhile leaves `updated` empty: the user is as it made it.
                let now = match updated {
                    Some(user) => user,
                    None => self.store.user_by_id(user.id).await?.ok_or_else(|| no_such(&user))?,
                };
                Ok(NamedLink::Linked(now))
            }
            IdentityLink::SubjectLinked(id) => match self.store.user_by_id(id).await? {
                Some(linked) => Ok(NamedLink::AlreadyLinked(linked)),
                None => Ok(NamedLink::NoSuchUser),
            },
            IdentityLink::UserLinked(other) => {
                tracing::warn!(
                    provider,
                    subject,
                    local_id,
                    linked_to = %other,
                    "the provider's user names a local user linked to another of its users: not linked"
                );
                let detail = format!("{provider} {subject} names this user by its external_id; linked to {other}");
                self.record(AuditKind::IdentityLinkRefused, Some(&user), Actor::client(actor), &detail).await?;
                Ok(NamedLink::Refused)
            }
            IdentityLink::NoSuchUser => Ok(NamedLink::NoSuchUser),
        }
    }

    /// The operator links `user` to the provider's user `subject`. `false`: they were linked
    /// already. Refused when either is linked to someone else.
    pub async fn link(&self, user: &User, provider: &str, subject: &str, actor: &str) -> Result<bool> {
        match self.store.link_existing_user(provider, subject, user.id, unix_now()).await? {
            IdentityLink::Linked => {
                self.record(
                    AuditKind::IdentityLinked,
                    Some(user),
                    Actor::client(actor),
                    &format!("{provider} {subject}"),
                )
                .await?;
                Ok(true)
            }
            IdentityLink::SubjectLinked(id) if id == user.id => Ok(false),
            IdentityLink::SubjectLinked(id) => {
                let holder = self.store.user_by_id(id).await?.map(|u| u.username).unwrap_or_else(|| id.to_string());
                Err(AccountError::IdentityLinkedElsewhere { subject: subject.to_owned(), username: holder })
            }
            IdentityLink::UserLinked(other) => {
                Err(AccountError::UserLinkedElsewhere { username: user.username.clone(), subject: other })
            }
            IdentityLink::NoSuchUser => Err(no_such(user)),
        }
    }

    /// The operator unlinks `user` from its user of `provider`: the provider has no further say
    /// over it (a refusal it made goes, the sessions exchanged from its sessions end); the
    /// user's password and password sessions stay.
    pub async fn unlink(&self, user: &User, provider: &str, actor: &str) -> Result<Unlinked> {
        let unlinked = self
            .store
            .unlink_user(provider, user.id, unix_now())
            .await?
            .ok_or_else(|| AccountError::NotLinked(user.username.clone()))?;
        let detail = format!("{provider} {}; {} exchanged sessions ended", unlinked.subject, unlinked.sessions_ended);
        self.record(AuditKind::IdentityUnlinked, Some(user), Actor::client(actor), &detail).await?;
        Ok(unlinked)
    }
}
