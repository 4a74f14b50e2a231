//! Failed logins, for throttling: per (username, client address) and per client address.

use super::{Result, Store, on_pool, on_writer};

impl Store {
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

    pub async fn record_login_failure(&self, username: &str, client_addr: &str, now: i64) -> Result<()> {
        Ok(on_writer!(self, pool => sqlx::query(
            "INSERT INTO login_failures (username, client_addr, failed_at) VALUES ($1, $2, $3)",
        )
        .bind(username).bind(client_addr).bind(now)
        .execute(pool).await.map(|_| ()))?)
    }

    /// A successful login forgets that username's failures from that address.
    pub async fn clear_login_failures(&self, username: &str, client_addr: &str) -> Result<()> {
        Ok(on_writer!(self, pool => sqlx::query("DELETE FROM login_failures WHERE username = $1 AND client_addr = $2")
            .bind(username).bind(client_addr)
            .execute(pool).await.map(|_| ()))?)
    }

    /// Forgets failures older than `before`. Returns how many.
    pub async fn prune_login_failures(&self, before: i64) -> Result<u64> {
        Ok(on_writer!(self, pool => sqlx::query("DELETE FROM login_failures WHERE failed_at < $1")
            .bind(before).execute(pool).await.map(|r| r.rows_affected()))?)
    }
}
