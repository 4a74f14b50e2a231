//! Sessions of local tokens: logins, refresh rotation with reuse detection, verification,
//! blacklisting and revoke-all, and who an access token belongs to. Handlers stay thin by
//! calling these; exchanges of external tokens start their sessions here too. Sliding tokens,
//! sessions of one self-refreshing token, are in `sliding`.

mod login;
mod minting;
mod refresh;
mod refresh_status;
mod sliding;

use std::{sync::Arc, time::Duration};

use self::refresh_status::RefreshStatus;
use crate::{
    clock::{secs, unix_now},
    config::{Config, TokenCustomisation},
    domain::{AuditEvent, AuditKind, User},
    passwords::{PasswordError, PasswordHasherPool},
    store::{IssuedRefresh, NewSession, SessionOrigin, Store, StoreError},
    throttle::{LoginThrottle, ThrottleError},
    tokens::{TokenError, TokenService, TokenType, VerifiedToken, claimed_type, new_jti},
};

/// Why a token operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no active account found with the given credentials")]
    InvalidCredentials,
    #[error(transparent)]
    Throttle(#[from] ThrottleError),
    #[error("token refused: {0}")]
    Token(TokenError),
    /// A refresh token whose user is gone or deactivated.
    #[error("no active account for the token")]
    NoActiveAccountForToken,
    #[error("access token refused: {0:?}")]
    Bearer(BearerRefusal),
    #[error(transparent)]
    Issue(#[from] IssueError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Passwords(#[from] PasswordError),
}

impl From<TokenError> for AuthError {
    fn from(e: TokenError) -> Self {
        Self::Token(e)
    }
}

/// Why an access token does not authenticate its bearer, as simplejwt's `JWTAuthentication` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BearerRefusal {
    Token(TokenError),
    /// What was refused is a sliding token (simplejwt names the token class that refused it).
    Sliding(TokenError),
    UserNotFound,
    UserInactive,
}

/// Why a new session could not be issued.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// The password was changed while the login was checking the old one, or the user was
    /// deactivated meanwhile.
    #[error("the password changed, or the user was deactivated, during the login")]
    PasswordChanged,
    #[error("signing failed: {0}")]
    Signing(#[from] jsonwebtoken::errors::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

type Result<T, E = AuthError> = std::result::Result<T, E>;

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

/// The settings sessions follow, taken from the configuration once.
struct Settings {
    /// What tokens say about their user (`TOKEN_CLAIMS`, `USER_ID_CLAIM`), and `USERNAME_FIELD`.
    tokens: TokenCustomisation,
    access_token_lifetime: Duration,
    refresh_token_lifetime: Duration,
    session_max_lifetime: Duration,
    exchange_session_max_lifetime: Duration,
    rotate_refresh_tokens: bool,
    refresh_reuse_grace: Duration,
    /// `AUDIT_REFRESHES`: routine successful refreshes are audited too.
    audit_refreshes: bool,
    /// `JWT_LEEWAY`, for a sliding token's `refresh_exp`.
    leeway: Duration,
}

#[derive(Clone)]
pub struct Sessions {
    store: Store,
    tokens: Arc<TokenService>,
    passwords: PasswordHasherPool,
    throttle: LoginThrottle,
    settings: Arc<Settings>,
}

impl Sessions {
    pub fn new(
        config: &Config,
        store: Store,
        tokens: Arc<TokenService>,
        passwords: PasswordHasherPool,
        throttle: LoginThrottle,
    ) -> Self {
        let settings = Settings {
            tokens: config.tokens.clone(),
            access_token_lifetime: config.access_token_lifetime,
            refresh_token_lifetime: config.refresh_token_lifetime,
            session_max_lifetime: config.session_max_lifetime,
            exchange_session_max_lifetime: config.exchange_session_max_lifetime,
            rotate_refresh_tokens: config.rotate_refresh_tokens,
            refresh_reuse_grace: config.refresh_reuse_grace,
            audit_refreshes: config.audit_refreshes,
            leeway: config.jwt_leeway,
        };
        Self { store, tokens, passwords, throttle, settings: Arc::new(settings) }
    }

    /// Seconds an access token lives (RFC 8693's `expires_in`).
    pub fn access_token_lifetime(&self) -> Duration {
        self.settings.access_token_lifetime
    }

    async fn audit(&self, event: AuditEvent<'_>) -> Result<()> {
        Ok(self.store.record_audit_event(&event, unix_now()).await?)
    }

    /// A new refresh family for `user` and its first pair; `audit` is recorded with it. A session
    /// exchanged from a provider's token ends after `EXCHANGE_SESSION_MAX_LIFETIME`, so what the
    /// provider said (roles, organization) is asked again that often.
    pub async fn start_session(
        &self,
        user: &User,
        origin: SessionOrigin<'_>,
        audit: &AuditEvent<'_>,
    ) -> Result<TokenPair, IssueError> {
        let now = unix_now();
        let mut lifetime = self.settings.session_max_lifetime;
        if origin.exchanged {
            lifetime = lifetime.min(self.settings.exchange_session_max_lifetime);
        }
        let family_expires_at = now + secs(lifetime);
        let family_id = new_jti();
        let access = self.mint_access(user, &family_id, now, origin.organization).await?;
        let session = NewSession {
            id: &family_id,
            user_id: user.id,
            created_at: now,
            expires_at: family_expires_at,
            sliding: false,
        };
        let jti = new_jti();
        let expires_at = (now + secs(self.settings.refresh_token_lifetime)).min(family_expires_at);
        let first = IssuedRefresh { jti: &jti, expires_at };
        let refresh = self.mint_refresh(user.id, &family_id, &first, now)?;
        if !self.store.start_session(&session, origin, Some(&first), audit).await? {
            return Err(IssueError::PasswordChanged);
        }
        Ok(TokenPair { access, refresh, refresh_expires_at: expires_at })
    }

    /// `POST /api/token/verify/`: signature and expiry; for a refresh or sliding token, also its record.
    pub async fn verify(&self, token: &str, client: &str) -> Result<()> {
        let verified = self.tokens.verify(token, None).await?;
        match verified.token_type {
            TokenType::Access => {}
            TokenType::Refresh => {
                let state = self.refresh_session(&verified).await?.ok_or(TokenError::Invalid)?;
                if self.check_reuse(&state, &verified.jti, client).await? != RefreshStatus::Live {
                    return Err(TokenError::Blacklisted.into());
                }
            }
            TokenType::Sliding => self.live_sliding_session(&verified).await?,
        }
        Ok(())
    }

    /// `POST /api/token/blacklist/`: the token, and the session it belongs to, end now. A
    /// sliding token is taken too (beyond simplejwt, whose endpoint takes refresh tokens only).
    /// Returns which kind it was.
    pub async fn blacklist(&self, token: &str, client: &str) -> Result<TokenType> {
        let verified = match self.tokens.verify_one_of(token, &[TokenType::Refresh, TokenType::Sliding]).await {
            // Past its `exp`, a sliding token still refreshes: it can still be logged out.
            Err(TokenError::Expired) if claimed_type(token) == Some(TokenType::Sliding) => {
                self.tokens.verify_allowing_expired(token, TokenType::Sliding).await?
            }
            other => other?,
        };
        if verified.token_type == TokenType::Sliding {
            self.end_sliding_session(&verified, client).await?;
            return Ok(TokenType::Sliding);
        }
        let state = self.refresh_session(&verified).await?.ok_or(TokenError::Invalid)?;
        if self.check_reuse(&state, &verified.jti, client).await? != RefreshStatus::Live
            || !self.store.revoke_family(&state.family_id, unix_now()).await?
        {
            return Err(TokenError::Blacklisted.into());
        }
        self.audit(AuditEvent::new(AuditKind::Blacklist).user(&state.user).client(client)).await?;
        Ok(TokenType::Refresh)
    }

    /// The user behind an access or sliding token (`Authorization: Bearer …`), and the token's
    /// claims. Only a sliding token costs a read of its session: access tokens are stateless.
    pub async fn authenticate(&self, access_token: &str) -> Result<(User, VerifiedToken)> {
        let refused = |e| match claimed_type(access_token) {
            Some(TokenType::Sliding) => AuthError::Bearer(BearerRefusal::Sliding(e)),
            _ => AuthError::Bearer(BearerRefusal::Token(e)),
        };
        let verified =
            self.tokens.verify_one_of(access_token, &[TokenType::Access, TokenType::Sliding]).await.map_err(refused)?;
        if verified.token_type == TokenType::Sliding {
            self.live_sliding_session(&verified).await.map_err(|e| match e {
                AuthError::Token(e) => refused(e),
                other => other,
            })?;
        }
        let user =
            self.store.user_by_id(verified.user_id).await?.ok_or(AuthError::Bearer(BearerRefusal::UserNotFound))?;
        if !user.is_active {
            return Err(AuthError::Bearer(BearerRefusal::UserInactive));
        }
        Ok((user, verified))
    }

    /// `POST /api/token/revoke-all/`: sliding sessions end too.
    pub async fn revoke_all(&self, user: &User, client: &str) -> Result<()> {
        let ended = self.store.revoke_user_sessions(user.id, None, unix_now()).await?;
        let detail = format!("{ended} sessions ended");
        let event = AuditEvent::new(AuditKind::RevokeAll).user(user).client(client).detail(&detail);
        self.audit(event).await
    }
}
