//! `tokensmith import django`, written: the whole import in one transaction, so a record that
//! cannot be imported leaves nothing half-written, and a dry run is the same transaction rolled
//! back (its counts are exactly what the real run does).
//!
//! The steps need several statements each and one connection throughout, so they are written
//! once in a macro and compiled for each database (`sqlite::import`, `postgres::import`): the
//! users' steps in `users`, the carried-over sessions' in `sessions`.

mod sessions;
mod users;

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
            use crate::store::audit::insert_audit;

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
                    if let Err(refused) =
                        super::users::$backend::import_user(&mut **tx, user, run.now, &mut counts).await?
                    {
                        return Ok(Err(refused));
                    }
                }
                counts.users_gone_from_django = super::users::$backend::gone_from_django(&mut **tx, snapshot).await?;
                for token in &snapshot.tokens {
                    if let Err(refused) =
                        super::sessions::$backend::import_token(&mut **tx, token, run, &mut counts).await?
                    {
                        return Ok(Err(refused));
                    }
                }
                let detail = counts.to_string();
                let event = AuditEvent::new(AuditKind::DjangoImported).client("cli").detail(&detail);
                insert_audit!(event, run.now, &mut **tx)?;
                Ok(Ok(counts))
            }
        }
    };
}

importer!(sqlite, sqlx::Sqlite);
importer!(postgres, sqlx::Postgres);
