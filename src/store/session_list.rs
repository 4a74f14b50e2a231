//! A user's live sessions as the admin API lists them, and ending one of them.

use super::{Found, Result, Store, Window, audit::insert_audit, on_pool, on_writer};
use crate::domain::AuditEvent;

/// A live session: a login's refresh family, or a sliding token's session.
#[derive(Debug, sqlx::FromRow)]
pub struct SessionSummary {
    pub id: String,
    pub created_at: i64,
    /// When it was last refreshed (its current refresh token issued): its creation for a
    /// session never refreshed (sliding refreshes write nothing, so a sliding session says when
    /// it started).
    pub last_used_at: i64,
    pub client_addr: Option<String>,
    pub provider: Option<String>,
}

/// A session that can still be used: not ended, not past its lifetime, and holding a current
/// refresh token that has not expired (a sliding session has none).
const LIVE: &str = "f.user_id = $1 AND f.revoked_at IS NULL AND f.expires_at > $2 \
     AND (f.sliding OR f.refresh_expires_at > $2)";

impl Store {
    /// The user's live sessions, newest first.
    pub async fn live_sessions(&self, user_id: i64, now: i64, window: Window) -> Result<Found<SessionSummary>> {
        let count_sql = format!("SELECT COUNT(*) FROM refresh_families f WHERE {LIVE}");
        let rows_sql = format!(
            "SELECT f.id, f.created_at, COALESCE(f.rotated_at_ms / 1000, f.created_at) AS last_used_at, \
             f.client_addr, f.provider \
             FROM refresh_families f WHERE {LIVE} ORDER BY f.created_at DESC, f.id LIMIT $3 OFFSET $4"
        );
        on_pool!(self, pool => {
            let count = sqlx::query_scalar::<_, i64>(&count_sql).bind(user_id).bind(now).fetch_one(pool).await?;
            let rows = sqlx::query_as::<_, SessionSummary>(&rows_sql)
                .bind(user_id).bind(now).bind(window.limit).bind(window.offset)
                .fetch_all(pool).await?;
            Ok(Found { count, rows })
        })
    }

    /// Ends one live session of the user, and records `audit` with it. `false`, and nothing
    /// written, when the user has no such live session.
    pub async fn end_session(&self, user_id: i64, session_id: &str, now: i64, audit: &AuditEvent<'_>) -> Result<bool> {
        let sql = format!(
            "UPDATE refresh_families SET revoked_at = $2 WHERE id = $3 AND id IN \
                           (SELECT f.id FROM refresh_families f WHERE {LIVE})"
        );
        on_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            let ended = sqlx::query(&sql).bind(user_id).bind(now).bind(session_id)
                .execute(&mut *tx).await?.rows_affected() == 1;
            if !ended {
                tx.rollback().await?;
                return Ok(false);
            }
            insert_audit!(audit, now, &mut *tx)?;
            tx.commit().await?;
            Ok(true)
        })
    }
}
