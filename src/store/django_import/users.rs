//! The users of an import: created with Django's ids, updated with what changed in Django
//! since the last import, and remembered for the next one.

macro_rules! user_steps {
    ($backend:ident, $db:ty) => {
        pub(super) mod $backend {
            use super::super::*;
            use crate::domain::django::{DjangoUser, UserUpdate};

            type Conn = <$db as sqlx::Database>::Connection;
            type Outcome<T> = Result<Result<T, RecordError>>;

            /// Creates the user, applies what changed in Django since the last import, or
            /// leaves a user deleted here deleted.
            pub(in crate::store::django_import) async fn import_user(
                conn: &mut Conn,
                user: &DjangoUser,
                now: i64,
                counts: &mut ImportCounts,
            ) -> Outcome<()> {
                // The record as last imported, and who holds the id here, in one round trip.
                let (previous, here): (Option<String>, Option<String>) = sqlx::query_as(
                    "SELECT d.record, u.username FROM (SELECT CAST($1 AS BIGINT) AS id) k \
                     LEFT JOIN django_imported_users d ON d.user_id = k.id LEFT JOIN users u ON u.id = k.id",
                )
                .bind(user.id)
                .fetch_one(&mut *conn)
                .await?;
                let refused = |problem: String| Ok(Err(RecordError::new("auth.user", user.id, problem)));
                match (previous, here) {
                    (None, Some(holder)) => {
                        return refused(format!(
                            "id {} is tokensmith user {holder:?}, who was not imported from Django \
                             (import into a tokensmith database without users of its own)",
                            user.id
                        ));
                    }
                    (Some(_), None) => {
                        counts.users_deleted_here += 1;
                        return Ok(Ok(()));
                    }
                    (None, None) => {
                        if let Some(problem) = username_holder(conn, &user.username, user.id).await? {
                            return refused(problem);
                        }
                        create_user(conn, user).await?;
                        join_groups(conn, user.id, &user.groups).await?;
                        counts.users_created += 1;
                    }
                    (Some(previous), Some(_)) => {
                        let previous: DjangoUser = serde_json::from_str(&previous)
                            .map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
                        let Some(update) = user.update_since(&previous) else {
                            counts.users_unchanged += 1;
                            return Ok(Ok(()));
                        };
                        if let Some(name) = update.username
                            && let Some(problem) = username_holder(conn, name, user.id).await?
                        {
                            return refused(problem);
                        }
                        update_user(conn, user.id, &update, now).await?;
                        // Groups joined in Django beside those joined here may be too many (a new
                        // user's are Django's alone, checked with the records).
                        if !update.groups_joined.is_empty()
                            && let Some(refused) = too_many_groups(conn, user.id).await?
                        {
                            return Ok(Err(refused));
                        }
                        counts.users_updated += 1;
                    }
                }
                remember(conn, user, now).await?;
                Ok(Ok(()))
            }

            async fn too_many_groups(conn: &mut Conn, id: i64) -> Result<Option<RecordError>> {
                let groups: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM user_groups WHERE user_id = $1")
                    .bind(id)
                    .fetch_one(&mut *conn)
                    .await?;
                Ok((groups > MAX_GROUPS_PER_USER).then(|| {
                    let problem = format!("would belong to {groups} groups, above the {MAX_GROUPS_PER_USER} allowed");
                    RecordError::new("auth.user", id, problem).field("groups")
                }))
            }

            /// Users imported before, still here, whom Django no longer has.
            pub(in crate::store::django_import) async fn gone_from_django(conn: &mut Conn, snapshot: &DjangoSnapshot) -> Result<u64> {
                let imported: Vec<i64> = sqlx::query_scalar(
                    "SELECT d.user_id FROM django_imported_users d JOIN users u ON u.id = d.user_id",
                )
                .fetch_all(&mut *conn)
                .await?;
                let in_django: std::collections::HashSet<i64> = snapshot.users.iter().map(|u| u.id).collect();
                Ok(imported.iter().filter(|id| !in_django.contains(id)).count() as u64)
            }

            /// Why `username` cannot be the name of user `id` here: another user has it.
            async fn username_holder(conn: &mut Conn, username: &str, id: i64) -> Result<Option<String>> {
                let holder: Option<i64> = sqlx::query_scalar("SELECT id FROM users WHERE username = $1 AND id <> $2")
                    .bind(username)
                    .bind(id)
                    .fetch_optional(&mut *conn)
                    .await?;
                Ok(holder.map(|other| format!("username {username:?} is tokensmith user {other}'s")))
            }

            async fn create_user(conn: &mut Conn, user: &DjangoUser) -> Result<()> {
                sqlx::query(
                    "INSERT INTO users (id, username, email, first_name, last_name, password_hash, is_active, \
                     disabled_locally, is_staff, is_superuser, created_at, last_login) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, NOT $7, $8, $9, $10, $11)",
                )
                .bind(user.id)
                .bind(&user.username)
                .bind(&user.email)
                .bind(&user.first_name)
                .bind(&user.last_name)
                .bind(user.password_hash())
                .bind(user.is_active)
                .bind(user.is_staff)
                .bind(user.is_superuser)
                .bind(user.date_joined)
                .bind(user.last_login)
                .execute(&mut *conn)
                .await?;
                Ok(())
            }

            /// Sets what Django changed and nothing else. A deactivation is the operator's
            /// decision (as `tokensmith user deactivate`); a new password or a deactivation ends
            /// the user's sessions.
            async fn update_user(conn: &mut Conn, id: i64, update: &UserUpdate<'_>, now: i64) -> Result<()> {
                sqlx::query(
                    "UPDATE users SET username = COALESCE($2, username), email = COALESCE($3, email), \
                     first_name = COALESCE($4, first_name), last_name = COALESCE($5, last_name), \
                     disabled_locally = COALESCE(NOT $6, disabled_locally), \
                     is_active = COALESCE($6, NOT disabled_locally) AND provider_allows, \
                     is_staff = COALESCE($7, is_staff), is_superuser = COALESCE($8, is_superuser), \
                     created_at = COALESCE($9, created_at), \
                     last_login = CASE WHEN last_login IS NULL OR last_login < $10 THEN $10 ELSE last_login END, \
                     password_hash = CASE WHEN $11 THEN $12 ELSE password_hash END WHERE id = $1",
                )
                .bind(id)
                .bind(update.username)
                .bind(update.email)
                .bind(update.first_name)
                .bind(update.last_name)
                .bind(update.is_active)
                .bind(update.is_staff)
                .bind(update.is_superuser)
                .bind(update.date_joined)
                .bind(update.last_login)
                .bind(update.password_hash.is_some())
                .bind(update.password_hash.flatten())
                .execute(&mut *conn)
                .await?;
                join_groups(conn, id, &update.groups_joined).await?;
                for name in &update.groups_left {
                    sqlx::query(
                        "DELETE FROM user_groups WHERE user_id = $1 AND group_id IN (SELECT id FROM groups WHERE name = $2)",
                    )
                    .bind(id)
                    .bind(name)
                    .execute(&mut *conn)
                    .await?;
                }
                if update.ends_sessions() {
                    sqlx::query("UPDATE refresh_families SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
                        .bind(now)
                        .bind(id)
                        .execute(&mut *conn)
                        .await?;
                }
                Ok(())
            }

            async fn join_groups(conn: &mut Conn, id: i64, names: &[impl AsRef<str>]) -> Result<()> {
                for name in names {
                    sqlx::query(
                        "INSERT INTO user_groups (user_id, group_id) SELECT $1, id FROM groups WHERE name = $2 \
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(id)
                    .bind(name.as_ref())
                    .execute(&mut *conn)
                    .await?;
                }
                Ok(())
            }

            /// Keeps Django's record as imported now, its password only as a fingerprint: the
            /// next import compares with it.
            async fn remember(conn: &mut Conn, user: &DjangoUser, now: i64) -> Result<()> {
                let record =
                    serde_json::to_string(&user.remembered()).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
                sqlx::query(
                    "INSERT INTO django_imported_users (user_id, record, imported_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (user_id) DO UPDATE SET record = excluded.record, imported_at = excluded.imported_at",
                )
                .bind(user.id)
                .bind(record)
                .bind(now)
                .execute(&mut *conn)
                .await?;
                Ok(())
            }

        }
    };
}

user_steps!(sqlite, sqlx::Sqlite);
user_steps!(postgres, sqlx::Postgres);
