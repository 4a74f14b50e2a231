//! Local users.

use super::{Db, Result, Store, audit::insert_audit, is_unique_violation, on_pool, on_writer, user_admin::lock_groups};
use crate::{
    clock::unix_now,
    domain::{AuditEvent, User},
};

pub struct NewUser<'a> {
    pub username: &'a str,
    pub email: &'a str,
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub password_hash: Option<&'a str>,
    pub is_staff: bool,
    pub is_superuser: bool,
    /// Created deactivated by the operator.
    pub disabled_locally: bool,
    /// A JSON object.
    pub custom_claims: &'a str,
    /// The groups it joins (ids; a group deleted meanwhile is skipped).
    pub group_ids: &'a [i64],
    pub created_at: i64,
}

/// What a write that an admin's rights guard came to.
#[derive(Debug, PartialEq, Eq)]
pub enum GuardedWrite<T> {
    Done(T),
    NoSuchUser,
    /// The user is a superuser now, and the admin is not one.
    Refused,
}

/// What creating a user came to.
pub enum UserInsert {
    Created(Box<User>),
    UsernameTaken,
    EmailTaken,
}

pub(super) const USER_COLUMNS: &str = "id, username, email, first_name, last_name, password_hash, is_active, \
                                       is_staff, is_superuser, created_at, last_login, custom_claims";

impl Store {
    /// Creates the user and its group memberships in one transaction. With `unique_email`, no
    /// user is created while another has the same email (ignoring case): the check is part of
    /// the insert, and on PostgreSQL such inserts take turns on an advisory lock (every replica
    /// shares it), so two racing creations cannot both pass it.
    pub async fn create_user(&self, user: &NewUser<'_>, unique_email: bool) -> Result<UserInsert> {
        let sql = format!(
            "INSERT INTO users (username, email, first_name, last_name, password_hash, is_active, is_staff, \
             is_superuser, created_at, disabled_locally, custom_claims) \
             SELECT $1, $2, $3, $4, $5, NOT $10, $6, $7, $8, $10, $11 \
             WHERE NOT ($9 AND EXISTS (SELECT 1 FROM users WHERE lower(email) = lower($2))) RETURNING {USER_COLUMNS}"
        );
        let lock = unique_email && matches!(self.db, Db::Postgres(_));
        let result = on_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            if lock {
                sqlx::query("SELECT pg_advisory_xact_lock(7211)").execute(&mut *tx).await?;
            }
            let inserted = sqlx::query_as::<_, User>(&sql)
                .bind(user.username).bind(user.email).bind(user.first_name).bind(user.last_name)
                .bind(user.password_hash).bind(user.is_staff).bind(user.is_superuser).bind(user.created_at)
                .bind(unique_email).bind(user.disabled_locally).bind(user.custom_claims)
                .fetch_optional(&mut *tx).await;
            if let Ok(Some(created)) = &inserted {
                lock_groups!(tx, user.group_ids, matches!(self.db, Db::Postgres(_)));
                for group_id in user.group_ids {
                    sqlx::query("INSERT INTO user_groups (user_id, group_id) SELECT $1, id FROM groups WHERE id = $2")
                        .bind(created.id).bind(group_id).execute(&mut *tx).await?;
                }
                tx.commit().await?;
            } else {
                tx.rollback().await?;
            }
            Ok::<_, sqlx::Error>(inserted)
        })?;
        match result {
            Ok(Some(user)) => Ok(UserInsert::Created(Box::new(user))),
            Ok(None) => Ok(UserInsert::EmailTaken),
            Err(e) if is_unique_violation(&e) => Ok(UserInsert::UsernameTaken),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn user_by_username(&self, username: &str) -> Result<Option<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE username = $1");
        Ok(on_pool!(self, pool => sqlx::query_as::<_, User>(&sql).bind(username).fetch_optional(pool).await)?)
    }

    /// The users with a password whose email is `email`, ignoring case (two at most: more than
    /// one is ambiguous). Users without a password (signed in through a provider, whose emails
    /// nobody keeps unique) cannot log in by email, so they never make an email ambiguous.
    pub async fn password_users_by_email(&self, email: &str) -> Result<Vec<User>> {
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users WHERE lower(email) = lower($1) AND email <> '' \
             AND password_hash IS NOT NULL LIMIT 2"
        );
        Ok(on_pool!(self, pool => sqlx::query_as::<_, User>(&sql).bind(email).fetch_all(pool).await)?)
    }

    pub async fn user_by_id(&self, id: i64) -> Result<Option<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        Ok(on_pool!(self, pool => sqlx::query_as::<_, User>(&sql).bind(id).fetch_optional(pool).await)?)
    }

    pub async fn list_users(&self) -> Result<Vec<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY id");
        Ok(on_pool!(self, pool => sqlx::query_as::<_, User>(&sql).fetch_all(pool).await)?)
    }

    /// Sets an operator's new password hash, ends every session of the user and records `audit`,
    /// in one transaction. With `unless_superuser` nothing is written to a superuser (an admin's
    /// right to change the user, checked before the hashing, still holds at the write).
    pub async fn set_password_ending_sessions(
        &self,
        user_id: i64,
        hash: &str,
        unless_superuser: bool,
        audit: &AuditEvent<'_>,
    ) -> Result<GuardedWrite<u64>> {
        let now = unix_now();
        on_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            let set = sqlx::query(
                "UPDATE users SET password_hash = $1, sessions_ended_at = $4 WHERE id = $2 AND NOT ($3 AND is_superuser)",
            )
            .bind(hash).bind(user_id).bind(unless_superuser).bind(now)
            .execute(&mut *tx).await?.rows_affected() == 1;
            if !set {
                let exists = sqlx::query_scalar::<_, i64>("SELECT id FROM users WHERE id = $1")
                    .bind(user_id).fetch_optional(&mut *tx).await?.is_some();
                tx.rollback().await?;
                return Ok(if exists { GuardedWrite::Refused } else { GuardedWrite::NoSuchUser });
            }
            let ended = sqlx::query("UPDATE refresh_families SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
                .bind(now).bind(user_id).execute(&mut *tx).await?.rows_affected();
            insert_audit!(audit, now, &mut *tx)?;
            tx.commit().await?;
            Ok(GuardedWrite::Done(ended))
        })
    }

    /// Sets the hash only if it is still `current` (the one a password check used). Returns
    /// whether it was set.
    pub async fn replace_password_hash(&self, user_id: i64, current: Option<&str>, hash: &str) -> Result<bool> {
        let done = on_writer!(self, pool => sqlx::query(
            "UPDATE users SET password_hash = $1 WHERE id = $2 AND password_hash = $3",
        )
        .bind(hash).bind(user_id).bind(current)
        .execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(done == 1)
    }

    /// The operator's decision on a user: `is_active` follows it unless the identity provider
    /// refuses the user. Returns whether the user is active now (`None`: no such user).
    pub async fn set_disabled_locally(&self, user_id: i64, disabled: bool) -> Result<Option<bool>> {
        Ok(on_writer!(self, pool => sqlx::query_scalar::<_, bool>(
            "UPDATE users SET disabled_locally = $1, is_active = (NOT $1) AND provider_allows WHERE id = $2 \
             RETURNING is_active",
        )
        .bind(disabled).bind(user_id).fetch_optional(pool).await)?)
    }

    /// Whether `username` is taken, ignoring case (`ALICE` beside `alice` would be confusable),
    /// by a user other than `except`.
    pub async fn username_taken(&self, username: &str, except: Option<i64>) -> Result<bool> {
        let taken = on_pool!(self, pool => sqlx::query_scalar::<_, i64>(
            "SELECT id FROM users WHERE lower(username) = lower($1) AND id <> $2 LIMIT 1",
        )
        .bind(username).bind(except.unwrap_or(0)).fetch_optional(pool).await)?;
        Ok(taken.is_some())
    }
}
