//! Password-reset tokens (only their SHA-256) and the reset requests counted for throttling.

use super::{
    Db, Result, Store, audit::insert_audit, on_pool, on_writer, throttle::reserve_in_turn, users::USER_COLUMNS,
};
use crate::domain::{AuditEvent, User};

/// Records a request when fewer than `$4` came from this address, and fewer than `$5` named this
/// email, after `$6`; in one statement.
const RECORD_REQUEST: &str = "INSERT INTO password_reset_requests (client_addr, email, requested_at) \
     SELECT $1, $2, $3 \
     WHERE (SELECT COUNT(*) FROM password_reset_requests WHERE client_addr = $1 AND requested_at > $6) < $4 \
     AND (SELECT COUNT(*) FROM password_reset_requests WHERE email = $2 AND requested_at > $6) < $5 RETURNING id";

/// A reset token's row and its user as they are now.
#[derive(sqlx::FromRow)]
pub struct PasswordResetRow {
    pub reset_id: i64,
    pub password_fingerprint: String,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    #[sqlx(flatten)]
    pub user: User,
}

/// A reset to apply: the token's row, the user's hash it was checked against, the new hash.
pub struct ResetWrite<'a> {
    pub reset_id: i64,
    pub user_id: i64,
    pub old_hash: &'a str,
    pub new_hash: &'a str,
    pub now: i64,
}

impl Store {
    /// Counts the requests after `since` (from `client_addr`; for `email`) and, when both are
    /// under their limits, records this one: `true`. One atomic step, as login attempts are.
    pub async fn record_reset_request(
        &self,
        client_addr: &str,
        email: &str,
        now: i64,
        since: i64,
        (address_limit, email_limit): (i64, i64),
    ) -> Result<bool> {
        macro_rules! record {
            ($executor:expr) => {
                sqlx::query_scalar::<_, i64>(RECORD_REQUEST)
                    .bind(client_addr)
                    .bind(email)
                    .bind(now)
                    .bind(address_limit)
                    .bind(email_limit)
                    .bind(since)
                    .fetch_optional($executor)
                    .await
            };
        }
        // Requests for one email take turns (every replica shares the lock), so concurrent ones
        // cannot all count before any inserts.
        let recorded: Result<Option<i64>> = reserve_in_turn!(self, email, 7212, record);
        Ok(recorded?.is_some())
    }

    /// The active users with a password whose email is `email`, ignoring case (at most 10).
    pub async fn reset_candidates(&self, email: &str) -> Result<Vec<User>> {
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users WHERE lower(email) = lower($1) AND email <> '' \
             AND password_hash IS NOT NULL AND is_active ORDER BY id LIMIT 10"
        );
        Ok(on_pool!(self, pool => sqlx::query_as::<_, User>(&sql).bind(email).fetch_all(pool).await)?)
    }

    pub async fn insert_password_reset(
        &self,
        token_hash: &str,
        user_id: i64,
        password_fingerprint: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<()> {
        on_writer!(self, pool => sqlx::query(
            "INSERT INTO password_resets (token_hash, user_id, password_fingerprint, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash).bind(user_id).bind(password_fingerprint).bind(now).bind(expires_at)
        .execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    pub async fn password_reset(&self, token_hash: &str) -> Result<Option<PasswordResetRow>> {
        let columns = USER_COLUMNS.split(", ").map(|c| format!("u.{c}")).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "SELECT r.id AS reset_id, r.password_fingerprint, r.expires_at, r.used_at, {columns} \
             FROM password_resets r JOIN users u ON u.id = r.user_id WHERE r.token_hash = $1"
        );
        Ok(
            on_pool!(self, pool => sqlx::query_as::<_, PasswordResetRow>(&sql).bind(token_hash).fetch_optional(pool).await)?,
        )
    }

    /// Uses the token up, sets the password, ends every session and records `audit`, in one
    /// transaction; only while the token is unused and unexpired and the password hash is still
    /// `old_hash`. Of two confirms of one token at once, the second finds it used (PostgreSQL
    /// re-reads the row after the first commits; SQLite has one writer). Returns whether it did.
    pub async fn complete_password_reset(&self, write: &ResetWrite<'_>, audit: &AuditEvent<'_>) -> Result<bool> {
        on_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            let used = sqlx::query(
                "UPDATE password_resets SET used_at = $1 WHERE id = $2 AND used_at IS NULL AND expires_at > $1",
            )
            .bind(write.now).bind(write.reset_id).execute(&mut *tx).await?.rows_affected() == 1;
            let set = used && sqlx::query(
                "UPDATE users SET password_hash = $1, sessions_ended_at = $2 WHERE id = $3 AND password_hash = $4 \
                 AND is_active",
            )
            .bind(write.new_hash).bind(write.now).bind(write.user_id).bind(write.old_hash)
            .execute(&mut *tx).await?.rows_affected() == 1;
            if !set {
                tx.rollback().await?;
                return Ok(false);
            }
            sqlx::query("UPDATE refresh_families SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
                .bind(write.now).bind(write.user_id).execute(&mut *tx).await?;
            insert_audit!(audit, write.now, &mut *tx)?;
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Forgets reset tokens that expired and reset requests made before `before`. Returns how many.
    pub async fn prune_password_resets(&self, before: i64) -> Result<u64> {
        let tokens = on_writer!(self, pool => sqlx::query("DELETE FROM password_resets WHERE expires_at < $1")
            .bind(before).execute(pool).await.map(|r| r.rows_affected()))?;
        let requests = on_writer!(self, pool => sqlx::query("DELETE FROM password_reset_requests WHERE requested_at < $1")
            .bind(before).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(tokens + requests)
    }
}
