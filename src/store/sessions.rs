//! Sessions (`refresh_families`): one row per login, whatever its number of refreshes. A
//! refresh session's row holds its current refresh token and the one before it, so a rotation
//! updates that row in place; its tokens name it in their `sid` claim. A sliding token's session
//! is a row too, whose id is the token's jti. `refresh_tokens` keeps only the records of tokens
//! that name no session: those minted before tokens carried `sid`, and simplejwt's imported ones.

use std::sync::LazyLock;

use super::{Result, Store, audit::insert_audit, on_pool, on_writer, users::USER_COLUMNS};
use crate::domain::{AuditEvent, Organization, User};

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

/// A refresh token about to be handed out: the session row remembers it as its current token.
pub struct IssuedRefresh<'a> {
    pub jti: &'a str,
    pub expires_at: i64,
}

/// A refresh session as one row says it, with its user as the record says now (one read serves
/// a refresh): which of its tokens is current, which one it replaced and when (for
/// `REFRESH_REUSE_GRACE`), and whether it has ended. Every token the session handed out before
/// those two has been rotated away: presented again, it was stolen.
#[derive(Debug, sqlx::FromRow)]
pub struct RefreshSessionState {
    pub family_id: String,
    pub current_jti: Option<String>,
    pub previous_jti: Option<String>,
    /// When the previous token was rotated away, in Unix milliseconds.
    pub rotated_at_ms: Option<i64>,
    pub revoked_at: Option<i64>,
    pub expires_at: i64,
    pub org_id: Option<String>,
    pub org_role: Option<String>,
    pub org_slug: Option<String>,
    #[sqlx(flatten)]
    pub user: User,
}

impl RefreshSessionState {
    pub fn organization(&self) -> Option<Organization> {
        let id = self.org_id.clone()?;
        Some(Organization { id, role: self.org_role.clone(), slug: self.org_slug.clone() })
    }
}

/// The session row and its user, by the session's id (appended).
pub(super) static SESSION_STATE: LazyLock<String> = LazyLock::new(|| {
    let user_columns: Vec<String> = USER_COLUMNS.split(", ").map(|column| format!("u.{column}")).collect();
    format!(
        "SELECT f.id AS family_id, f.current_jti, f.previous_jti, f.rotated_at_ms, f.revoked_at, f.expires_at, \
         f.org_id, f.org_role, f.org_slug, {} FROM refresh_families f JOIN users u ON u.id = f.user_id \
         WHERE NOT f.sliding AND f.id = ",
        user_columns.join(", ")
    )
});

impl Store {
    /// A login: the session (holding its first refresh token, none for a sliding session), the
    /// user's `last_login`, the upgraded password hash if any, and the audit event, in one
    /// transaction (one commit per login). `false`, and nothing written, when the password hash
    /// the login checked is no longer the user's, or the user was deactivated meanwhile.
    pub async fn start_session(
        &self,
        session: &NewSession<'_>,
        origin: SessionOrigin<'_>,
        token: Option<&IssuedRefresh<'_>>,
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
                 org_id, org_role, org_slug, sliding, provider, client_addr, current_jti, refresh_expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            )
            .bind(session.id).bind(session.user_id).bind(session.created_at).bind(session.expires_at)
            .bind(origin.external_session_id)
            .bind(origin.organization.map(|o| o.id.as_str()))
            .bind(origin.organization.and_then(|o| o.role.as_deref()))
            .bind(origin.organization.and_then(|o| o.slug.as_deref()))
            .bind(session.sliding)
            .bind(origin.provider).bind(origin.client_addr)
            .bind(token.map(|t| t.jti)).bind(token.map(|t| t.expires_at))
            .execute(&mut *tx).await?;
            insert_audit!(audit, session.created_at, &mut *tx)?;
            tx.commit().await?;
            Ok(true)
        })
    }

    /// The refresh session a token names with its `sid`: one read by primary key.
    pub async fn refresh_session_state(&self, id: &str) -> Result<Option<RefreshSessionState>> {
        let sql = format!("{}$1", *SESSION_STATE);
        Ok(on_pool!(self, pool => sqlx::query_as::<_, RefreshSessionState>(&sql).bind(id).fetch_optional(pool).await)?)
    }

    /// The refresh session of a token that names none (minted before tokens carried `sid`, or
    /// imported from simplejwt): found through its record in `refresh_tokens`.
    pub async fn refresh_session_of_token(&self, jti: &str) -> Result<Option<RefreshSessionState>> {
        let sql = format!("{}(SELECT family_id FROM refresh_tokens WHERE jti = $1)", *SESSION_STATE);
        Ok(on_pool!(self, pool => sqlx::query_as::<_, RefreshSessionState>(&sql).bind(jti).fetch_optional(pool).await)?)
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

    /// Ends one session: every token of the family stops working. `false` when it had ended already.
    pub async fn revoke_family(&self, family_id: &str, now: i64) -> Result<bool> {
        let ended = on_writer!(self, pool => sqlx::query("UPDATE refresh_families SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now).bind(family_id).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(ended == 1)
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

    /// The session of an access token that does not name it (minted before tokens carried
    /// `sid`): the record of the refresh token it was issued with.
    pub async fn family_of_access_token(&self, access_jti: &str) -> Result<Option<String>> {
        Ok(on_pool!(self, pool => sqlx::query_scalar::<_, String>(
            "SELECT family_id FROM refresh_tokens WHERE access_jti = $1 LIMIT 1",
        )
        .bind(access_jti).fetch_optional(pool).await)?)
    }

    /// Deletes what expired before `now`: sessions past their lifetime or whose current refresh
    /// token expired (no token of theirs can be used any more; a sliding session goes only when
    /// it expires), and the records of tokens that name no session. A batch at a time: each
    /// statement is short, so replicas serving meanwhile never wait long on its locks. Returns
    /// how many refresh tokens went: records, and sessions that held a current one (a record of
    /// a session's current token is counted once, with its session).
    pub async fn flush_expired_tokens(&self, now: i64) -> Result<u64> {
        const TOKENS: &str = "DELETE FROM refresh_tokens WHERE jti IN \
             (SELECT jti FROM refresh_tokens WHERE expires_at < $1 LIMIT $2) \
             RETURNING CASE WHEN EXISTS (SELECT 1 FROM refresh_families f WHERE f.id = family_id \
             AND f.current_jti = jti) THEN 0 ELSE 1 END";
        const FAMILIES: &str = "DELETE FROM refresh_families WHERE id IN \
             (SELECT id FROM refresh_families f WHERE f.expires_at < $1 OR (NOT f.sliding AND \
             COALESCE(f.refresh_expires_at, 0) < $1) LIMIT $2) RETURNING CASE WHEN current_jti IS NULL THEN 0 ELSE 1 END";
        let mut deleted = 0;
        for sql in [TOKENS, FAMILIES] {
            loop {
                let batch: Vec<i32> = on_writer!(self, pool => sqlx::query_scalar(sql).bind(now).bind(FLUSH_BATCH)
                    .fetch_all(pool).await)?;
                deleted += batch.iter().map(|&held| held as u64).sum::<u64>();
                if batch.len() < FLUSH_BATCH as usize {
                    break;
                }
            }
        }
        Ok(deleted)
    }
}

/// Rows deleted per statement by `flush_expired_tokens`.
const FLUSH_BATCH: i64 = 1000;
