//! What the admin API reads and writes of users beyond the CLI's chores: pages of users found by
//! a search, the groups of a page's users in one query, an edit of several fields in one
//! transaction (with its audit events), and deletion.

use std::collections::HashMap;

use super::{
    Db, Result, Store,
    audit::insert_audit,
    is_unique_violation, on_pool, on_writer,
    users::{GuardedWrite, USER_COLUMNS},
};
use crate::{
    clock::unix_now,
    domain::{AuditEvent, User},
};

/// Which rows of a list: `limit` of them after skipping `offset`.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub offset: i64,
    pub limit: i64,
}

/// How many rows match, and those in the window.
pub struct Found<T> {
    pub count: i64,
    pub rows: Vec<T>,
}

/// The fields of a user an edit sets; `None` leaves one as it is.
#[derive(Debug, Default)]
pub struct UserChanges<'a> {
    pub username: Option<&'a str>,
    pub email: Option<&'a str>,
    pub first_name: Option<&'a str>,
    pub last_name: Option<&'a str>,
    pub is_staff: Option<bool>,
    pub is_superuser: Option<bool>,
    /// The operator's deactivation (`Some(true)`) or its undoing: `is_active` follows it unless
    /// the user's identity provider refuses the user.
    pub disabled_locally: Option<bool>,
    /// A JSON object.
    pub custom_claims: Option<&'a str>,
    /// Replaces the user's groups (ids).
    pub group_ids: Option<&'a [i64]>,
    /// No other user may have the email (`USERNAME_FIELD=email`).
    pub unique_email: bool,
    /// Nothing is written to a superuser (an admin who is not one: their right to change the
    /// user, checked on the record read before, still holds at the write).
    pub unless_superuser: bool,
}

/// What an edit came to.
pub enum UserUpdate {
    Updated(Box<User>),
    NoSuchUser,
    UsernameTaken,
    EmailTaken,
    /// The user is a superuser now (`unless_superuser`).
    Refused,
}

/// A search's `WHERE` condition and the patterns it binds as `$1…$n`; the window's limit and
/// offset are `$limit` and `$offset`, after them.
pub(super) struct Search {
    pub filter: String,
    pub patterns: Vec<String>,
    pub limit: usize,
    pub offset: usize,
}

/// Runs a search's count and its window of rows (`$row`s) on whichever database is open.
macro_rules! fetch_found {
    ($store:expr, $search:expr, $count_sql:expr, $rows_sql:expr, $row:ty, $window:expr) => {
        $crate::store::on_pool!($store, pool => {
            let mut count = sqlx::query_scalar::<_, i64>(&$count_sql);
            let mut rows = sqlx::query_as::<_, $row>(&$rows_sql);
            for pattern in &$search.patterns {
                count = count.bind(pattern);
                rows = rows.bind(pattern);
            }
            let count = count.fetch_one(pool).await?;
            let rows = rows.bind($window.limit).bind($window.offset).fetch_all(pool).await?;
            Ok($crate::store::Found { count, rows })
        })
    };
}
pub(super) use fetch_found;

/// On PostgreSQL, holds the groups `$ids` (`FOR KEY SHARE`) until the transaction ends: a group
/// deleted at the same moment waits for the memberships about to be written, then takes them
/// with it, instead of failing their foreign key. SQLite's one writer needs no lock.
macro_rules! lock_groups {
    ($tx:expr, $ids:expr, $postgres:expr) => {
        if $postgres {
            for id in $ids {
                sqlx::query("SELECT id FROM groups WHERE id = $1 FOR KEY SHARE").bind(id).execute(&mut *$tx).await?;
            }
        }
    };
}
pub(super) use lock_groups;

/// Whether another user than `$user_id` has the email `$email` (ignoring case), in `$tx`. On
/// PostgreSQL under the lock user creation takes: a creation and an edit cannot both pass it.
macro_rules! email_taken {
    ($tx:expr, $email:expr, $user_id:expr, $postgres:expr) => {{
        if $postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(7211)").execute(&mut *$tx).await?;
        }
        sqlx::query_scalar::<_, i64>("SELECT id FROM users WHERE lower(email) = lower($1) AND id <> $2 LIMIT 1")
            .bind($email)
            .bind($user_id)
            .fetch_optional(&mut *$tx)
            .await?
            .is_some()
    }};
}

/// Makes `$group_ids` the user's groups, in `$tx`. A group deleted before the lock is skipped,
/// not an error: it is gone either way.
macro_rules! replace_groups {
    ($tx:expr, $user_id:expr, $group_ids:expr, $postgres:expr) => {
        lock_groups!($tx, $group_ids, $postgres);
        sqlx::query("DELETE FROM user_groups WHERE user_id = $1").bind($user_id).execute(&mut *$tx).await?;
        for group_id in $group_ids {
            sqlx::query(
                "INSERT INTO user_groups (user_id, group_id) SELECT $1, id FROM groups WHERE id = $2 \
                 ON CONFLICT DO NOTHING",
            )
            .bind($user_id)
            .bind(group_id)
            .execute(&mut *$tx)
            .await?;
        }
    };
}

/// `%` and `_` match themselves in a `LIKE … ESCAPE '\'` pattern.
/// SQLite's `lower()` folds ASCII letters only (`ascii_only`): the term is folded the same way, so
/// that `Ärger` still finds `Ärger` there (and `ärger` does not; PostgreSQL folds both).
pub(super) fn contains_pattern(term: &str, ascii_only: bool) -> String {
    let folded = if ascii_only { term.to_ascii_lowercase() } else { term.to_lowercase() };
    let mut pattern = String::from("%");
    for c in folded.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

impl Store {
    /// Users, by id, whose username, email or names contain every term, ignoring case (ASCII
    /// case only on SQLite, whose `lower()` folds nothing else).
    pub async fn search_users(&self, terms: &[String], window: Window) -> Result<Found<User>> {
        let search = self.search(terms, &["username", "email", "first_name", "last_name"]);
        let Search { filter, limit, offset, .. } = &search;
        let count_sql = format!("SELECT COUNT(*) FROM users WHERE {filter}");
        let rows_sql =
            format!("SELECT {USER_COLUMNS} FROM users WHERE {filter} ORDER BY id LIMIT ${limit} OFFSET ${offset}");
        fetch_found!(self, search, count_sql, rows_sql, User, window)
    }

    /// Every term in one of `columns`, ignoring case as the database can.
    pub(super) fn search(&self, terms: &[String], columns: &[&str]) -> Search {
        let mut filter = String::from("TRUE");
        for n in 1..=terms.len() {
            let any: Vec<String> = columns.iter().map(|c| format!("lower({c}) LIKE ${n} ESCAPE '\\'")).collect();
            filter.push_str(&format!(" AND ({})", any.join(" OR ")));
        }
        let patterns = terms.iter().map(|t| contains_pattern(t, self.folds_ascii_only())).collect();
        Search { filter, patterns, limit: terms.len() + 1, offset: terms.len() + 2 }
    }

    /// The group names of each of `user_ids` (a page of users), in name order, in one query.
    pub async fn group_names_of_users(&self, user_ids: &[i64]) -> Result<HashMap<i64, Vec<String>>> {
        if user_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let placeholders: Vec<String> = (1..=user_ids.len()).map(|n| format!("${n}")).collect();
        let sql = format!(
            "SELECT m.user_id, g.name FROM groups g JOIN user_groups m ON m.group_id = g.id \
             WHERE m.user_id IN ({}) ORDER BY g.name",
            placeholders.join(", ")
        );
        let pairs = on_pool!(self, pool => {
            let mut query = sqlx::query_as::<_, (i64, String)>(&sql);
            for id in user_ids {
                query = query.bind(id);
            }
            query.fetch_all(pool).await
        })?;
        let mut groups: HashMap<i64, Vec<String>> = HashMap::new();
        for (user_id, name) in pairs {
            groups.entry(user_id).or_default().push(name);
        }
        Ok(groups)
    }

    /// Applies `changes` and records `audit` in one transaction: every field lands or none does,
    /// and two edits of different fields of one user both land. A deactivation ends the user's
    /// sessions in the same transaction.
    pub async fn update_user(
        &self,
        user_id: i64,
        changes: &UserChanges<'_>,
        audit: &[AuditEvent<'_>],
    ) -> Result<UserUpdate> {
        let now = unix_now();
        let sql = format!(
            "UPDATE users SET username = COALESCE($1, username), email = COALESCE($2, email), \
             first_name = COALESCE($3, first_name), last_name = COALESCE($4, last_name), \
             is_staff = COALESCE($5, is_staff), is_superuser = COALESCE($6, is_superuser), \
             disabled_locally = COALESCE($7, disabled_locally), \
             is_active = (NOT COALESCE($7, disabled_locally)) AND provider_allows, \
             custom_claims = COALESCE($8, custom_claims) WHERE id = $9 AND NOT ($10 AND is_superuser) \
             RETURNING {USER_COLUMNS}"
        );
        let email_check = changes.unique_email && changes.email.is_some_and(|e| !e.is_empty());
        let postgres = matches!(self.db, Db::Postgres(_));
        on_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            if email_check && email_taken!(tx, changes.email, user_id, postgres) {
                tx.rollback().await?;
                return Ok(UserUpdate::EmailTaken);
            }
            let updated = sqlx::query_as::<_, User>(&sql)
                .bind(changes.username).bind(changes.email).bind(changes.first_name).bind(changes.last_name)
                .bind(changes.is_staff).bind(changes.is_superuser).bind(changes.disabled_locally)
                .bind(changes.custom_claims).bind(user_id).bind(changes.unless_superuser)
                .fetch_optional(&mut *tx).await;
            let refused = match updated {
                Ok(Some(user)) => Ok(user),
                Ok(None) => {
                    let exists = sqlx::query_scalar::<_, i64>("SELECT id FROM users WHERE id = $1")
                        .bind(user_id).fetch_optional(&mut *tx).await?.is_some();
                    Err(if exists { UserUpdate::Refused } else { UserUpdate::NoSuchUser })
                }
                Err(e) if is_unique_violation(&e) => Err(UserUpdate::UsernameTaken),
                Err(e) => return Err(e.into()),
            };
            let user = match refused {
                Ok(user) => user,
                Err(refusal) => {
                    tx.rollback().await?;
                    return Ok(refusal);
                }
            };
            if changes.disabled_locally == Some(true) {
                sqlx::query("UPDATE users SET sessions_ended_at = $1 WHERE id = $2")
                    .bind(now).bind(user_id).execute(&mut *tx).await?;
                sqlx::query("UPDATE refresh_families SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
                    .bind(now).bind(user_id).execute(&mut *tx).await?;
            }
            if let Some(group_ids) = changes.group_ids {
                replace_groups!(tx, user_id, group_ids, postgres);
            }
            for event in audit {
                insert_audit!(event, now, &mut *tx)?;
            }
            tx.commit().await?;
            Ok(UserUpdate::Updated(Box::new(user)))
        })
    }

    /// Deletes the user, its sessions, groups and links with it (the schema cascades), and records
    /// `audit`. With `unless_superuser`, a superuser is not deleted.
    pub async fn delete_user(
        &self,
        user_id: i64,
        unless_superuser: bool,
        audit: &AuditEvent<'_>,
    ) -> Result<GuardedWrite<()>> {
        let now = unix_now();
        on_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            let deleted = sqlx::query("DELETE FROM users WHERE id = $1 AND NOT ($2 AND is_superuser)")
                .bind(user_id).bind(unless_superuser).execute(&mut *tx).await?.rows_affected() == 1;
            if !deleted {
                let exists = sqlx::query_scalar::<_, i64>("SELECT id FROM users WHERE id = $1")
                    .bind(user_id).fetch_optional(&mut *tx).await?.is_some();
                tx.rollback().await?;
                return Ok(if exists { GuardedWrite::Refused } else { GuardedWrite::NoSuchUser });
            }
            insert_audit!(audit, now, &mut *tx)?;
            tx.commit().await?;
            Ok(GuardedWrite::Done(()))
        })
    }

    /// SQLite's `lower()` folds ASCII letters only.
    pub(super) fn folds_ascii_only(&self) -> bool {
        matches!(self.db, Db::Sqlite { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_terms_match_their_wildcards_literally() {
        assert_eq!(contains_pattern("Ada", false), "%ada%");
        assert_eq!(contains_pattern("50%_a\\b", false), "%50\\%\\_a\\\\b%");
        assert_eq!(
            (contains_pattern("Ärger", true), contains_pattern("Ärger", false)),
            ("%Ärger%".into(), "%ärger%".into())
        );
    }
}
