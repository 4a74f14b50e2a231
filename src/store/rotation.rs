//! Rotating a session's refresh token. The session's one row is updated in place: a conditional
//! update lets exactly one of any number of concurrent rotations win, and the session's storage
//! stays one row however often it rotates.
//!
//! The common case, a live token that names its session, is one statement on PostgreSQL: the
//! update and the read of what the new tokens need (the user as the record says now, the
//! session's organization) go in one round trip instead of two.
//! SQLite, in process, takes the update on its writer and the read on its readers.

use std::sync::LazyLock;

use super::{Db, Result, Store, audit::insert_audit, on_writer, sessions::SESSION_STATE};
use crate::{domain::AuditEvent, store::RefreshSessionState, store::sessions::IssuedRefresh};

/// What a rotation presents: the session its token names, whose it claims to be, and the token.
pub struct Presented<'a> {
    pub session_id: &'a str,
    pub user_id: i64,
    pub jti: &'a str,
}

/// The update of a live session whose current token is the one presented, by a user still active.
/// `refresh_expires_at` never passes the session's end.
const ROTATE_LIVE: &str = "UPDATE refresh_families SET previous_jti = current_jti, current_jti = $1, \
     rotated_at_ms = $2, refresh_expires_at = CASE WHEN $3 < expires_at THEN $3 ELSE expires_at END \
     WHERE id = $4 AND user_id = $5 AND current_jti = $6 AND revoked_at IS NULL AND NOT sliding \
     AND expires_at > $7 AND EXISTS (SELECT 1 FROM users u WHERE u.id = refresh_families.user_id AND u.is_active)";

/// The same, and the session with its user, in one statement. The read sees the row as it was
/// before the update (a data-modifying CTE's effects are not visible to its query): what the new
/// tokens need, the user, the organization and the session's end, is the same before and after.
static ROTATE_LIVE_AND_READ: LazyLock<String> = LazyLock::new(|| {
    format!("WITH rotated AS ({ROTATE_LIVE} RETURNING id) {}(SELECT id FROM rotated)", *SESSION_STATE)
});

macro_rules! bind_rotation {
    ($query:expr, $presented:expr, $successor:expr, $now:expr, $rotated_at_ms:expr) => {
        $query
            .bind($successor.jti)
            .bind($rotated_at_ms)
            .bind($successor.expires_at)
            .bind($presented.session_id)
            .bind($presented.user_id)
            .bind($presented.jti)
            .bind($now)
    };
}

impl Store {
    /// Rotates a live session's current token to `successor`, if `presented` is that token, the
    /// session has neither ended nor expired and its user is active; returns the session and its
    /// user as they were. `None`, and nothing written, otherwise: the caller finds out why.
    pub async fn rotate_live_session(
        &self,
        presented: &Presented<'_>,
        successor: &IssuedRefresh<'_>,
        now: i64,
        rotated_at_ms: i64,
    ) -> Result<Option<RefreshSessionState>> {
        match &self.db {
            Db::Postgres(pool) => {
                let query = sqlx::query_as::<_, RefreshSessionState>(&ROTATE_LIVE_AND_READ);
                let state =
                    bind_rotation!(query, presented, successor, now, rotated_at_ms).fetch_optional(pool).await?;
                Ok(state)
            }
            Db::Sqlite { writer, .. } => {
                let query = bind_rotation!(sqlx::query(ROTATE_LIVE), presented, successor, now, rotated_at_ms);
                if query.execute(writer).await?.rows_affected() == 0 {
                    return Ok(None);
                }
                self.refresh_session_state(presented.session_id).await
            }
        }
    }

    /// Makes `successor` the session's current token in place of `presented`, whatever the
    /// session's state (its caller checked it), with `audit` (refreshes are audited only with
    /// `AUDIT_REFRESHES`) in the same transaction. `false`: someone else won, or the session
    /// ended meanwhile; nothing was written.
    pub async fn rotate_refresh_token(
        &self,
        family_id: &str,
        presented: &str,
        successor: &IssuedRefresh<'_>,
        rotated_at_ms: i64,
        audit: Option<&AuditEvent<'_>>,
    ) -> Result<bool> {
        const ROTATE: &str = "UPDATE refresh_families SET previous_jti = current_jti, current_jti = $1, \
             rotated_at_ms = $2, refresh_expires_at = $3 WHERE id = $4 AND current_jti = $5 AND revoked_at IS NULL";
        macro_rules! rotate {
            ($executor:expr) => {
                sqlx::query(ROTATE)
                    .bind(successor.jti)
                    .bind(rotated_at_ms)
                    .bind(successor.expires_at)
                    .bind(family_id)
                    .bind(presented)
                    .execute($executor)
                    .await
                    .map(|done| done.rows_affected() == 1)
            };
        }
        on_writer!(self, pool => {
            let Some(audit) = audit else {
                return Ok(rotate!(pool)?);
            };
            // The write comes first in the transaction, so SQLite takes its write lock at once
            // (a read first could not be upgraded under contention).
            let mut tx = pool.begin().await?;
            if !rotate!(&mut *tx)? {
                tx.rollback().await?;
                return Ok(false);
            }
            insert_audit!(audit, rotated_at_ms / 1000, &mut *tx)?;
            tx.commit().await?;
            Ok(true)
        })
    }
}
