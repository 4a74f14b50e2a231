//! Local users linked to external identities, by (provider, subject), and the record of
//! webhook deliveries already applied.

use super::{Store, User, is_unique_violation, on_pool, on_writer, users::USER_COLUMNS};
use crate::external::ExternalProfile;

/// What applying a provider's view of a user did.
#[derive(Debug)]
pub enum ProfileApplied {
    Created(User),
    Updated(User),
    /// Older than what is stored (`updated_at`): ignored.
    Stale,
}

/// Candidate usernames for a new linked user: the provider's username, else the email, else
/// the subject; then the same with a piece of the subject, then the subject itself.
fn username_candidates(profile: &ExternalProfile, subject: &str) -> Vec<String> {
    let preferred = profile.username.clone().or_else(|| Some(profile.email.clone()).filter(|e| !e.is_empty()));
    // Django's username alphabet, at most 150 characters.
    let clean =
        |s: &str| -> String { s.chars().filter(|c| c.is_alphanumeric() || "@.+-_".contains(*c)).take(150).collect() };
    let subject_clean = clean(subject);
    let tail: String = subject_clean.chars().rev().take(8).collect::<Vec<_>>().into_iter().rev().collect();
    let mut candidates = Vec::new();
    if let Some(base) = preferred.map(|p| clean(&p)).filter(|b| !b.is_empty()) {
        let short: String = base.chars().take(140).collect();
        candidates.push(base);
        candidates.push(format!("{short}-{tail}"));
    }
    candidates.push(subject_clean.clone());
    let short: String = subject_clean.chars().take(140).collect();
    candidates.push(format!("{short}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]));
    candidates.retain(|c| !c.is_empty());
    candidates
}

impl Store {
    pub async fn user_by_identity(&self, provider: &str, subject: &str) -> Result<Option<User>, sqlx::Error> {
        let sql = format!(
            "SELECT {} FROM users u JOIN external_identities x ON x.user_id = u.id \
             WHERE x.provider = $1 AND x.subject = $2",
            qualified_user_columns()
        );
        on_pool!(self, pool => sqlx::query_as::<_, User>(&sql).bind(provider).bind(subject).fetch_optional(pool).await)
    }

    /// Creates a local user (no password) linked to the identity. When another request links it
    /// first, returns that user instead: one identity, one local user.
    pub async fn create_linked_user(
        &self,
        provider: &str,
        subject: &str,
        profile: &ExternalProfile,
        active: bool,
        now: i64,
    ) -> Result<User, sqlx::Error> {
        let mut last_error = None;
        for username in username_candidates(profile, subject) {
            if self.user_by_username(&username).await?.is_some() {
                continue;
            }
            match self.insert_linked_user(provider, subject, &username, profile, active, now).await {
                Ok(user) => return Ok(user),
                Err(e) if is_unique_violation(&e) => {
                    // Either the identity was linked meanwhile, or the username was just taken.
                    if let Some(user) = self.user_by_identity(provider, subject).await? {
                        return Ok(user);
                    }
                    last_error = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_error.unwrap_or_else(|| sqlx::Error::Protocol("no free username for the external user".to_owned())))
    }

    async fn insert_linked_user(
        &self,
        provider: &str,
        subject: &str,
        username: &str,
        profile: &ExternalProfile,
        active: bool,
        now: i64,
    ) -> Result<User, sqlx::Error> {
        let insert_user = format!(
            "INSERT INTO users (username, email, first_name, last_name, password_hash, is_active, is_staff, \
             is_superuser, created_at) VALUES ($1, $2, $3, $4, NULL, $5, FALSE, FALSE, $6) RETURNING {USER_COLUMNS}"
        );
        on_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            let user = sqlx::query_as::<_, User>(&insert_user)
                .bind(username).bind(&profile.email).bind(&profile.first_name).bind(&profile.last_name)
                .bind(active).bind(now)
                .fetch_one(&mut *tx).await?;
            sqlx::query(
                "INSERT INTO external_identities (provider, subject, user_id, created_at, source_updated_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(provider).bind(subject).bind(user.id).bind(now).bind(profile.updated_at_ms)
            .execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(user)
        })
    }

    /// Applies the provider's view of a user (webhook or directory sync): creates the linked
    /// user, or updates it unless the stored view is newer. The username changes only when the
    /// new one is free.
    pub async fn apply_external_profile(
        &self,
        provider: &str,
        subject: &str,
        profile: &ExternalProfile,
        active: bool,
        now: i64,
    ) -> Result<ProfileApplied, sqlx::Error> {
        let Some(user) = self.user_by_identity(provider, subject).await? else {
            return self.create_linked_user(provider, subject, profile, active, now).await.map(ProfileApplied::Created);
        };
        let username = match &profile.username {
            Some(wanted) if *wanted != user.username && self.user_by_username(wanted).await?.is_none() => {
                wanted.clone()
            }
            _ => user.username.clone(),
        };
        let update_user = format!(
            "UPDATE users SET username = $1, email = $2, first_name = $3, last_name = $4, is_active = $5 \
             WHERE id = $6 RETURNING {USER_COLUMNS}"
        );
        on_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            // The guard and the write in one statement: of two deliveries racing, the older loses.
            let current = sqlx::query(
                "UPDATE external_identities SET source_updated_at = $1 \
                 WHERE provider = $2 AND subject = $3 AND source_updated_at <= $1",
            )
            .bind(profile.updated_at_ms).bind(provider).bind(subject)
            .execute(&mut *tx).await?.rows_affected() == 1;
            if !current {
                tx.rollback().await?;
                return Ok(ProfileApplied::Stale);
            }
            let user = sqlx::query_as::<_, User>(&update_user)
                .bind(&username).bind(&profile.email).bind(&profile.first_name).bind(&profile.last_name)
                .bind(active).bind(user.id)
                .fetch_one(&mut *tx).await?;
            tx.commit().await?;
            Ok(ProfileApplied::Updated(user))
        })
    }

    /// The provider deleted the user: deactivated for good (no later update revives it).
    /// Returns the local user id, if the identity was linked.
    pub async fn deactivate_external_user(&self, provider: &str, subject: &str) -> Result<Option<i64>, sqlx::Error> {
        on_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            let user_id = sqlx::query_scalar::<_, i64>(
                "UPDATE external_identities SET source_updated_at = $1 WHERE provider = $2 AND subject = $3 RETURNING user_id",
            )
            .bind(i64::MAX).bind(provider).bind(subject)
            .fetch_optional(&mut *tx).await?;
            if let Some(id) = user_id {
                sqlx::query("UPDATE users SET is_active = FALSE WHERE id = $1").bind(id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(user_id)
        })
    }

    /// Ends the local sessions born from one external session. Returns how many ended.
    pub async fn revoke_external_session(&self, external_session_id: &str, now: i64) -> Result<u64, sqlx::Error> {
        on_writer!(self, pool => sqlx::query(
            "UPDATE refresh_families SET revoked_at = $1 WHERE external_session_id = $2 AND revoked_at IS NULL",
        )
        .bind(now).bind(external_session_id)
        .execute(pool).await.map(|r| r.rows_affected()))
    }

    pub async fn webhook_delivery_seen(&self, delivery_id: &str) -> Result<bool, sqlx::Error> {
        on_pool!(self, pool => sqlx::query_scalar::<_, i64>("SELECT received_at FROM webhook_deliveries WHERE id = $1")
            .bind(delivery_id).fetch_optional(pool).await.map(|r| r.is_some()))
    }

    /// Remembers an applied delivery. Recording it twice (two replicas racing) is harmless.
    pub async fn record_webhook_delivery(&self, delivery_id: &str, now: i64) -> Result<(), sqlx::Error> {
        on_writer!(self, pool => sqlx::query(
            "INSERT INTO webhook_deliveries (id, received_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
        )
        .bind(delivery_id).bind(now)
        .execute(pool).await.map(|_| ()))
    }

    /// Forgets deliveries received before `before`. Returns how many.
    pub async fn prune_webhook_deliveries(&self, before: i64) -> Result<u64, sqlx::Error> {
        on_writer!(self, pool => sqlx::query("DELETE FROM webhook_deliveries WHERE received_at < $1")
            .bind(before).execute(pool).await.map(|r| r.rows_affected()))
    }
}

fn qualified_user_columns() -> String {
    USER_COLUMNS.split(", ").map(|c| format!("u.{c}")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_prefer_clerk_username_then_email_then_subject() {
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
}
