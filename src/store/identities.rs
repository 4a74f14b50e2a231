//! Local users linked to external identities, by (provider, subject), and the record of
//! webhook deliveries already applied. Which username a linked user gets, and when a provider's
//! view applies, is decided by `accounts`; the statements that carry it out are here.

use super::{Result, Store, is_unique_violation, on_pool, on_writer, users::USER_COLUMNS};
use crate::domain::{ExternalProfile, User};

/// What inserting a linked user did.
#[derive(Debug)]
pub enum LinkedUserInsert {
    Created(Box<User>),
    /// The username, or the identity, was taken meanwhile: nothing was written.
    Conflict,
}

/// What a token's roles met: the flags stored before them, and whether they replaced them (not
/// when roles as new or newer were applied already: then `before` is what holds).
#[derive(Debug, Clone, Copy)]
pub struct RolesWrite {
    pub before: (bool, bool),
    pub applied: bool,
}

impl Store {
    pub async fn user_by_identity(&self, provider: &str, subject: &str) -> Result<Option<User>> {
        let sql = format!(
            "SELECT {} FROM users u JOIN external_identities x ON x.user_id = u.id \
             WHERE x.provider = $1 AND x.subject = $2",
            qualified_user_columns()
        );
        Ok(
            on_pool!(self, pool => sqlx::query_as::<_, User>(&sql).bind(provider).bind(subject).fetch_optional(pool).await)?,
        )
    }

    /// A local user (no password) named `username`, linked to the identity, in one transaction.
    pub async fn insert_linked_user(
        &self,
        provider: &str,
        subject: &str,
        username: &str,
        profile: &ExternalProfile,
        active: bool,
        now: i64,
    ) -> Result<LinkedUserInsert> {
        let insert_user = format!(
            "INSERT INTO users (username, email, first_name, last_name, password_hash, is_active, provider_allows, \
             is_staff, is_superuser, created_at) VALUES ($1, $2, $3, $4, NULL, $5, $5, $6, $7, $8) \
             RETURNING {USER_COLUMNS}"
        );
        let (is_staff, is_superuser) = profile.roles.unwrap_or_default();
        let roles_updated_at = profile.roles.and(profile.roles_as_of_ms).unwrap_or(0);
        let inserted: sqlx::Result<User> = on_writer!(self, pool => async {
            let mut tx = pool.begin().await?;
            let user = sqlx::query_as::<_, User>(&insert_user)
                .bind(username).bind(&profile.email).bind(&profile.first_name).bind(&profile.last_name)
                .bind(active).bind(is_staff).bind(is_superuser).bind(now)
                .fetch_one(&mut *tx).await?;
            sqlx::query(
                "INSERT INTO external_identities (provider, subject, user_id, created_at, source_updated_at, \
                 roles_updated_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(provider).bind(subject).bind(user.id).bind(now).bind(profile.updated_at_ms).bind(roles_updated_at)
            .execute(&mut *tx).await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(user)
        }.await);
        match inserted {
            Ok(user) => Ok(LinkedUserInsert::Created(Box::new(user))),
            Err(e) if is_unique_violation(&e) => Ok(LinkedUserInsert::Conflict),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes the provider's view of linked user `user_id` unless the stored view is newer, or
    /// the identity is no longer linked to that user (`None`): the guard and the write are one
    /// transaction, so of two deliveries racing, the older loses. A link that keeps the local
    /// profile (an existing user linked by hand or by `external_id`) keeps its username, email
    /// and names. `active` is whether the provider allows the user: it never undoes the
    /// operator's deactivation. The profile's roles, when it has any, set the staff flags in the
    /// same write unless roles newer than them were applied (a delivery or a session token), so
    /// an older view never brings back roles a newer one took away. Ties go to the user object:
    /// its `updated_at` is the change itself, a token's `iat` only the second it was minted in.
    pub async fn update_linked_user(
        &self,
        provider: &str,
        subject: &str,
        user_id: i64,
        username: &str,
        profile: &ExternalProfile,
        active: bool,
    ) -> Result<Option<User>> {
        let update_user = format!(
            "UPDATE users SET username = CASE WHEN $9 THEN username ELSE $1 END, \
             email = CASE WHEN $9 THEN email ELSE $2 END, first_name = CASE WHEN $9 THEN first_name ELSE $3 END, \
             last_name = CASE WHEN $9 THEN last_name ELSE $4 END, \
             provider_allows = CASE WHEN $9 AND $10 THEN provider_allows ELSE $5 END, \
             is_active = (NOT disabled_locally) AND CASE WHEN $9 AND $10 THEN provider_allows ELSE $5 END, \
             is_staff = COALESCE($7, is_staff), \
             is_superuser = COALESCE($8, is_superuser) WHERE id = $6 RETURNING {USER_COLUMNS}"
        );
        let roles = (profile.roles.map(|r| r.0), profile.roles.map(|r| r.1));
        on_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            let keeps_local_profile = sqlx::query_scalar::<_, bool>(
                "UPDATE external_identities SET source_updated_at = $1 \
                 WHERE provider = $2 AND subject = $3 AND user_id = $4 AND source_updated_at <= $1 \
                 RETURNING keeps_local_profile",
            )
            .bind(profile.updated_at_ms).bind(provider).bind(subject).bind(user_id)
            .fetch_optional(&mut *tx).await?;
            let Some(keeps_local_profile) = keeps_local_profile else {
                tx.rollback().await?;
                return Ok(None);
            };
            let roles_current = match (profile.roles, profile.roles_as_of_ms) {
                (Some(_), Some(as_of)) => sqlx::query(
                    "UPDATE external_identities SET roles_updated_at = $1 \
                     WHERE provider = $2 AND subject = $3 AND roles_updated_at <= $1",
                )
                .bind(as_of).bind(provider).bind(subject)
                .execute(&mut *tx).await?.rows_affected() == 1,
                _ => true,
            };
            let roles = if roles_current { roles } else { (None, None) };
            let user = sqlx::query_as::<_, User>(&update_user)
                .bind(username).bind(&profile.email).bind(&profile.first_name).bind(&profile.last_name)
                .bind(active).bind(user_id).bind(roles.0).bind(roles.1).bind(keeps_local_profile)
                .bind(profile.locked_out)
                .fetch_one(&mut *tx).await?;
            tx.commit().await?;
            Ok(Some(user))
        })
    }

    /// Sets linked user `user_id`'s staff flags to the roles of one of the provider's tokens,
    /// minted at `as_of` (ms), unless roles as new or newer were applied; `None` applies them
    /// whatever came before. The guard records the token's time as it passes, in the flags'
    /// transaction: of a token and a delivery racing, the older loses whichever lands last.
    /// `None`: the user is gone.
    pub async fn set_linked_user_roles(
        &self,
        provider: &str,
        subject: &str,
        user_id: i64,
        roles: (bool, bool),
        as_of: Option<i64>,
    ) -> Result<Option<RolesWrite>> {
        on_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            let newer = match as_of {
                Some(as_of) => sqlx::query(
                    "UPDATE external_identities SET roles_updated_at = $1 \
                     WHERE provider = $2 AND subject = $3 AND user_id = $4 AND roles_updated_at < $1",
                )
                .bind(as_of).bind(provider).bind(subject).bind(user_id)
                .execute(&mut *tx).await?.rows_affected() == 1,
                None => true,
            };
            let before = sqlx::query_as::<_, (bool, bool)>("SELECT is_staff, is_superuser FROM users WHERE id = $1")
                .bind(user_id).fetch_optional(&mut *tx).await?;
            let Some(before) = before else {
                tx.rollback().await?;
                return Ok(None);
            };
            if newer && before != roles {
                sqlx::query("UPDATE users SET is_staff = $1, is_superuser = $2 WHERE id = $3")
                    .bind(roles.0).bind(roles.1).bind(user_id)
                    .execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(Some(RolesWrite { before, applied: newer }))
        })
    }

    /// The provider deleted the user: deactivated for good (no later update revives it).
    /// Returns the local user id, if the identity was linked.
    pub async fn deactivate_external_user(&self, provider: &str, subject: &str) -> Result<Option<i64>> {
        on_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            let user_id = sqlx::query_scalar::<_, i64>(
                "UPDATE external_identities SET source_updated_at = $1, roles_updated_at = $1 \
                 WHERE provider = $2 AND subject = $3 RETURNING user_id",
            )
            .bind(i64::MAX).bind(provider).bind(subject)
            .fetch_optional(&mut *tx).await?;
            if let Some(id) = user_id {
                sqlx::query("UPDATE users SET is_active = FALSE, provider_allows = FALSE WHERE id = $1")
                    .bind(id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(user_id)
        })
    }

    /// Ends the local sessions born from one external session. Returns how many ended.
    /// Only sessions of users linked to `provider` count: another provider's session may carry
    /// the same id.
    pub async fn revoke_external_session(&self, provider: &str, external_session_id: &str, now: i64) -> Result<u64> {
        let done = on_writer!(self, pool => sqlx::query(
            "UPDATE refresh_families SET revoked_at = $1 WHERE external_session_id = $2 AND revoked_at IS NULL \
             AND user_id IN (SELECT user_id FROM external_identities WHERE provider = $3)",
        )
        .bind(now).bind(external_session_id).bind(provider)
        .execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(done)
    }

    /// Ends the sessions of the user linked to (provider, subject) that carry organization
    /// `org_id` (only exchanged sessions carry one). Returns how many ended.
    pub async fn revoke_organization_sessions(
        &self,
        provider: &str,
        subject: &str,
        org_id: &str,
        now: i64,
    ) -> Result<u64> {
        let done = on_writer!(self, pool => sqlx::query(
            "UPDATE refresh_families SET revoked_at = $1 WHERE org_id = $2 AND revoked_at IS NULL \
             AND user_id IN (SELECT user_id FROM external_identities WHERE provider = $3 AND subject = $4)",
        )
        .bind(now).bind(org_id).bind(provider).bind(subject)
        .execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(done)
    }

    pub async fn webhook_delivery_seen(&self, delivery_id: &str) -> Result<bool> {
        let seen = on_pool!(self, pool => sqlx::query_scalar::<_, i64>(
            "SELECT received_at FROM webhook_deliveries WHERE id = $1",
        )
        .bind(delivery_id).fetch_optional(pool).await)?;
        Ok(seen.is_some())
    }

    /// Remembers an applied delivery. Recording it twice (two replicas racing) is harmless.
    pub async fn record_webhook_delivery(&self, delivery_id: &str, now: i64) -> Result<()> {
        on_writer!(self, pool => sqlx::query(
            "INSERT INTO webhook_deliveries (id, received_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
        )
        .bind(delivery_id).bind(now)
        .execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Forgets deliveries received before `before`. Returns how many.
    pub async fn prune_webhook_deliveries(&self, before: i64) -> Result<u64> {
        let done = on_writer!(self, pool => sqlx::query("DELETE FROM webhook_deliveries WHERE received_at < $1")
            .bind(before).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(done)
    }
}

fn qualified_user_columns() -> String {
    USER_COLUMNS.split(", ").map(|c| format!("u.{c}")).collect::<Vec<_>>().join(", ")
}
