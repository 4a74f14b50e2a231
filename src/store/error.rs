//! What a query can end in besides its answer, told apart once, here, from sqlx's errors: the
//! services decide what to do about an unavailable database without knowing sqlx.

/// A failed query. The source is kept (and shown as the message) for logs; it never reaches a client.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database is down, saturated, busy, or cut off mid-handshake: the caller may retry.
    #[error(transparent)]
    Unavailable(sqlx::Error),
    /// Anything else: a bug, a constraint, a schema this binary does not know.
    #[error(transparent)]
    Failed(sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            // A connection closed during TLS negotiation reads as a protocol error.
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => Self::Unavailable(e),
            // SQLITE_BUSY: another process holds the write lock past the busy timeout.
            sqlx::Error::Database(db) if db.code().as_deref() == Some("5") => Self::Unavailable(e),
            _ => Self::Failed(e),
        }
    }
}
