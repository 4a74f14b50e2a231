//! Reading a Django database (`tokensmith import django --database URL`), read only: SQLite
//! opened read-only, PostgreSQL in a read-only transaction (which also makes every table read
//! one consistent snapshot). Django's schema, not ours: `auth_user`, `auth_group`,
//! `auth_user_groups`, and simplejwt's `token_blacklist_*` tables when that app is installed.
//! Times come back as Unix seconds from the database itself.

use std::{str::FromStr, time::Duration};

use sqlx::{Connection, PgConnection, Row, SqliteConnection, postgres::PgConnectOptions, sqlite::SqliteConnectOptions};

use super::Result;
use crate::domain::django::{
    BlacklistedRecord, DjangoRecords, DjangoUser, GroupRecord, GroupRef, OutstandingRecord, UserRecord,
};

/// How long connecting to the Django database may take before the import gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

// Django's auth tables have 32-bit ids (`AutoField`) on PostgreSQL; read as 64-bit everywhere.
const USERS: &str = "SELECT CAST(id AS BIGINT) AS id, username, email, first_name, last_name, password, is_active, is_staff, \
                     is_superuser, {date_joined} AS date_joined, {last_login} AS last_login FROM auth_user ORDER BY id";
const GROUPS: &str = "SELECT CAST(id AS BIGINT) AS id, name FROM auth_group ORDER BY id";
const MEMBERSHIPS: &str = "SELECT CAST(user_id AS BIGINT) AS user_id, CAST(group_id AS BIGINT) AS group_id \
                           FROM auth_user_groups ORDER BY user_id, group_id";
const OUTSTANDING: &str = "SELECT CAST(id AS BIGINT) AS id, CAST(user_id AS BIGINT) AS user_id, jti, token, {created_at} AS created_at, {expires_at} AS expires_at \
                           FROM token_blacklist_outstandingtoken ORDER BY id";
const BLACKLISTED: &str = "SELECT CAST(id AS BIGINT) AS id, CAST(token_id AS BIGINT) AS token_id, {blacklisted_at} AS blacklisted_at FROM token_blacklist_blacklistedtoken ORDER BY id";

/// `column` in Unix seconds, as the database computes it.
fn seconds(column: &str, postgres: bool) -> String {
    if postgres {
        format!("CAST(FLOOR(EXTRACT(EPOCH FROM {column})) AS BIGINT)")
    } else {
        format!("CAST(strftime('%s', {column}) AS INTEGER)")
    }
}

fn timed(sql: &str, columns: &[&str], postgres: bool) -> String {
    columns.iter().fold(sql.to_owned(), |sql, column| sql.replace(&format!("{{{column}}}"), &seconds(column, postgres)))
}

/// Reads every record `url` (`sqlite://…` or `postgres://…`) holds.
pub async fn read_django_database(url: &str) -> Result<DjangoRecords> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let options = PgConnectOptions::from_str(url)?.options([("default_transaction_read_only", "on")]);
        let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options))
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)??;
        let mut tx = conn.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?;
        let records = read_postgres(&mut tx).await;
        tx.rollback().await?;
        records
    } else {
        let options = SqliteConnectOptions::from_str(url)?.read_only(true);
        let mut conn = SqliteConnection::connect_with(&options).await?;
        let mut tx = conn.begin().await?;
        let records = read_sqlite(&mut tx).await;
        tx.rollback().await?;
        records
    }
}

macro_rules! reader {
    ($name:ident, $conn:ty, $postgres:expr, $tables:expr) => {
        async fn $name(conn: &mut $conn) -> Result<DjangoRecords> {
            let mut records = DjangoRecords::default();
            for row in sqlx::query(GROUPS).fetch_all(&mut *conn).await? {
                records.groups.push(GroupRecord { pk: row.try_get("id")?, name: row.try_get("name")? });
            }
            let users = timed(USERS, &["date_joined", "last_login"], $postgres);
            for row in sqlx::query(&users).fetch_all(&mut *conn).await? {
                records.users.push(UserRecord { user: user(&row)?, groups: Vec::new() });
            }
            for row in sqlx::query(MEMBERSHIPS).fetch_all(&mut *conn).await? {
                let (user_id, group_id): (i64, i64) = (row.try_get("user_id")?, row.try_get("group_id")?);
                if let Some(user) = records.users.iter_mut().find(|u| u.user.id == user_id) {
                    user.groups.push(GroupRef::Pk(group_id));
                }
            }
            let tables: Vec<String> = sqlx::query_scalar($tables).fetch_all(&mut *conn).await?;
            if !tables.iter().any(|t| t == "token_blacklist_outstandingtoken") {
                return Ok(records);
            }
            let outstanding = timed(OUTSTANDING, &["created_at", "expires_at"], $postgres);
            for row in sqlx::query(&outstanding).fetch_all(&mut *conn).await? {
                records.outstanding.push(OutstandingRecord {
                    pk: row.try_get("id")?,
                    user: row.try_get("user_id")?,
                    jti: row.try_get("jti")?,
                    token: row.try_get("token")?,
                    created_at: row.try_get("created_at")?,
                    expires_at: row.try_get("expires_at")?,
                });
            }
            let blacklisted = timed(BLACKLISTED, &["blacklisted_at"], $postgres);
            for row in sqlx::query(&blacklisted).fetch_all(&mut *conn).await? {
                records.blacklisted.push(BlacklistedRecord {
                    pk: row.try_get("id")?,
                    token: row.try_get("token_id")?,
                    blacklisted_at: row.try_get("blacklisted_at")?,
                });
            }
            Ok(records)
        }
    };
}

reader!(
    read_postgres,
    PgConnection,
    true,
    "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema()"
);
reader!(read_sqlite, SqliteConnection, false, "SELECT name FROM sqlite_master WHERE type = 'table'");

/// One `auth_user` row; its groups are read apart.
fn user<R: Row>(row: &R) -> Result<DjangoUser>
where
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> bool: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(DjangoUser {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        email: row.try_get("email")?,
        first_name: row.try_get("first_name")?,
        last_name: row.try_get("last_name")?,
        password: row.try_get("password")?,
        is_active: row.try_get("is_active")?,
        is_staff: row.try_get("is_staff")?,
        is_superuser: row.try_get("is_superuser")?,
        date_joined: row.try_get("date_joined")?,
        last_login: row.try_get("last_login")?,
        groups: Vec::new(),
    })
}
