//! `tokensmith import django`, written: the whole import in one transaction, so a record that
//! cannot be imported leaves nothing half-written, and a dry run is the same transaction rolled
//! back (its counts are exactly what the real run does).
//!
//! The steps need several statements each and one connection throughout, so they are written
//! once in a macro and compiled for each database (`sqlite::import`, `postgres::import`).

use super::{Db, Result, Store};
use crate::domain::{
    AuditEvent, AuditKind, MAX_GROUPS_PER_USER,
    django::{DjangoSnapshot, ImportCounts, RecordError},
};

/// How the import runs.
pub struct ImportRun {
    pub now: i64,
    pub dry_run: bool,
    /// `SESSION_MAX_LIFETIME`, in seconds: a carried-over refresh token's session lasts that
    /// long from when Django issued it, as a session here lasts from its login, however long
    /// Django let the token itself live.
    pub session_max_lifetime: i64,
}

impl Store {
    /// Writes `snapshot` (its tokens all unexpired, their users among its users). A record that
    /// conflicts with what is here (an id or username a tokensmith user holds) is the error, and
    /// nothing is written.
    pub async fn import_django(
        &self,
        snapshot: &DjangoSnapshot,
        run: &ImportRun,
    ) -> Result<Result<ImportCounts, RecordError>> {
        match &self.db {
            Db::Sqlite { writer, .. } => {
                // Takes the write lock first: a second import waits, then finds everything there.
                let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
                let counts = sqlite::import(&mut tx, snapshot, run).await?;
                finish(tx, counts, run.dry_run).await
            }
            Db::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                // Imports take turns (every replica and CLI shares the lock): a second one
                // waits, then finds everything there.
                sqlx::query("SELECT pg_advisory_xact_lock(7212)").execute(&mut *tx).await?;
                let counts = postgres::import(&mut tx, snapshot, run).await?;
                // A sequence is not rolled back with the transaction: a dry run leaves it alone.
                if !run.dry_run && matches!(counts, Ok(c) if c.users_created > 0) {
                    advance_user_ids(&mut tx).await?;
                }
                finish(tx, counts, run.dry_run).await
            }
        }
    }
}

/// Commits, unless the import was refused or is a dry run.
async fn finish<DB: sqlx::Database>(
    tx: sqlx::Transaction<'_, DB>,
    counts: Result<ImportCounts, RecordError>,
    dry_run: bool,
) -> Result<Result<ImportCounts, RecordError>> {
    if counts.is_ok() && !dry_run {
        tx.commit().await?;
    } else {
        tx.rollback().await?;
    }
    Ok(counts)
}

/// Users created later get ids above the imported ones. (SQLite's AUTOINCREMENT follows an
/// explicit id by itself.)
async fn advance_user_ids(tx: &mut sqlx::Transaction<'_, sqlx::Postgres>) -> Result<()> {
    sqlx::query(
        "SELECT setval(pg_get_serial_sequence('users', 'id'), \
         GREATEST((SELECT MAX(id) FROM users), (SELECT last_value FROM users_id_seq)))",
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

macro_rules! importer {
    ($backend:ident, $db:ty) => {
        mod $backend {
            use super::*;
            use crate::domain::django::{DjangoToken, DjangoUser, OutstandingKind, UserUpdate};
            use crate::store::audit::insert_audit;

            type Conn = <$db as sqlx::Database>::Connection;
            type Outcome<T> = Result<Result<T, RecordError>>;

            pub(super) async fn import(
                tx: &mut sqlx::Transaction<'_, $db>,
                snapshot: &DjangoSnapshot,
                run: &ImportRun,
            ) -> Outcome<ImportCounts> {
                let mut counts = ImportCounts { tokens_skipped: snapshot.tokens_skipped, ..ImportCounts::default() };
                for name in &snapshot.groups {
                    let created = sqlx::query("INSERT INTO groups (name) VALUES ($1) ON CONFLICT (name) DO NOTHING")
                        .bind(name)
                        .execute(&mut **tx)
                        .await?
                        .rows_affected();
                    counts.groups_created += created;
                }
                for user in &snapshot.users {
                    if let Err(refused) = import_user(&mut **tx, user, run.now, &mut counts).await? {
                        return Ok(Err(refused));
                    }
                }
                counts.users_gone_from_django = gone_from_django(&mut **tx, snapshot).await?;
                for token in &snapshot.tokens {
                    if let Err(refused) = import_token(&mut **tx, token, run, &mut counts).await? {
                        return Ok(Err(refused));
                    }
                }
                let detail = counts.to_string();
                let event = AuditEvent::new(AuditKind::DjangoImported).client("cli").detail(&detail);
                insert_audit!(event, run.now, &mut **tx)?;
                Ok(Ok(counts))
            }

            /// Creates the user, applies what changed in Django since the last import, or
            /// leaves a user deleted here deleted.
            async fn import_user(
                conn: &mut Conn,
                user: &DjangoUser,
                now: i64,
                counts: &mut ImportCounts,
            ) -> Outcome<()> {
                let previous: Option<String> =
                    sqlx::query_scalar("SELECT record FROM django_imported_users WHERE user_id = $1")
                        .bind(user.id)
                        .fetch_optional(&mut *conn)
                        .await?;
                let here: Option<String> = sqlx::query_scalar("SELECT username FROM users WHERE id = $1")
                    .bind(user.id)
                    .fetch_optional(&mut *conn)
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
                        counts.users_updated += 1;
                    }
                }
                let groups: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM user_groups WHERE user_id = $1")
                    .bind(user.id)
                    .fetch_one(&mut *conn)
                    .await?;
                if groups > MAX_GROUPS_PER_USER {
                    let problem = format!("would belong to {groups} groups, above the {MAX_GROUPS_PER_USER} allowed");
                    return Ok(Err(RecordError::new("auth.user", user.id, problem).field("groups")));
                }
                remember(conn, user, now).await?;
                Ok(Ok(()))
            }

            /// Users imported before, still here, whom Django no longer has.
            async fn gone_from_django(conn: &mut Conn, snapshot: &DjangoSnapshot) -> Result<u64> {
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

            /// An outstanding simplejwt token becomes a session here: a refresh token's record
            /// (by its own jti, in a session of its own), or a sliding token's session; revoked
            /// when Django blacklisted it, or when it was issued before the user's sessions were
            /// last ended here. One that was carried over before is only revoked, if Django
            /// blacklisted it since.
            async fn import_token(
                conn: &mut Conn,
                token: &DjangoToken,
                run: &ImportRun,
                counts: &mut ImportCounts,
            ) -> Outcome<()> {
                let session_id = match token.kind {
                    OutstandingKind::Refresh => format!("django:{}", token.jti),
                    OutstandingKind::Sliding => token.jti.clone(),
                };
                let revoked: Option<Option<i64>> =
                    sqlx::query_scalar("SELECT revoked_at FROM refresh_families WHERE id = $1")
                        .bind(&session_id)
                        .fetch_optional(&mut *conn)
                        .await?;
                match (revoked, token.blacklisted_at) {
                    (Some(None), Some(blacklisted_at)) => {
                        revoke_token(conn, &session_id, token, blacklisted_at).await?;
                        counts.sessions_blacklisted += 1;
                    }
                    (Some(_), _) => counts.sessions_unchanged += 1,
                    (None, _) => return create_session(conn, &session_id, token, run, counts).await,
                }
                Ok(Ok(()))
            }

            async fn create_session(
                conn: &mut Conn,
                session_id: &str,
                token: &DjangoToken,
                run: &ImportRun,
                counts: &mut ImportCounts,
            ) -> Outcome<()> {
                let user_here: Option<Option<i64>> =
                    sqlx::query_scalar("SELECT sessions_ended_at FROM users WHERE id = $1")
                        .bind(token.user_id)
                        .fetch_optional(&mut *conn)
                        .await?;
                let Some(sessions_ended_at) = user_here else {
                    counts.tokens_skipped += 1;
                    return Ok(Ok(()));
                };
                // Issued before the user's sessions were last ended here: ended with them.
                let ended_here = sessions_ended_at.filter(|ended| token.issued_at <= *ended);
                let revoked_at = token.blacklisted_at.or(ended_here);
                let sliding = token.kind == OutstandingKind::Sliding;
                let session_expires_at = match token.kind {
                    OutstandingKind::Refresh => token.issued_at.saturating_add(run.session_max_lifetime),
                    OutstandingKind::Sliding => token.expires_at,
                };
                let inserted = sqlx::query(
                    "INSERT INTO refresh_families (id, user_id, created_at, expires_at, revoked_at, sliding) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
                )
                .bind(session_id)
                .bind(token.user_id)
                .bind(token.issued_at)
                .bind(session_expires_at)
                .bind(revoked_at)
                .bind(sliding)
                .execute(&mut *conn)
                .await?
                .rows_affected();
                let jti_taken = |inserted: u64| {
                    (inserted == 0).then(|| {
                        let problem = "a token with this jti already exists in tokensmith";
                        RecordError::new("token_blacklist.outstandingtoken", token.pk, problem).field("jti")
                    })
                };
                if let Some(refused) = jti_taken(inserted) {
                    return Ok(Err(refused));
                }
                if !sliding {
                    let inserted = sqlx::query(
                        "INSERT INTO refresh_tokens (jti, family_id, user_id, issued_at, expires_at, revoked_at) \
                         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (jti) DO NOTHING",
                    )
                    .bind(&token.jti)
                    .bind(session_id)
                    .bind(token.user_id)
                    .bind(token.issued_at)
                    .bind(token.expires_at)
                    .bind(revoked_at)
                    .execute(&mut *conn)
                    .await?
                    .rows_affected();
                    if let Some(refused) = jti_taken(inserted) {
                        return Ok(Err(refused));
                    }
                }
                counts.sessions_created += 1;
                Ok(Ok(()))
            }

            async fn revoke_token(conn: &mut Conn, session_id: &str, token: &DjangoToken, at: i64) -> Result<()> {
                sqlx::query("UPDATE refresh_families SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                    .bind(at)
                    .bind(session_id)
                    .execute(&mut *conn)
                    .await?;
                sqlx::query("UPDATE refresh_tokens SET revoked_at = $1 WHERE jti = $2 AND revoked_at IS NULL")
                    .bind(at)
                    .bind(&token.jti)
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            }
        }
    };
}

importer!(sqlite, sqlx::Sqlite);
importer!(postgres, sqlx::Postgres);
