//! The only place SQL lives. One set of queries serves SQLite and PostgreSQL: times are
//! Unix seconds, placeholders are `$n`, and `on_pool!` runs a query on whichever pool is open.

use std::{str::FromStr, time::Duration};

use sqlx::{
    PgPool, SqlitePool,
    postgres::PgPoolOptions,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

use crate::config::{DatabaseKind, DatabaseSettings};

pub(crate) mod audit;
mod django_import;
mod django_source;
mod error;
mod groups;
mod identities;
mod keys;
mod links;
mod password_resets;
mod session_list;
mod sessions;
mod sqlite_file;
mod registrations;
mod rotation;
mod throttle;
mod user_admin;
mod users;

pub use audit::AuditRecord;
pub use django_import::ImportRun;
pub use django_source::read_django_database;
pub use error::StoreError;
pub use groups::{GroupJoin, GroupSummary};
pub use identities::{LinkedUserInsert, RolesWrite};
pub use keys::StoredKey;
pub use links::{IdentityLink, Unlinked};
pub use password_resets::{PasswordResetRow, ResetWrite};
pub use rotation::Presented;
pub use session_list::SessionSummary;
pub use sessions::{IssuedRefresh, NewSession, RefreshSessionState, SessionOrigin, SlidingSessionState};
pub use user_admin::{Found, UserChanges, UserUpdate, Window};
pub use users::{GuardedWrite, NewUser, UserInsert};

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Clone)]
enum Db {
    /// SQLite allows one writer at a time. Writes go through a pool of one connection, so they
    /// queue here, in order, instead of inside SQLite's busy handler, which sleeps and retries
    /// (up to 100 ms a sleep) and turned refresh p99 into hundreds of milliseconds under load.
    /// Reads run in parallel beside it (WAL).
    Sqlite {
        readers: SqlitePool,
        writer: SqlitePool,
    },
    Postgres(PgPool),
}

/// Runs a reading `$body` with `$pool` bound to the open pool, whichever database it is.
/// The body is compiled once per backend, so each gets its own typed query.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.db {
            $crate::store::Db::Sqlite { readers: $pool, .. } => $body,
            $crate::store::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// As `on_pool!`, for a body that writes.
macro_rules! on_writer {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.db {
            $crate::store::Db::Sqlite { writer: $pool, .. } => $body,
            $crate::store::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_writer;

#[derive(Clone)]
pub struct Store {
    db: Db,
}

impl Store {
    /// Opens the pool. Connections are made lazily, so a database that is down at this point
    /// shows up as an error at the first query (migrations, at start), not a hang here.
    pub async fn connect(settings: &DatabaseSettings) -> Result<Self> {
        let url = &settings.url;
        let db = if settings.kind == DatabaseKind::Postgres {
            let pool = PgPoolOptions::new()
                .max_connections(settings.max_connections)
                .acquire_timeout(settings.acquire_timeout)
                .connect_lazy(url)?;
            Db::Postgres(pool)
        } else {
            // WAL lets readers run beside the one writer; synchronous=NORMAL in WAL mode keeps
            // every commit across a crash of the process (not across power loss).
            let options = SqliteConnectOptions::from_str(url)?
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true);
            sqlite_file::prepare(url, options.get_filename());
            // A connection to a local file does not go stale: no ping before every use (each
            // ping is a round trip to the connection's thread, as costly as a small query).
            let writer = SqlitePoolOptions::new()
                .max_connections(1)
                .test_before_acquire(false)
                .acquire_timeout(settings.acquire_timeout)
                .connect_with(options.clone())
                .await?;
            let readers = SqlitePoolOptions::new()
                .max_connections(settings.max_connections)
                .test_before_acquire(false)
                .acquire_timeout(settings.acquire_timeout)
                .connect_with(options)
                .await?;
            Db::Sqlite { readers, writer }
        };
        Ok(Self { db })
    }

    /// Applies the migrations this binary knows. A database already migrated further by a newer
    /// binary is accepted (migrations are additive), so a rolling upgrade or a rollback does not
    /// stop the older replicas and jobs still running.
    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        match &self.db {
            Db::Sqlite { writer: pool, .. } => {
                let mut migrator = sqlx::migrate!("./migrations/sqlite");
                migrator.set_ignore_missing(true);
                migrator.run(pool).await
            }
            Db::Postgres(pool) => {
                let mut migrator = sqlx::migrate!("./migrations/postgres");
                migrator.set_ignore_missing(true);
                migrator.run(pool).await
            }
        }
    }

    /// Does the database answer? (`/readyz`)
    pub async fn ping(&self) -> Result<()> {
        on_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn close(&self) {
        match &self.db {
            Db::Sqlite { readers, writer } => {
                readers.close().await;
                writer.close().await;
            }
            Db::Postgres(pool) => pool.close().await,
        }
    }
}

/// True when the error is a unique-constraint violation (a duplicate username, say).
fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.is_unique_violation())
}
