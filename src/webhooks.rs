//! Clerk's webhooks (delivered by Svix): verified, deduplicated by delivery id, applied to the
//! linked local users through `accounts`, and recorded. `clerk sync-users` applies Clerk's user
//! records the same way.

use crate::{
    accounts::{AccountError, Accounts, Applied},
    clock::unix_now,
    config::RoleMapping,
    domain::{AuditEvent, AuditKind},
    external::{
        clerk,
        clerk_api::{ClerkEvent, ClerkUser},
        svix::{SignatureError, SvixVerifier},
    },
    store::{Store, StoreError},
};

/// Deliveries are remembered this long (Svix retries for about a day and a half).
pub const DEDUP_RETENTION_SECS: i64 = 7 * 24 * 3600;

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("webhooks are not configured")]
    NotConfigured,
    #[error("webhook signature refused: {0}")]
    Signature(SignatureError),
    /// Signed, but not an event we can read.
    #[error("unreadable webhook payload: {0}")]
    Payload(String),
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One delivery as it arrived: the three Svix headers and the raw body they sign.
pub struct Delivery<'a> {
    pub id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
    pub body: &'a [u8],
}

#[derive(Clone)]
pub struct ClerkWebhooks {
    /// Present when `CLERK_WEBHOOK_SIGNING_SECRET` is set.
    verifier: Option<std::sync::Arc<SvixVerifier>>,
    /// `CLERK_ROLES_CLAIM`: user events carry the metadata the roles are read from.
    roles: Option<std::sync::Arc<RoleMapping>>,
    accounts: Accounts,
    store: Store,
}

impl ClerkWebhooks {
    pub fn new(verifier: Option<SvixVerifier>, roles: Option<RoleMapping>, accounts: Accounts, store: Store) -> Self {
        Self { verifier: verifier.map(std::sync::Arc::new), roles: roles.map(std::sync::Arc::new), accounts, store }
    }

    /// Verifies, deduplicates and applies one delivery. A failure to apply is an error, and
    /// nothing is recorded, so Svix delivers again.
    pub async fn receive(&self, delivery: Delivery<'_>, client: &str) -> Result<(), WebhookError> {
        let verifier = self.verifier.as_deref().ok_or(WebhookError::NotConfigured)?;
        let now = unix_now();
        let checked = verifier.verify(delivery.id, delivery.timestamp, delivery.signature, delivery.body, now);
        if let Err(reason) = checked {
            metrics::counter!("tokensmith_webhooks_total", "provider" => "clerk", "result" => "rejected").increment(1);
            let detail = reason.to_string();
            let event = AuditEvent::new(AuditKind::WebhookRejected).client(client).detail(&detail);
            self.store.record_audit_event(&event, now).await?;
            return Err(WebhookError::Signature(reason));
        }
        let delivery_id = format!("clerk:{}", delivery.id.unwrap_or_default());
        if self.store.webhook_delivery_seen(&delivery_id).await? {
            metrics::counter!("tokensmith_webhooks_total", "provider" => "clerk", "result" => "duplicate").increment(1);
            return Ok(());
        }
        let event = ClerkEvent::parse(delivery.body).map_err(|cause| {
            tracing::warn!(%cause, "signed Clerk webhook with an unreadable payload");
            WebhookError::Payload(cause)
        })?;
        let applied = self.apply(&event, client).await?;
        self.store.record_webhook_delivery(&delivery_id, now).await?;
        metrics::counter!("tokensmith_webhooks_total", "provider" => "clerk", "result" => "applied").increment(1);
        let detail = format!("{}: {applied:?}", event.describe());
        let record = AuditEvent::new(AuditKind::WebhookApplied).client(client).detail(&detail);
        self.store.record_audit_event(&record, now).await?;
        Ok(())
    }

    /// One event. Applying the same event twice changes nothing.
    async fn apply(&self, event: &ClerkEvent, client: &str) -> Result<Applied, AccountError> {
        match event {
            ClerkEvent::UserChanged(user) => {
                apply_clerk_user(&self.accounts, user, self.roles.as_deref(), client).await
            }
            ClerkEvent::UserDeleted { id } => self.accounts.provider_deleted_user(clerk::PROVIDER, id).await,
            ClerkEvent::SessionEnded { id } => self.accounts.provider_ended_session(clerk::PROVIDER, id).await,
            ClerkEvent::MembershipChanged { user_id, org_id } => {
                self.accounts.provider_changed_membership(clerk::PROVIDER, user_id, org_id).await
            }
            ClerkEvent::Ignored(_) => Ok(Applied::Ignored),
        }
    }
}

/// Clerk's current view of one user (a webhook, or `clerk sync-users`). A banned or locked
/// user is deactivated and every local session of it ends; with `roles` configured, its
/// metadata sets `is_staff` / `is_superuser`. `actor` is what the audit trail names.
pub async fn apply_clerk_user(
    accounts: &Accounts,
    user: &ClerkUser,
    roles: Option<&RoleMapping>,
    actor: &str,
) -> Result<Applied, AccountError> {
    // No local record can carry such an id, so it is linked to nobody (`clerk sync-users`; a
    // webhook's event is already ignored when parsed).
    if !user.has_usable_id() {
        return Ok(Applied::Ignored);
    }
    let profile = user.profile(roles);
    accounts.apply_provider_view(clerk::PROVIDER, &user.id, &profile, user.may_sign_in(), actor).await
}
