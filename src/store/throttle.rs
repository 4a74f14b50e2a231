//! Failed logins, for throttling: per (username, client address) and per client address.
//! A login attempt is recorded *before* its password is checked (a reservation): it counts as
//! a failure unless the login succeeds and releases it, so attempts in flight count too.

use super::{Db, Result, Store, on_pool, on_writer};

/// Records an attempt when fewer than `$5` failures or attempts of this username from this
/// address, and fewer than `$6` from this address, happened after `$4`; in one statement.
const RESERVE_ATTEMPT: &str = "INSERT INTO login_failures (username, client_addr, failed_at) SELECT $1, $2, $3 \
     WHERE (SELECT COUNT(*) FROM login_failures WHERE username = $1 AND client_addr = $2 AND failed_at > $4) < $5 \
     AND (SELECT COUNT(*) FROM login_failures WHERE client_addr = $2 AND failed_at > $4) < $6 RETURNING id";

/// Runs `$reserve!(executor)`, a counting insert, so that reservations with one `$key` (a client
/// address, an email) take turns: on SQLite the one writer connection runs one statement at a time; on PostgreSQL
/// concurrent transactions would each count before any inserts, so they queue on an advisory lock
/// (`$seed` keeps each throttle's locks apart), which every replica shares. READ COMMITTED whatever
/// the server's or role's default: under REPEATABLE READ the snapshot would predate the previous
/// lock holder's insert, and each waiter would count without it.
macro_rules! reserve_in_turn {
    ($store:expr, $key:expr, $seed:expr, $reserve:ident) => {
        match &$store.db {
            Db::Sqlite { writer, .. } => Ok($reserve!(writer)?),
            Db::Postgres(pool) => {
                let mut tx = pool.begin_with("BEGIN ISOLATION LEVEL READ COMMITTED").await?;
                sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, $2))")
                    .bind($key)
                    .bind($seed as i64)
                    .execute(&mut *tx)
                    .await?;
                let id = $reserve!(&mut *tx)?;
                tx.commit().await?;
                Ok(id)
            }
        }
    };
}
pub(super) use reserve_in_turn;

impl Store {
    /// Counts the failures and attempts in flight after `since` (of this username from this
    /// address; from this address) and, when both are under their limits, records this attempt:
    /// its id, or `None` when throttled. One atomic step, so of any number of concurrent
    /// attempts, on any number of replicas, at most the limit get through.
    pub async fn reserve_login_attempt(
        &self,
        username: &str,
        client_addr: &str,
        now: i64,
        since: i64,
        (user_limit, address_limit): (i64, i64),
    ) -> Result<Option<i64>> {
        macro_rules! reserve {
            ($executor:expr) => {
                sqlx::query_scalar::<_, i64>(RESERVE_ATTEMPT)
                    .bind(username)
                    .bind(client_addr)
                    .bind(now)
                    .bind(since)
                    .bind(user_limit)
                    .bind(address_limit)
                    .fetch_optional($executor)
                    .await
            };
        }
        reserve_in_turn!(self, client_addr, 7210, reserve)
    }

    /// A successful attempt releases its reservation and forgets the earlier failures of that
    /// username from that address; later attempts still in flight keep theirs.
    pub async fn release_login_attempt(&self, attempt: i64, username: &str, client_addr: &str) -> Result<()> {
        Ok(on_writer!(self, pool => sqlx::query(
            "DELETE FROM login_failures WHERE username = $1 AND client_addr = $2 AND id <= $3",
        )
        .bind(username).bind(client_addr).bind(attempt)
        .execute(pool).await.map(|_| ()))?)
    }

    /// Logins that failed after `since` from `client_addr`: (of `username`, of any username).
    /// One statement: this runs before every login.
    pub async fn login_failures(&self, username: &str, client_addr: &str, since: i64) -> Result<(i64, i64)> {
        Ok(on_pool!(self, pool => sqlx::query_as::<_, (i64, i64)>(
            "SELECT COALESCE(SUM(CASE WHEN username = $1 THEN 1 ELSE 0 END), 0), COUNT(*) \
             FROM login_failures WHERE client_addr = $2 AND failed_at > $3",
        )
        .bind(username).bind(client_addr).bind(since)
        .fetch_one(pool).await)?)
    }

    /// When the `nth` oldest failure counted after `since` happened (0 = the oldest); with
    /// `username` `None`, across usernames. The throttle lifts when that one leaves the window.
    pub async fn nth_login_failure(
        &self,
        username: Option<&str>,
        client_addr: &str,
        since: i64,
        nth: i64,
    ) -> Result<Option<i64>> {
        Ok(on_pool!(self, pool => sqlx::query_scalar::<_, i64>(
            "SELECT failed_at FROM login_failures WHERE ($1 IS NULL OR username = $1) AND client_addr = $2 \
             AND failed_at > $3 ORDER BY failed_at LIMIT 1 OFFSET $4",
        )
        .bind(username).bind(client_addr).bind(since).bind(nth)
        .fetch_optional(pool).await)?)
    }

    /// Forgets failures older than `before`. Returns how many.
    pub async fn prune_login_failures(&self, before: i64) -> Result<u64> {
        Ok(on_writer!(self, pool => sqlx::query("DELETE FROM login_failures WHERE failed_at < $1")
            .bind(before).execute(pool).await.map(|r| r.rows_affected()))?)
    }
}
