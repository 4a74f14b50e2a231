//! Registrations per client address, for `REGISTRATION_LIMIT`: a registration is recorded
//! *before* its password is hashed (a reservation), and the record deleted if the registration
//! is refused after all, so a burst sent at once is counted whole.

use super::{Db, Result, Store, on_pool, on_writer, throttle::reserve_in_turn};

/// Records a registration when fewer than `$4` happened from this address after `$3`.
const RESERVE_REGISTRATION: &str = "INSERT INTO registrations (client_addr, registered_at) SELECT $1, $2 \
     WHERE (SELECT COUNT(*) FROM registrations WHERE client_addr = $1 AND registered_at > $3) < $4 RETURNING id";

impl Store {
    /// Counts the registrations from `client_addr` after `since` and, under `limit`, records
    /// this one: its id, or `None` when throttled. One atomic step, as `reserve_login_attempt`.
    pub async fn reserve_registration(
        &self,
        client_addr: &str,
        now: i64,
        since: i64,
        limit: i64,
    ) -> Result<Option<i64>> {
        macro_rules! reserve {
            ($executor:expr) => {
                sqlx::query_scalar::<_, i64>(RESERVE_REGISTRATION)
                    .bind(client_addr)
                    .bind(now)
                    .bind(since)
                    .bind(limit)
                    .fetch_optional($executor)
                    .await
            };
        }
        reserve_in_turn!(self, client_addr, 7301, reserve)
    }

    /// A registration refused after its reservation gives its place back.
    pub async fn release_registration(&self, id: i64) -> Result<()> {
        Ok(on_writer!(self, pool => sqlx::query("DELETE FROM registrations WHERE id = $1")
            .bind(id).execute(pool).await.map(|_| ()))?)
    }

    /// When the `nth` oldest registration from `client_addr` after `since` happened (0 = the
    /// oldest): the limit lifts when it leaves the window.
    pub async fn nth_registration(&self, client_addr: &str, since: i64, nth: i64) -> Result<Option<i64>> {
        Ok(on_pool!(self, pool => sqlx::query_scalar::<_, i64>(
            "SELECT registered_at FROM registrations WHERE client_addr = $1 AND registered_at > $2 \
             ORDER BY registered_at LIMIT 1 OFFSET $3",
        )
        .bind(client_addr).bind(since).bind(nth)
        .fetch_optional(pool).await)?)
    }

    /// How many registrations from `client_addr` after `since` (reservations in flight too).
    pub async fn registrations_since(&self, client_addr: &str, since: i64) -> Result<i64> {
        Ok(on_pool!(self, pool => sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM registrations WHERE client_addr = $1 AND registered_at > $2",
        )
        .bind(client_addr).bind(since)
        .fetch_one(pool).await)?)
    }

    /// Forgets registrations older than `before`. Returns how many.
    pub async fn prune_registrations(&self, before: i64) -> Result<u64> {
        Ok(on_writer!(self, pool => sqlx::query("DELETE FROM registrations WHERE registered_at < $1")
            .bind(before).execute(pool).await.map(|r| r.rows_affected()))?)
    }
}
