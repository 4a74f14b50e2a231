//! The token service: logins, refresh rotation with reuse detection, blacklisting.
//! Handlers stay thin by calling these; the CLI shares the same store and hasher.

pub mod exchange;
pub mod keys;
pub mod passwords;
pub mod tokens;

use std::{sync::Arc, time::Duration};

use secrecy::SecretString;

use self::{
    keys::{secs, unix_now, unix_now_ms},
    passwords::PasswordHasherPool,
    tokens::{TokenError, TokenService, TokenSpec, TokenType, VerifiedToken, new_jti},
};
use crate::{
    config::Config,
    error::{AppError, BearerError},
    external::{Organization, clerk::ClerkVerifier, clerk_api::ClerkApi, issuers::IssuerVerifier, svix::SvixVerifier},
    store::{AuditEvent, NewRefreshToken, RefreshTokenState, SessionOrigin, Store, User},
};

pub struct TokenPair {
    pub access: String,
    pub refresh: String,
    /// When the refresh token expires (Unix seconds): the refresh cookie's lifetime.
    pub refresh_expires_at: i64,
}

/// What a refresh hands back: a new refresh token (and when it expires) only when rotation is on.
pub struct Refreshed {
    pub access: String,
    pub refresh: Option<(String, i64)>,
}

#[derive(Clone)]
pub struct AuthService {
    pub config: Arc<Config>,
    pub store: Store,
    pub tokens: Arc<TokenService>,
    pub passwords: PasswordHasherPool,
    /// Present when `CLERK_ISSUER` is set.
    pub clerk: Option<Arc<ClerkVerifier>>,
    /// Present when `CLERK_SECRET_KEY` is set too: first exchanges take the profile from it.
    pub clerk_api: Option<Arc<ClerkApi>>,
    /// The providers of `EXTERNAL_ISSUERS_FILE`.
    pub issuers: Vec<Arc<IssuerVerifier>>,
    /// Present when `CLERK_WEBHOOK_SIGNING_SECRET` is set: checks Clerk's webhook signatures.
    pub clerk_webhooks: Option<Arc<SvixVerifier>>,
}

/// What the database says a refresh token is worth now.
enum RefreshStatus {
    Live,
    /// Rotated away within the grace window: refused, but the session lives on.
    RecentlyRotated,
    /// Rotated away long ago and presented again: stolen, the whole family dies.
    Reused,
    Revoked,
}

impl RefreshStatus {
    fn of(state: &RefreshTokenState, now_ms: i64, grace: Duration) -> Self {
        match state.used_at_ms {
            _ if state.revoked_at.is_some() || state.family_revoked_at.is_some() => Self::Revoked,
            Some(used) if now_ms - used <= grace.as_millis() as i64 => Self::RecentlyRotated,
            Some(_) => Self::Reused,
            None => Self::Live,
        }
    }
}

impl AuthService {
    fn mint_access(
        &self,
        user_id: i64,
        now: i64,
        organization: Option<&Organization>,
    ) -> Result<(String, String), AppError> {
        let jti = new_jti();
        let spec = TokenSpec {
            token_type: TokenType::Access,
            jti: &jti,
            user_id,
            issued_at: now,
            expires_at: now + secs(self.config.access_token_lifetime),
            organization,
        };
        Ok((self.tokens.mint(&spec)?, jti))
    }

    async fn audit(&self, event: AuditEvent<'_>) -> Result<(), AppError> {
        Ok(self.store.record_audit_event(&event, unix_now()).await?)
    }

    /// `POST /api/token/`. Throttled before anything else, so a throttled attempt costs no argon2.
    pub async fn login(&self, username: &str, password: SecretString, client: &str) -> Result<TokenPair, AppError> {
        let now = unix_now();
        let prior_failures = self.check_login_throttle(username, client, now).await?;
        let user = self.store.user_by_username(username).await?;
        let hash = user.as_ref().and_then(|u| u.password_hash.as_deref());
        let password_ok = self.passwords.verify(password, hash).await?;
        let user = match user {
            Some(user) if password_ok && user.is_active => user,
            other => {
                metrics::counter!("tokensmith_logins_total", "result" => "failed").increment(1);
                self.store.record_login_failure(username, client, now).await?;
                let user_id = other.map(|u| u.id);
                let event = AuditEvent {
                    event: "login_failed",
                    user_id,
                    username: Some(username),
                    client_addr: Some(client),
                    detail: "",
                };
                self.audit(event).await?;
                return Err(AppError::InvalidCredentials);
            }
        };
        if prior_failures > 0 {
            self.store.clear_login_failures(username, client).await?;
        }
        let event = AuditEvent {
            event: "login_ok",
            user_id: Some(user.id),
            username: Some(username),
            client_addr: Some(client),
            detail: "",
        };
        let pair = self.start_session(&user, SessionOrigin::default(), &event).await?;
        metrics::counter!("tokensmith_logins_total", "result" => "ok").increment(1);
        Ok(pair)
    }

    /// 429 when this username failed `LOGIN_FAILURE_LIMIT` times from this address, or this
    /// address failed `LOGIN_ADDRESS_FAILURE_LIMIT` times across usernames, within
    /// `LOGIN_FAILURE_WINDOW`. Returns the username's failures so far.
    async fn check_login_throttle(&self, username: &str, client: &str, now: i64) -> Result<i64, AppError> {
        let window = secs(self.config.login_failure_window);
        let since = now - window;
        let (for_user, from_address) = self.store.login_failures(username, client, since).await?;
        let limits = [
            (Some(username), for_user, i64::from(self.config.login_failure_limit)),
            (None, from_address, i64::from(self.config.login_address_failure_limit)),
        ];
        for (scope, failures, limit) in limits {
            if failures < limit {
                continue;
            }
            // Allowed again once enough of the counted failures have left the window.
            let lifts_with = self.store.nth_login_failure(scope, client, since, failures - limit).await?.unwrap_or(now);
            let wait = (lifts_with + window - now).max(1) as u64;
            metrics::counter!("tokensmith_logins_total", "result" => "throttled").increment(1);
            let detail = if scope.is_some() { "username from this address" } else { "this address" };
            let event = AuditEvent {
                event: "login_throttled",
                username: Some(username),
                client_addr: Some(client),
                detail,
                ..Default::default()
            };
            self.audit(event).await?;
            return Err(AppError::Throttled(wait));
        }
        Ok(for_user)
    }

    /// A new refresh family for `user` and its first pair; `audit` is recorded with it.
    pub async fn start_session(
        &self,
        user: &User,
        origin: SessionOrigin<'_>,
        audit: &AuditEvent<'_>,
    ) -> Result<TokenPair, AppError> {
        let now = unix_now();
        let family_expires_at = now + secs(self.config.session_max_lifetime);
        let (access, access_jti) = self.mint_access(user.id, now, origin.organization)?;
        let family_id = new_jti();
        let jti = new_jti();
        let record = NewRefreshToken {
            jti: &jti,
            family_id: &family_id,
            user_id: user.id,
            parent_jti: None,
            access_jti: &access_jti,
            issued_at: now,
            expires_at: (now + secs(self.config.refresh_token_lifetime)).min(family_expires_at),
        };
        let refresh = self.mint_refresh(&record)?;
        self.store.start_session(family_expires_at, origin, &record, audit).await?;
        Ok(TokenPair { access, refresh, refresh_expires_at: record.expires_at })
    }

    fn mint_refresh(&self, record: &NewRefreshToken<'_>) -> Result<String, AppError> {
        let spec = TokenSpec {
            token_type: TokenType::Refresh,
            jti: record.jti,
            user_id: record.user_id,
            issued_at: record.issued_at,
            expires_at: record.expires_at,
            organization: None,
        };
        Ok(self.tokens.mint(&spec)?)
    }

    /// `POST /api/token/refresh/`: rotation is one conditional update, so of any number of
    /// concurrent refreshes of one token exactly one succeeds.
    pub async fn refresh(&self, token: &str, client: &str) -> Result<Refreshed, AppError> {
        let verified = self.tokens.verify(token, Some(TokenType::Refresh)).await?;
        // Twice at most: a lost race is classified again from what the winner wrote.
        for _ in 0..2 {
            let state = self.live_refresh_state(&verified, client).await?;
            let now = unix_now();
            let (access, access_jti) = self.mint_access(state.user_id, now, state.organization().as_ref())?;
            if !self.config.rotate_refresh_tokens {
                self.store.set_access_jti(&state.jti, &access_jti).await?;
                let event = AuditEvent {
                    event: "refresh",
                    user_id: Some(state.user_id),
                    client_addr: Some(client),
                    ..Default::default()
                };
                self.audit(event).await?;
                metrics::counter!("tokensmith_refreshes_total", "result" => "ok").increment(1);
                return Ok(Refreshed { access, refresh: None });
            }
            let jti = new_jti();
            let successor = NewRefreshToken {
                jti: &jti,
                family_id: &state.family_id,
                user_id: state.user_id,
                parent_jti: Some(&state.jti),
                access_jti: &access_jti,
                issued_at: now,
                expires_at: (now + secs(self.config.refresh_token_lifetime)).min(state.family_expires_at),
            };
            let refresh = self.mint_refresh(&successor)?;
            let event = AuditEvent {
                event: "refresh",
                user_id: Some(state.user_id),
                client_addr: Some(client),
                ..Default::default()
            };
            if self.store.rotate_refresh_token(&state.jti, unix_now_ms(), &successor, &event).await? {
                metrics::counter!("tokensmith_refreshes_total", "result" => "ok").increment(1);
                return Ok(Refreshed { access, refresh: Some((refresh, successor.expires_at)) });
            }
        }
        metrics::counter!("tokensmith_refreshes_total", "result" => "refused").increment(1);
        Err(TokenError::Blacklisted.into())
    }

    /// The record of a refresh token that may be used now, or why it may not.
    /// Reuse after the grace window revokes the whole family, the newest token included.
    async fn live_refresh_state(&self, token: &VerifiedToken, client: &str) -> Result<RefreshTokenState, AppError> {
        let state = self.store.refresh_token_state(&token.jti).await?;
        let Some(state) = state.filter(|s| s.user_id == token.user_id) else {
            return Err(TokenError::Invalid.into());
        };
        let now = unix_now();
        match RefreshStatus::of(&state, unix_now_ms(), self.config.refresh_reuse_grace) {
            RefreshStatus::Live => {}
            RefreshStatus::Revoked | RefreshStatus::RecentlyRotated => {
                metrics::counter!("tokensmith_refreshes_total", "result" => "refused").increment(1);
                return Err(TokenError::Blacklisted.into());
            }
            RefreshStatus::Reused => {
                self.store.revoke_family(&state.family_id, now).await?;
                metrics::counter!("tokensmith_refresh_reuse_detected_total").increment(1);
                tracing::warn!(user_id = state.user_id, family = %state.family_id, "refresh token reuse: session revoked");
                let event = AuditEvent {
                    event: "refresh_reuse_detected",
                    user_id: Some(state.user_id),
                    client_addr: Some(client),
                    detail: "session revoked",
                    ..Default::default()
                };
                self.audit(event).await?;
                return Err(TokenError::Blacklisted.into());
            }
        }
        if !state.user_active {
            return Err(AppError::NoActiveAccountForToken);
        }
        if now >= state.family_expires_at {
            return Err(TokenError::Expired.into());
        }
        Ok(state)
    }

    /// `POST /api/token/verify/`: signature and expiry; for a refresh token, also its record.
    pub async fn verify(&self, token: &str) -> Result<(), AppError> {
        let verified = self.tokens.verify(token, None).await?;
        if verified.token_type == TokenType::Refresh {
            let state = self.store.refresh_token_state(&verified.jti).await?.ok_or(TokenError::Invalid)?;
            if !matches!(RefreshStatus::of(&state, unix_now_ms(), Duration::ZERO), RefreshStatus::Live) {
                return Err(TokenError::Blacklisted.into());
            }
        }
        Ok(())
    }

    /// `POST /api/token/blacklist/`: the token, and the session it belongs to, end now.
    pub async fn blacklist(&self, token: &str, client: &str) -> Result<(), AppError> {
        let verified = self.tokens.verify(token, Some(TokenType::Refresh)).await?;
        let state = self.store.refresh_token_state(&verified.jti).await?.ok_or(TokenError::Invalid)?;
        let now = unix_now();
        if !matches!(RefreshStatus::of(&state, unix_now_ms(), Duration::ZERO), RefreshStatus::Live)
            || !self.store.blacklist_refresh_token(&state.jti, &state.family_id, now).await?
        {
            return Err(TokenError::Blacklisted.into());
        }
        let event = AuditEvent {
            event: "blacklist",
            user_id: Some(state.user_id),
            client_addr: Some(client),
            ..Default::default()
        };
        self.audit(event).await
    }

    /// The user behind `Authorization: Bearer <access token>`.
    pub async fn authenticate(&self, access_token: &str) -> Result<(User, VerifiedToken), AppError> {
        let verified = self
            .tokens
            .verify(access_token, Some(TokenType::Access))
            .await
            .map_err(|e| AppError::Bearer(BearerError::Token(e)))?;
        let user = self.store.user_by_id(verified.user_id).await?.ok_or(AppError::Bearer(BearerError::UserNotFound))?;
        if !user.is_active {
            return Err(AppError::Bearer(BearerError::UserInactive));
        }
        Ok((user, verified))
    }

    /// `POST /api/token/revoke-all/`.
    pub async fn revoke_all(&self, user: &User, client: &str) -> Result<(), AppError> {
        let ended = self.store.revoke_user_sessions(user.id, None, unix_now()).await?;
        let detail = format!("{ended} sessions ended");
        let event = AuditEvent {
            event: "revoke_all",
            user_id: Some(user.id),
            username: Some(&user.username),
            client_addr: Some(client),
            detail: &detail,
        };
        self.audit(event).await
    }

    /// `POST /api/password/change/`: every session but the caller's ends.
    pub async fn change_password(
        &self,
        user: &User,
        access: &VerifiedToken,
        current: SecretString,
        new: SecretString,
        client: &str,
    ) -> Result<(), AppError> {
        if !self.passwords.verify(current, user.password_hash.as_deref()).await? {
            return Err(AppError::field("current_password", "Your current password was entered incorrectly."));
        }
        let hash = self.passwords.hash(new).await?;
        self.store.set_password_hash(user.id, &hash).await?;
        let keep = self.store.family_of_access_token(&access.jti).await?;
        self.store.revoke_user_sessions(user.id, keep.as_deref(), unix_now()).await?;
        let event = AuditEvent {
            event: "password_changed",
            user_id: Some(user.id),
            username: Some(&user.username),
            client_addr: Some(client),
            detail: "",
        };
        self.audit(event).await
    }
}
