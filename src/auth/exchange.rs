//! External sessions become local ones: a verified Clerk session token is exchanged for a
//! local pair, and Clerk's view of its users (webhooks, directory sync) is applied locally.

use super::{AuthService, TokenPair, keys::unix_now};
use crate::{
    error::AppError,
    external::{
        ExternalError, ExternalIdentity, ExternalProfile,
        clerk::{self, ClerkVerifier},
        clerk_api::{ClerkEvent, ClerkUser},
        issuers::IssuerVerifier,
    },
    store::{AuditEvent, ProfileApplied, SessionOrigin, Store},
};

/// What applying one provider event or user record did, for logs, audit and sync counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Created,
    Updated,
    Deactivated,
    SessionsEnded(u64),
    /// Older than what is stored, about a user never linked, or a type we do not act on.
    Ignored,
}

impl AuthService {
    pub fn clerk(&self) -> Result<&ClerkVerifier, AppError> {
        self.clerk.as_deref().ok_or(AppError::NotFound)
    }

    /// `POST /api/token/clerk/`: a Clerk session token for a local pair.
    pub async fn exchange_clerk_token(&self, token: &str, client: &str) -> Result<TokenPair, AppError> {
        let verified = self.clerk()?.verify(token).await;
        self.exchange_verified(clerk::PROVIDER, verified, client).await
    }

    /// The configured provider called `name`, if any.
    pub fn issuer_named(&self, name: &str) -> Option<&IssuerVerifier> {
        self.issuers.iter().find(|i| i.name == name).map(|i| &**i)
    }

    /// `POST /api/token/{provider}/`: a token of a configured provider for a local pair.
    pub async fn exchange_external_token(
        &self,
        verifier: &IssuerVerifier,
        token: &str,
        client: &str,
    ) -> Result<TokenPair, AppError> {
        let verified = verifier.verify(token).await;
        self.exchange_verified(verifier.name, verified, client).await
    }

    async fn exchange_verified(
        &self,
        provider: &'static str,
        verified: Result<ExternalIdentity, ExternalError>,
        client: &str,
    ) -> Result<TokenPair, AppError> {
        match verified {
            Ok(identity) => self.exchange(&identity, client).await,
            Err(e) => {
                metrics::counter!("tokensmith_exchanges_total", "provider" => provider, "result" => "refused")
                    .increment(1);
                let (name, detail) = (format!("{provider}_exchange_failed"), e.to_string());
                let event =
                    AuditEvent { event: &name, client_addr: Some(client), detail: &detail, ..Default::default() };
                self.store.record_audit_event(&event, unix_now()).await?;
                Err(e.into())
            }
        }
    }

    /// The local user linked to a verified identity (created at its first exchange), signed in.
    /// Linking is by (provider, subject) only: never to an existing account by email.
    pub async fn exchange(&self, identity: &ExternalIdentity, client: &str) -> Result<TokenPair, AppError> {
        let now = unix_now();
        let mut user = match self.store.user_by_identity(identity.provider, &identity.subject).await? {
            Some(user) => user,
            None => {
                let (profile, may_sign_in) = self.first_profile(identity).await;
                self.store.create_linked_user(identity.provider, &identity.subject, &profile, may_sign_in, now).await?
            }
        };
        // Roles follow the provider at every exchange: one revoked upstream is gone at the next.
        if let Some((staff, superuser)) = identity.roles
            && (user.is_staff, user.is_superuser) != (staff, superuser)
        {
            self.store.set_user_roles(user.id, staff, superuser).await?;
            (user.is_staff, user.is_superuser) = (staff, superuser);
        }
        let (metric, outcome, detail) =
            if user.is_active { ("ok", "ok", "") } else { ("inactive", "failed", "user is inactive") };
        metrics::counter!("tokensmith_exchanges_total", "provider" => identity.provider, "result" => metric)
            .increment(1);
        let name = format!("{}_exchange_{outcome}", identity.provider);
        let event = AuditEvent {
            event: &name,
            user_id: Some(user.id),
            username: Some(&user.username),
            client_addr: Some(client),
            detail,
        };
        if !user.is_active {
            self.store.record_audit_event(&event, now).await?;
            return Err(AppError::NoActiveAccountForToken);
        }
        let session_id = Some(identity.session_id.as_str()).filter(|sid| !sid.is_empty());
        let origin = SessionOrigin { external_session_id: session_id, organization: identity.organization.as_ref() };
        self.start_session(&user, origin, &event).await
    }

    /// The profile of a user signing in for the first time: Clerk's Backend API has the username
    /// and verified email that default session tokens lack. If it cannot be asked (no secret key,
    /// Clerk down), the token's own claims do, and a webhook or sync fills in the rest later.
    async fn first_profile(&self, identity: &ExternalIdentity) -> (ExternalProfile, bool) {
        let from_token = (identity.profile.clone(), true);
        let Some(api) = self.clerk_api.as_ref().filter(|_| identity.provider == clerk::PROVIDER) else {
            return from_token;
        };
        match api.user(&identity.subject).await {
            Ok(Some(user)) => (user.profile(), user.may_sign_in()),
            Ok(None) => from_token,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the new user's profile from Clerk; using the token's claims");
                from_token
            }
        }
    }
}

/// One webhook event from Clerk. Applying the same event twice changes nothing.
pub async fn apply_clerk_event(store: &Store, event: &ClerkEvent) -> Result<Applied, sqlx::Error> {
    let now = unix_now();
    match event {
        ClerkEvent::UserChanged(user) => apply_clerk_user(store, user).await,
        ClerkEvent::UserDeleted { id } => match store.deactivate_external_user(clerk::PROVIDER, id).await? {
            Some(user_id) => {
                store.revoke_user_sessions(user_id, None, now).await?;
                Ok(Applied::Deactivated)
            }
            None => Ok(Applied::Ignored),
        },
        ClerkEvent::SessionEnded { id } => Ok(Applied::SessionsEnded(store.revoke_external_session(id, now).await?)),
        ClerkEvent::Ignored(_) => Ok(Applied::Ignored),
    }
}

/// Clerk's current view of one user (a webhook, or `clerk sync-users`). A banned or locked
/// user is deactivated and every local session of it ends.
pub async fn apply_clerk_user(store: &Store, user: &ClerkUser) -> Result<Applied, sqlx::Error> {
    apply_external_user(store, clerk::PROVIDER, &user.id, &user.profile(), user.may_sign_in()).await
}

async fn apply_external_user(
    store: &Store,
    provider: &str,
    subject: &str,
    profile: &ExternalProfile,
    may_sign_in: bool,
) -> Result<Applied, sqlx::Error> {
    let now = unix_now();
    let (user, applied) = match store.apply_external_profile(provider, subject, profile, may_sign_in, now).await? {
        ProfileApplied::Stale => return Ok(Applied::Ignored),
        ProfileApplied::Created(user) => (user, Applied::Created),
        ProfileApplied::Updated(user) => (user, Applied::Updated),
    };
    if !user.is_active {
        store.revoke_user_sessions(user.id, None, now).await?;
        if applied == Applied::Updated {
            return Ok(Applied::Deactivated);
        }
    }
    Ok(applied)
}
