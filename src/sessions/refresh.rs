//! Refreshing a session: rotation with reuse detection, the one rule (`refresh_status`) that
//! refresh, verify and blacklist apply to a presented refresh token.

use super::{AuthError, Refreshed, Result, Sessions, refresh_status::RefreshStatus};
use crate::{
    clock::{secs, unix_now, unix_now_ms},
    config::UserClaim,
    domain::{AuditEvent, AuditKind},
    store::{IssuedRefresh, Presented, RefreshSessionState},
    tokens::{TokenError, TokenType, VerifiedToken, new_jti},
};

impl Sessions {
    /// `POST /api/token/refresh/`: rotation is one conditional update of the session's row, so of
    /// any number of concurrent refreshes of one token exactly one succeeds. A routine refresh is
    /// counted in `/metrics`, and audited only with `AUDIT_REFRESHES`.
    pub async fn refresh(&self, token: &str, client: &str) -> Result<Refreshed> {
        let verified = self.tokens.verify(token, Some(TokenType::Refresh)).await?;
        // Minting after the rotation must not fail on anything but the signing key: with groups in
        // the claims (a read), the read goes first, as below, so that a failed read leaves the
        // presented token as it was rather than rotated away unseen.
        let routine = self.settings.rotate_refresh_tokens
            && !self.settings.audit_refreshes
            && !self.settings.tokens.claims.contains(&UserClaim::Groups);
        if let (true, Some(session_id)) = (routine, verified.sid.as_deref())
            && let Some(refreshed) = self.rotate_live(&verified, session_id).await?
        {
            metrics::counter!("tokensmith_refreshes_total", "result" => "ok").increment(1);
            return Ok(refreshed);
        }
        // Anything else (a token that is not its session's current one, an ended session, a
        // token naming no session, auditing or no rotation) is read first, then decided.
        for _ in 0..2 {
            if let Some(refreshed) = self.refresh_checked(&verified, client).await? {
                metrics::counter!("tokensmith_refreshes_total", "result" => "ok").increment(1);
                return Ok(refreshed);
            }
        }
        // Twice lost: a lost race is classified again from what the winner wrote, at most twice.
        metrics::counter!("tokensmith_refreshes_total", "result" => "refused").increment(1);
        Err(TokenError::Blacklisted.into())
    }

    /// The common case in one step: the token is its live session's current one, rotated before
    /// anything is read, the new pair minted from what the rotation read. `None`: it was not,
    /// and nothing was written.
    async fn rotate_live(&self, token: &VerifiedToken, session_id: &str) -> Result<Option<Refreshed>> {
        let now = unix_now();
        let jti = new_jti();
        let successor = IssuedRefresh { jti: &jti, expires_at: now + secs(self.settings.refresh_token_lifetime) };
        let presented = Presented { session_id, user_id: token.user_id, jti: &token.jti };
        let Some(state) = self.store.rotate_live_session(&presented, &successor, now, unix_now_ms()).await? else {
            return Ok(None);
        };
        // As the row now says: never past the session's end.
        let successor = IssuedRefresh { jti: &jti, expires_at: successor.expires_at.min(state.expires_at) };
        let access = self.mint_access(&state.user, session_id, now, state.organization().as_ref()).await?;
        let refresh = self.mint_refresh(state.user.id, session_id, &successor, now)?;
        Ok(Some(Refreshed { access, refresh: Some((refresh, successor.expires_at)) }))
    }

    /// A refresh decided from the session's row as read: refused (`Err`) if the token may not be
    /// used; `None` if another refresh of it won the rotation meanwhile.
    async fn refresh_checked(&self, verified: &VerifiedToken, client: &str) -> Result<Option<Refreshed>> {
        // The user as the record says now: claims follow a role change at the next refresh.
        let state = self.live_refresh_state(verified, client).await?;
        let user = &state.user;
        let now = unix_now();
        let access = self.mint_access(user, &state.family_id, now, state.organization().as_ref()).await?;
        let event = AuditEvent::new(AuditKind::Refresh).user(user).client(client);
        let audit = self.settings.audit_refreshes.then_some(&event);
        if !self.settings.rotate_refresh_tokens {
            if let Some(event) = audit {
                self.store.record_audit_event(event, now).await?;
            }
            return Ok(Some(Refreshed { access, refresh: None }));
        }
        let jti = new_jti();
        let expires_at = (now + secs(self.settings.refresh_token_lifetime)).min(state.expires_at);
        let successor = IssuedRefresh { jti: &jti, expires_at };
        let refresh = self.mint_refresh(user.id, &state.family_id, &successor, now)?;
        let rotated_at_ms = unix_now_ms();
        let rotated =
            self.store.rotate_refresh_token(&state.family_id, &verified.jti, &successor, rotated_at_ms, audit).await?;
        Ok(rotated.then_some(Refreshed { access, refresh: Some((refresh, expires_at)) }))
    }

    /// The session of a presented refresh token: the one its `sid` names, or, for a token that
    /// names none, the one its record says. `None`: no session of this token's user.
    pub(super) async fn refresh_session(&self, token: &VerifiedToken) -> Result<Option<RefreshSessionState>> {
        let mut state = match &token.sid {
            Some(sid) => self.store.refresh_session_state(sid).await?,
            None => None,
        };
        // No session by that `sid`: a token that names none of ours (minted before tokens
        // carried it, or imported with a `sid` claim of its own) is found by its record.
        if state.is_none() {
            state = self.store.refresh_session_of_token(&token.jti).await?;
        }
        Ok(state.filter(|s| s.user.id == token.user_id))
    }

    /// The session of a refresh token that may be used now, or why it may not.
    async fn live_refresh_state(&self, token: &VerifiedToken, client: &str) -> Result<RefreshSessionState> {
        let Some(state) = self.refresh_session(token).await? else {
            return Err(self.unknown_session(token.user_id).await);
        };
        match self.check_reuse(&state, &token.jti, client).await? {
            RefreshStatus::Live => {}
            RefreshStatus::Reused => return Err(TokenError::Blacklisted.into()),
            RefreshStatus::Revoked | RefreshStatus::RecentlyRotated => {
                metrics::counter!("tokensmith_refreshes_total", "result" => "refused").increment(1);
                return Err(TokenError::Blacklisted.into());
            }
        }
        let now = unix_now();
        if !state.user.is_active {
            return Err(AuthError::NoActiveAccountForToken);
        }
        if now >= state.expires_at {
            return Err(TokenError::Expired.into());
        }
        Ok(state)
    }

    /// Why a validly signed token names no session: its user was deleted (their sessions went
    /// with them), as simplejwt says of a user who is gone, or else the token is not one of ours.
    pub(super) async fn unknown_session(&self, user_id: i64) -> AuthError {
        match self.store.user_by_id(user_id).await {
            Ok(Some(_)) => TokenError::Invalid.into(),
            Ok(None) => AuthError::NoActiveAccountForToken,
            Err(e) => e.into(),
        }
    }

    /// What the refresh token `jti` of this session is worth. One rotated away (longer than the
    /// grace ago, or before the token just replaced) has been stolen, whichever endpoint it is
    /// presented to (refresh, verify, blacklist): its whole session is revoked, the newest token
    /// included.
    pub(super) async fn check_reuse(
        &self,
        state: &RefreshSessionState,
        jti: &str,
        client: &str,
    ) -> Result<RefreshStatus> {
        let status = RefreshStatus::of(state, jti, unix_now_ms(), self.settings.refresh_reuse_grace);
        if status == RefreshStatus::Reused {
            self.store.revoke_family(&state.family_id, unix_now()).await?;
            metrics::counter!("tokensmith_refresh_reuse_detected_total").increment(1);
            tracing::warn!(user_id = state.user.id, family = %state.family_id, "refresh token reuse: session revoked");
            let event = AuditEvent::new(AuditKind::RefreshReuseDetected)
                .user(&state.user)
                .client(client)
                .detail("session revoked");
            self.audit(event).await?;
        }
        Ok(status)
    }
}
