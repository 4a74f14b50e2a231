//! Sliding tokens, as simplejwt's `SlidingToken`: one token that authenticates like an access
//! token and, until its `refresh_exp`, refreshes into a copy of itself with a later `exp`.
//!
//! Each login's sliding token is a session of its own: a `refresh_families` row whose id is the
//! token's jti, which every refresh keeps (as simplejwt keeps it). So blacklisting, revoke-all,
//! deactivation and password changes end sliding tokens as they end refresh sessions, and
//! authenticating with one reads that row (access tokens, stateless, read none).
//!
//! Where tokensmith differs from simplejwt, deliberately: a refresh reads the user's claims from
//! the record, as refresh tokens do; a token past its `exp` still refreshes until its
//! `refresh_exp`, as simplejwt documents (its code refuses it, jazzband/djangorestframework-simplejwt#154);
//! `refresh_exp` is never later than `SESSION_MAX_LIFETIME` after the login, nor `exp` later
//! than `refresh_exp`, so the session's end is every one of its tokens' end.

use secrecy::SecretString;

use super::{AuthError, IssueError, Result, Sessions};
use crate::{
    clock::{secs, unix_now},
    domain::{AuditEvent, AuditKind, User},
    store::{NewSession, SessionOrigin, SlidingSessionState},
    tokens::{TokenError, TokenType, VerifiedToken, new_jti},
};

impl Sessions {
    /// `POST /api/token/sliding/`: the login of `POST /api/token/` (throttle, audit and all),
    /// answered with a sliding token.
    pub async fn login_sliding(&self, username: &str, password: SecretString, client: &str) -> Result<String> {
        let mut login = self.check_credentials(username, password, client).await?;
        loop {
            let issued = self.start_sliding_session(&login.user, login.origin(client), &login.event(client)).await;
            if let Some(token) = self.settle_login(issued, &mut login).await? {
                return Ok(token);
            }
        }
    }

    async fn start_sliding_session(
        &self,
        user: &User,
        origin: SessionOrigin<'_>,
        audit: &AuditEvent<'_>,
    ) -> Result<String, IssueError> {
        let now = unix_now();
        let lifetime = self.settings.tokens.sliding_token_refresh_lifetime.min(self.settings.session_max_lifetime);
        let refresh_expires_at = now + secs(lifetime);
        let jti = new_jti();
        let token = self.mint_sliding(user, &jti, now, refresh_expires_at).await?;
        let session =
            NewSession { id: &jti, user_id: user.id, created_at: now, expires_at: refresh_expires_at, sliding: true };
        if !self.store.start_session(&session, origin, None, audit).await? {
            return Err(IssueError::PasswordChanged);
        }
        Ok(token)
    }

    /// `POST /api/token/sliding/refresh/`: the same token (jti, `refresh_exp`) with a new `exp`
    /// and the user's claims as the record says now. Nothing rotates, so any number of
    /// concurrent refreshes of one token all succeed.
    pub async fn refresh_sliding(&self, token: &str, client: &str) -> Result<String> {
        let verified = self.tokens.verify_allowing_expired(token, TokenType::Sliding).await?;
        let refresh_expires_at = verified.refresh_expires_at.ok_or(TokenError::Invalid)?;
        let state = self.sliding_session(&verified).await?;
        // As simplejwt: a blacklisted token is that before it is anything else.
        if state.as_ref().is_some_and(|s| s.revoked_at.is_some()) {
            metrics::counter!("tokensmith_refreshes_total", "result" => "refused").increment(1);
            return Err(TokenError::Blacklisted.into());
        }
        if self.refresh_expired(refresh_expires_at) {
            return Err(TokenError::RefreshExpired.into());
        }
        if state.is_none() {
            return Err(self.unknown_session(verified.user_id).await);
        }
        // The record as it is now: claims follow a role change at the next refresh.
        let user = self.store.user_by_id(verified.user_id).await?.filter(|u| u.is_active);
        let user = user.ok_or(AuthError::NoActiveAccountForToken)?;
        let token = self.mint_sliding(&user, &verified.jti, unix_now(), refresh_expires_at).await?;
        self.audit(AuditEvent::new(AuditKind::Refresh).user_id(user.id).client(client)).await?;
        metrics::counter!("tokensmith_refreshes_total", "result" => "ok").increment(1);
        Ok(token)
    }

    /// Whether a sliding token's session lives (authenticating, verifying): refused as
    /// blacklisted once it has ended, as invalid when there is no such session.
    pub(super) async fn live_sliding_session(&self, token: &VerifiedToken) -> Result<()> {
        match self.sliding_session(token).await? {
            Some(state) if state.revoked_at.is_none() => Ok(()),
            Some(_) => Err(TokenError::Blacklisted.into()),
            None => Err(TokenError::Invalid.into()),
        }
    }

    /// Blacklisting a sliding token: its session ends. One past its `refresh_exp` is dead
    /// already, and refused as expired.
    pub(super) async fn end_sliding_session(&self, token: &VerifiedToken, client: &str) -> Result<()> {
        if token.refresh_expires_at.is_none_or(|at| self.refresh_expired(at)) {
            return Err(TokenError::Expired.into());
        }
        self.live_sliding_session(token).await?;
        let event = AuditEvent::new(AuditKind::Blacklist).user_id(token.user_id).client(client);
        if !self.store.end_sliding_session(&token.jti, unix_now(), &event).await? {
            return Err(TokenError::Blacklisted.into());
        }
        Ok(())
    }

    /// The session a sliding token names, if it is that token's user's.
    async fn sliding_session(&self, token: &VerifiedToken) -> Result<Option<SlidingSessionState>> {
        let state = self.store.sliding_session_state(&token.jti).await?;
        Ok(state.filter(|s| s.user_id == token.user_id))
    }

    /// simplejwt's `check_exp` on `refresh_exp`: passed once it is not after now, less the leeway.
    fn refresh_expired(&self, refresh_expires_at: i64) -> bool {
        refresh_expires_at <= unix_now() - secs(self.settings.leeway)
    }
}
