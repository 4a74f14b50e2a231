//! Links between existing local users and a provider's users, made and undone by the operator
//! (Clerk's `external_id`, `tokensmith clerk link` / `unlink`). Each side of a link is unique
//! (migration 0009): the statements here rely on the database, not on a read before the write,
//! so two requests linking at once cannot both win. When a link may be made is decided by
//! `accounts`.

use super::{Result, Store, on_writer};

/// What linking an existing local user came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityLink {
    /// Linked now.
    Linked,
    /// The provider's user is linked already, to this local user (maybe the one asked for).
    SubjectLinked(i64),
    /// The local user is linked already to another of the provider's users: this one.
    UserLinked(String),
    /// There is no such local user.
    NoSuchUser,
}

/// What unlinking a local user did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unlinked {
    /// The provider's user it was linked to.
    pub subject: String,
    /// Its sessions exchanged from a provider's session, ended.
    pub sessions_ended: u64,
    /// Whether it is active now, and whether it was before (the provider may have refused it).
    pub active: bool,
    pub was_active: bool,
}

/// A conflict that is gone when looked at (the link was undone meanwhile) is tried again, this often.
const ATTEMPTS: usize = 3;

impl Store {
    /// Links local user `user_id` to the provider's user `subject`, keeping the local profile
    /// (see `update_linked_user`), unless either is linked already. Nothing of the user changes.
    pub async fn link_existing_user(
        &self,
        provider: &str,
        subject: &str,
        user_id: i64,
        now: i64,
    ) -> Result<IdentityLink> {
        for _ in 0..ATTEMPTS {
            if let Some(outcome) = self.try_link_existing_user(provider, subject, user_id, now).await? {
                return Ok(outcome);
            }
        }
        Ok(IdentityLink::NoSuchUser)
    }

    /// One attempt: the insert, and when it did nothing, why (`None`: no reason left to see).
    async fn try_link_existing_user(
        &self,
        provider: &str,
        subject: &str,
        user_id: i64,
        now: i64,
    ) -> Result<Option<IdentityLink>> {
        Ok(on_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            // DO NOTHING on either unique key: the primary key (the subject is linked) or
            // external_identities_one_per_user (the user is). On PostgreSQL a racing insert
            // of the same key is waited for, so what is read next is what won.
            let inserted = sqlx::query(
                "INSERT INTO external_identities (provider, subject, user_id, created_at, source_updated_at, \
                 roles_updated_at, keeps_local_profile) SELECT $1, $2, $3, $4, 0, 0, TRUE \
                 WHERE EXISTS (SELECT 1 FROM users WHERE id = $3) ON CONFLICT DO NOTHING",
            )
            .bind(provider).bind(subject).bind(user_id).bind(now)
            .execute(&mut *tx).await?.rows_affected() == 1;
            let outcome = if inserted {
                Some(IdentityLink::Linked)
            } else if let Some(linked_to) = sqlx::query_scalar::<_, i64>(
                "SELECT user_id FROM external_identities WHERE provider = $1 AND subject = $2",
            )
            .bind(provider).bind(subject).fetch_optional(&mut *tx).await?
            {
                Some(IdentityLink::SubjectLinked(linked_to))
            } else if let Some(other) = sqlx::query_scalar::<_, String>(
                "SELECT subject FROM external_identities WHERE provider = $1 AND user_id = $2",
            )
            .bind(provider).bind(user_id).fetch_optional(&mut *tx).await?
            {
                Some(IdentityLink::UserLinked(other))
            } else {
                let exists = sqlx::query_scalar::<_, i64>("SELECT id FROM users WHERE id = $1")
                    .bind(user_id).fetch_optional(&mut *tx).await?.is_some();
                (!exists).then_some(IdentityLink::NoSuchUser)
            };
            tx.commit().await?;
            Ok::<_, sqlx::Error>(outcome)
        })?)
    }

    /// Undoes the link of local user `user_id` to its user of `provider`, in one transaction:
    /// the provider's refusal (`provider_allows`: only providers with events, Clerk, ever set
    /// it) goes with the link, so the user is active unless an operator deactivated it; and the
    /// sessions exchanged from a provider's session end, since the provider can no longer end
    /// them. Password sessions stay. `None`: the user was not linked.
    pub async fn unlink_user(&self, provider: &str, user_id: i64, now: i64) -> Result<Option<Unlinked>> {
        Ok(on_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            let subject = sqlx::query_scalar::<_, String>(
                "DELETE FROM external_identities WHERE provider = $1 AND user_id = $2 RETURNING subject",
            )
            .bind(provider).bind(user_id).fetch_optional(&mut *tx).await?;
            let Some(subject) = subject else {
                tx.rollback().await?;
                return Ok(None);
            };
            let was_active = sqlx::query_scalar::<_, bool>("SELECT is_active FROM users WHERE id = $1")
                .bind(user_id).fetch_one(&mut *tx).await?;
            let active = sqlx::query_scalar::<_, bool>(
                "UPDATE users SET provider_allows = TRUE, is_active = NOT disabled_locally WHERE id = $1 \
                 RETURNING is_active",
            )
            .bind(user_id).fetch_one(&mut *tx).await?;
            let sessions_ended = sqlx::query(
                "UPDATE refresh_families SET revoked_at = $1 \
                 WHERE user_id = $2 AND revoked_at IS NULL AND external_session_id IS NOT NULL",
            )
            .bind(now).bind(user_id).execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            Ok::<_, sqlx::Error>(Some(Unlinked { subject, sessions_ended, active, was_active }))
        })?)
    }
}
