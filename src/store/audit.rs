//! The audit trail's table. What an event is lives in `domain::AuditEvent`.

use serde::Serialize;

use super::{Result, Store, on_pool, on_writer};
use crate::domain::AuditEvent;

#[derive(Debug, sqlx::FromRow, Serialize)]
pub struct AuditRecord {
    pub id: i64,
    pub occurred_at: i64,
    pub event: String,
    pub user_id: Option<i64>,
    pub username: Option<String>,
    pub client_addr: Option<String>,
    pub detail: String,
    pub actor_id: Option<i64>,
    pub actor_username: Option<String>,
}

pub(crate) const INSERT_AUDIT: &str = "INSERT INTO audit_events (occurred_at, event, user_id, username, \
                                       client_addr, detail, actor_id, actor_username) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

/// Records `$event` through `$executor`: a pool, or a transaction the event belongs to.
macro_rules! insert_audit {
    ($event:expr, $now:expr, $executor:expr) => {
        sqlx::query($crate::store::audit::INSERT_AUDIT)
            .bind($now)
            .bind($event.kind.name().into_owned())
            .bind($event.user_id)
            .bind($event.username)
            .bind($event.client_addr)
            .bind($event.detail)
            .bind($event.actor_id)
            .bind($event.actor_username)
            .execute($executor)
            .await
    };
}
pub(crate) use insert_audit;

impl Store {
    pub async fn record_audit_event(&self, event: &AuditEvent<'_>, now: i64) -> Result<()> {
        on_writer!(self, pool => insert_audit!(event, now, pool).map(|_| ()))?;
        Ok(())
    }

    /// Forgets audit events older than `before`. Returns how many.
    pub async fn prune_audit_events(&self, before: i64) -> Result<u64> {
        let done = on_writer!(self, pool => sqlx::query("DELETE FROM audit_events WHERE occurred_at < $1")
            .bind(before).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(done)
    }

    /// The latest `limit` events, oldest first.
    pub async fn latest_audit_events(&self, limit: i64) -> Result<Vec<AuditRecord>> {
        let mut records = on_pool!(self, pool => sqlx::query_as::<_, AuditRecord>(
            "SELECT id, occurred_at, event, user_id, username, client_addr, detail, actor_id, actor_username FROM audit_events \
             ORDER BY id DESC LIMIT $1",
        )
        .bind(limit).fetch_all(pool).await)?;
        records.reverse();
        Ok(records)
    }
}
