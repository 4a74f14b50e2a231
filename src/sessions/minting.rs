//! Minting a session's tokens: access and sliding tokens carry what `TOKEN_CLAIMS` and the
//! user's custom claims say, read when the token is minted; refresh tokens carry only the user id.
//! Access and refresh tokens name their session (`sid`); a sliding token's jti is its session.

use serde_json::{Map, Value};

use super::{IssueError, Sessions};
use crate::{
    clock::secs,
    config::UserClaim,
    domain::{Organization, User},
    store::IssuedRefresh,
    tokens::{TokenSpec, TokenType, new_jti, user_claims},
};

impl Sessions {
    /// An access token of session `session_id` for `user` as the record says now.
    pub(super) async fn mint_access(
        &self,
        user: &User,
        session_id: &str,
        now: i64,
        organization: Option<&Organization>,
    ) -> Result<String, IssueError> {
        let claims = self.user_claims(user).await?;
        let jti = new_jti();
        let spec = TokenSpec {
            token_type: TokenType::Access,
            jti: &jti,
            session_id: Some(session_id),
            user_id: user.id,
            issued_at: now,
            expires_at: now + secs(self.settings.access_token_lifetime),
            refresh_expires_at: None,
            organization,
            user_claims: Some(&claims),
        };
        Ok(self.tokens.mint(&spec)?)
    }

    /// A refresh token of session `session_id`, which holds it as `token`.
    pub(super) fn mint_refresh(
        &self,
        user_id: i64,
        session_id: &str,
        token: &IssuedRefresh<'_>,
        now: i64,
    ) -> Result<String, IssueError> {
        let spec = TokenSpec {
            token_type: TokenType::Refresh,
            jti: token.jti,
            session_id: Some(session_id),
            user_id,
            issued_at: now,
            expires_at: token.expires_at,
            refresh_expires_at: None,
            organization: None,
            user_claims: None,
        };
        Ok(self.tokens.mint(&spec)?)
    }

    /// A sliding token for `user` as the record says now: `jti` names its session, which ends at
    /// `refresh_expires_at`, so the token never outlives it.
    pub(super) async fn mint_sliding(
        &self,
        user: &User,
        jti: &str,
        now: i64,
        refresh_expires_at: i64,
    ) -> Result<String, IssueError> {
        let claims = self.user_claims(user).await?;
        let spec = TokenSpec {
            token_type: TokenType::Sliding,
            jti,
            session_id: None,
            user_id: user.id,
            issued_at: now,
            expires_at: (now + secs(self.settings.tokens.sliding_token_lifetime)).min(refresh_expires_at),
            refresh_expires_at: Some(refresh_expires_at),
            organization: None,
            user_claims: Some(&claims),
        };
        Ok(self.tokens.mint(&spec)?)
    }

    /// The user's claims; the groups are read only when `TOKEN_CLAIMS` names them.
    async fn user_claims(&self, user: &User) -> Result<Map<String, Value>, IssueError> {
        let settings = &self.settings.tokens;
        let groups = match settings.claims.contains(&UserClaim::Groups) {
            true => self.store.group_names_of(user.id).await?,
            false => Vec::new(),
        };
        Ok(user_claims(user, &groups, settings))
    }
}
