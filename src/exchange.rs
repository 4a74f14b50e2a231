//! External sessions become local ones: a token verified by Clerk's verifier or a configured
//! issuer's is exchanged for a local pair, for the local user linked to that identity (at its
//! first exchange, the existing user Clerk's `external_id` names, or one created through
//! `accounts`). Refusals are audited and counted.

use std::sync::Arc;

use crate::{
    accounts::{AccountError, Accounts, NamedLink},
    clock::unix_now,
    domain::{AuditEvent, AuditKind, ExternalProfile, User},
    external::{
        ExternalError, ExternalIdentity,
        clerk::{self, ClerkVerifier},
        clerk_api::ClerkApi,
        issuers::IssuerVerifier,
    },
    sessions::{IssueError, Sessions, TokenPair},
    store::{SessionOrigin, Store, StoreError},
};

#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// `/api/token/clerk/` without Clerk configured, or `/api/token/{name}/` for no issuer.
    #[error("no such provider is configured")]
    NotConfigured,
    /// RFC 8693: no configured provider issues tokens with the token's `iss`.
    #[error("the issuer is not trusted")]
    UntrustedIssuer,
    #[error("external token refused: {0}")]
    Refused(#[from] ExternalError),
    #[error("the local user is inactive")]
    Inactive,
    /// The provider's user names (by Clerk's `external_id`) a local user that is linked to
    /// another of the provider's users: neither that account nor a new one is signed in.
    #[error("the local user named by the provider's user is linked to another of its users")]
    LinkedElsewhere,
    /// A first exchange with `CLERK_SECRET_KEY` set, while Clerk's Backend API cannot be asked:
    /// the user's `external_id` (the local account it is) would go unread, and the person would
    /// land on a new account. The caller may retry later.
    #[error("the identity provider's user record is unavailable")]
    ProfileUnavailable,
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error(transparent)]
    Issue(#[from] IssueError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

type Result<T, E = ExchangeError> = std::result::Result<T, E>;

/// A provider whose tokens can be exchanged.
#[derive(Clone, Copy)]
pub enum Provider<'a> {
    Clerk(&'a ClerkVerifier),
    Issuer(&'a IssuerVerifier),
}

impl Provider<'_> {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Clerk(_) => clerk::PROVIDER,
            Self::Issuer(issuer) => issuer.name,
        }
    }

    async fn verify(&self, token: &str) -> Result<ExternalIdentity, ExternalError> {
        match self {
            Self::Clerk(clerk) => clerk.verify(token).await,
            Self::Issuer(issuer) => issuer.verify(token).await,
        }
    }
}

struct Providers {
    /// Present when `CLERK_ISSUER` is set.
    clerk: Option<ClerkVerifier>,
    /// Present when `CLERK_SECRET_KEY` is set too: first exchanges take the profile from it.
    clerk_api: Option<ClerkApi>,
    /// The providers of `EXTERNAL_ISSUERS_FILE`.
    issuers: Vec<IssuerVerifier>,
}

#[derive(Clone)]
pub struct Exchange {
    providers: Arc<Providers>,
    sessions: Sessions,
    accounts: Accounts,
    store: Store,
}

impl Exchange {
    pub fn new(
        clerk: Option<ClerkVerifier>,
        clerk_api: Option<ClerkApi>,
        issuers: Vec<IssuerVerifier>,
        sessions: Sessions,
        accounts: Accounts,
        store: Store,
    ) -> Self {
        Self { providers: Arc::new(Providers { clerk, clerk_api, issuers }), sessions, accounts, store }
    }

    pub fn clerk(&self) -> Result<Provider<'_>> {
        self.providers.clerk.as_ref().map(Provider::Clerk).ok_or(ExchangeError::NotConfigured)
    }

    /// The configured provider called `name`.
    pub fn named(&self, name: &str) -> Result<Provider<'_>> {
        let issuer = self.providers.issuers.iter().find(|i| i.name == name);
        issuer.map(Provider::Issuer).ok_or(ExchangeError::NotConfigured)
    }

    /// The provider whose tokens carry `iss` (RFC 8693 picks the verifier by the issuer).
    pub fn by_issuer(&self, iss: &str) -> Result<Provider<'_>> {
        if let Some(clerk) = self.providers.clerk.as_ref().filter(|c| c.issuer() == iss) {
            return Ok(Provider::Clerk(clerk));
        }
        let issuer = self.providers.issuers.iter().find(|i| i.issuer() == iss);
        issuer.map(Provider::Issuer).ok_or(ExchangeError::UntrustedIssuer)
    }

    /// A provider's token for a local pair. A refused token is audited with its reason.
    pub async fn exchange(&self, provider: Provider<'_>, token: &str, client: &str) -> Result<TokenPair> {
        match provider.verify(token).await {
            Ok(identity) => self.sign_in(&identity, client).await,
            Err(e) => {
                let name = provider.name();
                metrics::counter!("tokensmith_exchanges_total", "provider" => name, "result" => "refused").increment(1);
                let detail = e.to_string();
                let event =
                    AuditEvent::new(AuditKind::ExchangeFailed { provider: name }).client(client).detail(&detail);
                self.store.record_audit_event(&event, unix_now()).await?;
                Err(e.into())
            }
        }
    }

    /// The local user linked to a verified identity (created at its first exchange), signed in.
    async fn sign_in(&self, identity: &ExternalIdentity, client: &str) -> Result<TokenPair> {
        let now = unix_now();
        let mut user = self.linked_user(identity, now, client).await?;
        let provider = identity.provider;
        // Roles follow the provider at every exchange: one revoked upstream is gone at the next,
        // unless the token is older than what revoked it.
        if let Some(roles) = identity.profile.roles {
            let (subject, as_of) = (identity.subject.as_str(), identity.profile.roles_as_of_ms);
            self.accounts.apply_token_roles(&mut user, subject, roles, as_of, provider, client).await?;
        }
        let metric = if user.is_active { "ok" } else { "inactive" };
        metrics::counter!("tokensmith_exchanges_total", "provider" => provider, "result" => metric).increment(1);
        if !user.is_active {
            let event = AuditEvent::new(AuditKind::ExchangeFailed { provider })
                .user(&user)
                .client(client)
                .detail("user is inactive");
            self.store.record_audit_event(&event, now).await?;
            return Err(ExchangeError::Inactive);
        }
        let event = AuditEvent::new(AuditKind::ExchangeOk { provider }).user(&user).client(client);
        let session_id = Some(identity.session_id.as_str()).filter(|sid| !sid.is_empty());
        let origin = SessionOrigin {
            provider,
            client_addr: Some(client),
            exchanged: true,
            external_session_id: session_id,
            organization: identity.organization.as_ref(),
            ..SessionOrigin::default()
        };
        Ok(self.sessions.start_session(&user, origin, &event).await?)
    }

    /// The user linked to the identity; at its first exchange, the existing user its profile
    /// names (Clerk's `external_id`), else one created at `now`.
    async fn linked_user(&self, identity: &ExternalIdentity, now: i64, client: &str) -> Result<User> {
        let (provider, subject) = (identity.provider, identity.subject.as_str());
        if let Some(user) = self.accounts.linked_user(provider, subject).await? {
            return Ok(user);
        }
        let (profile, may_sign_in) = self.first_profile(identity).await?;
        if let Some(local_id) = profile.local_user_id {
            match self.accounts.link_named_user(provider, subject, local_id, &profile, may_sign_in, client).await? {
                NamedLink::Linked(user) | NamedLink::AlreadyLinked(user) => return Ok(user),
                NamedLink::Refused => {
                    metrics::counter!("tokensmith_exchanges_total", "provider" => provider, "result" => "refused")
                        .increment(1);
                    let detail =
                        format!("{subject}: its external_id names a local user linked to another {provider} user");
                    let event = AuditEvent::new(AuditKind::ExchangeFailed { provider }).client(client).detail(&detail);
                    self.store.record_audit_event(&event, now).await?;
                    return Err(ExchangeError::LinkedElsewhere);
                }
                NamedLink::NoSuchUser => {}
            }
        }
        Ok(self.accounts.link_new_user(provider, subject, &profile, may_sign_in, now, client).await?)
    }

    /// The profile of a user signing in for the first time: Clerk's Backend API has the username,
    /// verified email and `external_id` (the local user it is) that default session tokens lack.
    /// Without a secret key the token's own claims do, and a webhook or sync fills in the rest
    /// later. With one, a Backend API that cannot be asked refuses the exchange for now: its
    /// `external_id` may name the person's existing account, and a link once made stays.
    /// Roles come from whichever of the token and the Backend API's user is newer, the user
    /// object on a tie (its `updated_at` is the change itself, the token's `iat` only a second).
    async fn first_profile(&self, identity: &ExternalIdentity) -> Result<(ExternalProfile, bool)> {
        let from_token = (identity.profile.clone(), true);
        let Some(api) = self.providers.clerk_api.as_ref().filter(|_| identity.provider == clerk::PROVIDER) else {
            return Ok(from_token);
        };
        let roles = self.providers.clerk.as_ref().and_then(ClerkVerifier::roles);
        match api.user(&identity.subject).await {
            Ok(Some(user)) => {
                let mut profile = user.profile(roles);
                let token = &identity.profile;
                if token.roles.is_some() && (profile.roles.is_none() || token.roles_as_of_ms > profile.roles_as_of_ms) {
                    (profile.roles, profile.roles_as_of_ms) = (token.roles, token.roles_as_of_ms);
                }
                Ok((profile, user.may_sign_in()))
            }
            Ok(None) => Ok(from_token),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the new user's record from Clerk: first exchange refused for now");
                metrics::counter!("tokensmith_exchanges_total", "provider" => identity.provider, "result" => "unavailable")
                    .increment(1);
                Err(ExchangeError::ProfileUnavailable)
            }
        }
    }
}
