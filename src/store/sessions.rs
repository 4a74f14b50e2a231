//! Refresh-token records and the families (login sessions) they form. A sliding token is a
//! family of its own, with no refresh-token records: the family's id is the token's jti.

use super::{Result, Store, audit::insert_audit, on_pool, on_writer};
use crate::domain::{AuditEvent, Organization};

/// Where a session came from besides the user: whether it was exchanged from a provider's token
/// (such a session ends sooner), the external session it was exchanged from, and the
/// organization active there, which every access token of the session carries.
#[derive(Clone, Copy)]
pub struct SessionOrigin<'a> {
    /// How it started, as the admin API lists it: `password` (a login), a provider's name (an
    /// exchange), `admin` (tokens a superuser minted).
    pub provider: &'a str,
    /// The address that started it.
    pub client_addr: Option<&'a str>,
    pub exchanged: bool,
    pub external_session_id: Option<&'a str>,
    pub organization: Option<&'a Organization>,
    /// The password hash a login checked: the session starts only while it is still current.
    pub password_hash: Option<&'a str>,
    /// What replaces that hash when it was outdated (one of Django's, or argon2 at other
    /// parameters): the same password hashed as new ones are. Not a password change: no session ends.
    pub upgraded_password_hash: Option<&'a str>,
}

impl Default for SessionOrigin<'_> {
    fn default() -> Self {
        Self {
            provider: "password",
            client_addr: None,
            exchanged: false,
            external_session_id: None,
            organization: None,
            password_hash: None,
            upgraded_password_hash: None,
        }
    }
}

/// A session about to start: a refresh family, or a sliding token's session.
pub struct NewSession<'a> {
    pub id: &'a str,
    pub user_id: i64,
    pub created_at: i64,
    pub expires_at: i64,
    pub sliding: bool,
}

/// What a presented sliding token's session says.
#[derive(Debug, sqlx::FromRow)]
pub struct SlidingSessionState {
    pub user_id: i64,
    pub revoked_at: Option<i64>,
}

/// A refresh token about to be issued.
pub struct NewRefreshToken<'a> {
    pub jti: &'a str,
    pub family_id: &'a str,
    pub user_id: i64,
    pub parent_jti: Option<&'a str>,
    pub access_jti: &'a str,
    pub issued_at: i64,
    pub expires_at: i64,
}

/// Everything needed to decide what a presented refresh token is worth.
#[derive(Debug, sqlx::FromRow)]
pub struct RefreshTokenState {
    pub jti: String,
    pub family_id: String,
    pub user_id: i64,
    /// When it was rotated away, in Unix milliseconds.
    pub used_at_ms: Option<i64>,
    pub revoked_at: Option<i64>,
    pub family_revoked_at: Option<i64>,
    pub family_expires_at: i64,
    pub user_active: bool,
    pub org_id: Option<String>,
    pub org_role: Option<String>,
    pub org_slug: Option<String>,
}

impl RefreshTokenState {
    pub fn organization(&self) -> Option<Organization> {
        let id = self.org_id.clone()?;
        Some(Organization { id, role: self.org_role.clone(), slug: self.org_slug.clone() })
    }
}

const INSERT_TOKEN: &str = "INSERT INTO refresh_tokens (jti, family_id, user_id, parent_jti, access_jti, issued_at, \
                            expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)";

macro_rules! insert_token {
    ($token:expr, $executor:expr) => {
        sqlx::query(INSERT_TOKEN)
            .bind($token.jti)
            .bind($token.family_id)
            .bind($token.user_id)
            .bind($token.parent_jti)
            .bind($token.access_jti)
            .bind($token.issued_at)
            .bind($token.expires_at)
            .execute($executor)
            .await
    };
}

impl Store {
    /// A login: the session, its first refresh token (none for a sliding session), the user's
    /// `last_login`, the upgraded password hash if any, and the audit event, in one transaction
    /// (one commit per login). `false`, and nothing written, when the password hash the login
    /// checked is no longer the user's, or the user was deactivated meanwhile.
    pub async fn start_session(
        &self,
        session: &NewSession<'_>,
        origin: SessionOrigin<'_>,
        token: Option<&NewRefreshToken<'_>>,
        audit: &AuditEvent<'_>,
    ) -> Result<bool> {
        on_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            // First, so that a password change or a deactivation waits for this session (and
            // then ends it) or this session sees it and does not start.
            let current = sqlx::query(
                "UPDATE users SET last_login = $1, password_hash = COALESCE($4, password_hash) \
                 WHERE id = $2 AND is_active AND ($3 IS NULL OR password_hash = $3)",
            )
            .bind(session.created_at).bind(session.user_id).bind(origin.password_hash)
            .bind(origin.upgraded_password_hash)
            .execute(&mut *tx).await?.rows_affected() == 1;
            if !current {
                tx.rollback().await?;
                return Ok(false);
            }
            sqlx::query(
                "INSERT INTO refresh_families (id, user_id, created_at, expires_at, external_session_id, \
                 org_id, org_role, org_slug, sliding, provider, client_addr) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(session.id).bind(session.user_id).bind(session.created_at).bind(session.expires_at)
            .bind(origin.external_session_id)
            .bind(origin.organization.map(|o| o.id.as_str()))
            .bind(origin.organization.and_then(|o| o.role.as_deref()))
            .bind(origin.organization.and_then(|o| o.slug.as_deref()))
            .bind(session.sliding)
            .bind(origin.provider).bind(origin.client_addr)
            .execute(&mut *tx).await?;
            if let Some(token) = token {
                insert_token!(token, &mut *tx)?;
            }
            insert_audit!(audit, session.created_at, &mut *tx)?;
            tx.commit().await?;
            Ok(true)
        })
    }

    pub async fn refresh_token_state(&self, jti: &str) -> Result<Option<RefreshTokenState>> {
        const SQL: &str = "SELECT t.jti, t.family_id, t.user_id, t.used_at_ms, t.revoked_at, \
             f.revoked_at AS family_revoked_at, f.expires_at AS family_expires_at, u.is_active AS user_active, \
             f.org_id, f.org_role, f.org_slug FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id JOIN users u ON u.id = t.user_id \
             WHERE t.jti = $1";
        Ok(on_pool!(self, pool => sqlx::query_as::<_, RefreshTokenState>(SQL).bind(jti).fetch_optional(pool).await)?)
    }

    /// The session of a sliding token: one read by primary key.
    pub async fn sliding_session_state(&self, id: &str) -> Result<Option<SlidingSessionState>> {
        const SQL: &str = "SELECT user_id, revoked_at FROM refresh_families WHERE id = $1 AND sliding";
        Ok(on_pool!(self, pool => sqlx::query_as::<_, SlidingSessionState>(SQL).bind(id).fetch_optional(pool).await)?)
    }

    /// Ends a sliding token's session (and the audit event with it). `false`, and nothing
    /// written, when it had ended already.
    pub async fn end_sliding_session(&self, id: &str, now: i64, audit: &AuditEvent<'_>) -> Result<bool> {
        on_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            let ended = sqlx::query(
                "UPDATE refresh_families SET revoked_at = $1 WHERE id = $2 AND sliding AND revoked_at IS NULL",
            )
            .bind(now).bind(id).execute(&mut *tx).await?.rows_affected() == 1;
            if !ended {
                tx.rollback().await?;
                return Ok(false);
            }
            insert_audit!(audit, now, &mut *tx)?;
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Retires `old_jti` and records its successor (and the audit event), atomically: the conditional update lets
    /// exactly one of any number of concurrent callers win. `false`: someone else won, or the
    /// token was revoked meanwhile; nothing was written.
    pub async fn rotate_refresh_token(
        &self,
        old_jti: &str,
        used_at_ms: i64,
        successor: &NewRefreshToken<'_>,
        audit: &AuditEvent<'_>,
    ) -> Result<bool> {
        on_writer!(self, pool => {
            // The write comes first in the transaction, so SQLite takes its write lock at once
            // (a read first could not be upgraded under contention).
            let mut tx = pool.begin().await?;
            let won = sqlx::query(
                "UPDATE refresh_tokens SET used_at_ms = $1 WHERE jti = $2 AND used_at_ms IS NULL AND revoked_at IS NULL",
            )
            .bind(used_at_ms).bind(old_jti)
            .execute(&mut *tx).await?
            .rows_affected() == 1;
            if !won {
                tx.rollback().await?;
                return Ok(false);
            }
            insert_token!(successor, &mut *tx)?;
            insert_audit!(audit, successor.issued_at, &mut *tx)?;
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Without rotation, refresh mints a new access token for the same refresh token;
    /// remember it so that token still names its session.
    pub async fn set_access_jti(&self, jti: &str, access_jti: &str) -> Result<()> {
        on_writer!(self, pool => sqlx::query("UPDATE refresh_tokens SET access_jti = $1 WHERE jti = $2")
            .bind(access_jti).bind(jti).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Ends one session: every token of the family stops working.
    pub async fn revoke_family(&self, family_id: &str, now: i64) -> Result<()> {
        on_writer!(self, pool => sqlx::query("UPDATE refresh_families SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now).bind(family_id).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Blacklists one refresh token and ends its session. `false` when it was already revoked.
    pub async fn blacklist_refresh_token(&self, jti: &str, family_id: &str, now: i64) -> Result<bool> {
        on_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            let done = sqlx::query("UPDATE refresh_tokens SET revoked_at = $1 WHERE jti = $2 AND revoked_at IS NULL")
                .bind(now).bind(jti).execute(&mut *tx).await?;
            sqlx::query("UPDATE refresh_families SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(now).bind(family_id).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Ends every session of a user but `keep_family`, and remembers when (`sessions_ended_at`:
    /// a simplejwt token issued before then, imported later, comes over ended). Returns how many
    /// ended.
    pub async fn revoke_user_sessions(&self, user_id: i64, keep_family: Option<&str>, now: i64) -> Result<u64> {
        let done = on_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("UPDATE users SET sessions_ended_at = $1 WHERE id = $2")
                .bind(now).bind(user_id).execute(&mut *tx).await?;
            let ended = sqlx::query(
                "UPDATE refresh_families SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL AND id <> $3",
            )
            .bind(now).bind(user_id).bind(keep_family.unwrap_or(""))
            .execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            Ok::<_, sqlx::Error>(ended)
        })?;
        Ok(done)
    }

    /// The session an access token was issued in; a sliding token's jti names its own.
    pub async fn family_of_access_token(&self, access_jti: &str) -> Result<Option<String>> {
        Ok(on_pool!(self, pool => sqlx::query_scalar::<_, String>(
            "SELECT family_id FROM refresh_tokens WHERE access_jti = $1 \
             UNION ALL SELECT id FROM refresh_families WHERE id = $1 AND sliding LIMIT 1",
        )
        .bind(access_jti).fetch_optional(pool).await)?)
    }

    /// Deletes refresh-token records that expired before `now`, and the sessions left empty or
    /// expired (a sliding session has no refresh tokens: it goes only when it expires), a batch at a time: each statement is short, so replicas serving meanwhile never
    /// wait long on its locks. Returns how many token records were deleted.
    pub async fn flush_expired_tokens(&self, now: i64) -> Result<u64> {
        const TOKENS: &str = "DELETE FROM refresh_tokens WHERE jti IN \
             (SELECT jti FROM refresh_tokens WHERE expires_at < $1 LIMIT $2)";
        const FAMILIES: &str = "DELETE FROM refresh_families WHERE id IN \
             (SELECT id FROM refresh_families f WHERE f.expires_at < $1 OR (NOT f.sliding AND NOT EXISTS \
             (SELECT 1 FROM refresh_tokens t WHERE t.family_id = f.id)) LIMIT $2)";
        let mut deleted = 0;
        for (sql, count) in [(TOKENS, true), (FAMILIES, false)] {
            loop {
                let batch = on_writer!(self, pool => sqlx::query(sql).bind(now).bind(FLUSH_BATCH)
                    .execute(pool).await.map(|r| r.rows_affected()))?;
                if count {
                    deleted += batch;
                }
                if batch < FLUSH_BATCH as u64 {
                    break;
                }
            }
        }
        Ok(deleted)
    }
}

/// Rows deleted per statement by `flush_expired_tokens`.
const FLUSH_BATCH: i64 = 1000;
