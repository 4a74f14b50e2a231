//! Password reset by email: a request queues a mail with a single-use link, off the request
//! path; the link's token sets a new password once. A token is random (256 bits, URL-safe),
//! stored only as its SHA-256, expires after `PASSWORD_RESET_TIMEOUT`, and dies when the
//! password changes (the row keeps a fingerprint of the password hash it was made for).
//!
//! No enumeration: every request does the same work whatever the address (count it, queue
//! it); the worker alone looks the address up. Throttling: at most `ADDRESS_LIMIT` requests per
//! client address and `EMAIL_LIMIT` per email per `THROTTLE_WINDOW`, counted in the database so
//! replicas share them; past either the answer is still 200 `{}` (a 429 would tell which emails
//! someone else is asking for) but no mail goes out.

use std::{sync::Arc, time::Duration};

use aws_lc_rs::digest::{SHA256, digest};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{Semaphore, mpsc};

use super::{AccountError, Accounts};
use crate::{
    clock::unix_now,
    config::MailConfig,
    domain::{AuditKind, User, is_valid_email},
    mail::{Mail, Mailer},
    store::{ResetWrite, Store},
};

/// Reset requests per client address per window.
pub const ADDRESS_LIMIT: i64 = 20;
/// Reset requests per email per window: a mailbox is not flooded.
pub const EMAIL_LIMIT: i64 = 5;
pub const THROTTLE_WINDOW: Duration = Duration::from_secs(3600);
/// Requests waiting for the mail worker; past it a request sends no mail (logged, counted).
const QUEUE_LENGTH: usize = 1024;
/// Mails being sent at once.
const SENDERS: usize = 4;
/// Longer tokens are refused before they are hashed.
const TOKEN_MAX_CHARS: usize = 128;

#[derive(Debug, thiserror::Error)]
pub enum ResetError {
    /// `SMTP_URL` is unset: password reset is off.
    #[error("password reset is not enabled")]
    Disabled,
    /// Unknown, used, expired or superseded (the password changed since).
    #[error("invalid or expired password reset token")]
    InvalidToken,
    /// The new password's refusal (the policy) or a failure.
    #[error(transparent)]
    Account(#[from] AccountError),
}

/// A queued request: the mail worker looks the email up.
struct Job {
    email: String,
    client: String,
}

#[derive(Clone)]
pub struct PasswordResets {
    inner: Option<Arc<Enabled>>,
}

struct Enabled {
    accounts: Accounts,
    queue: mpsc::Sender<Job>,
}

impl PasswordResets {
    /// Off without `MailConfig`. On, starts the mail worker (in the current Tokio runtime).
    pub fn new(config: Option<&MailConfig>, accounts: Accounts) -> Result<Self, crate::mail::MailError> {
        let Some(config) = config else { return Ok(Self { inner: None }) };
        let (queue, jobs) = mpsc::channel(QUEUE_LENGTH);
        let worker = Worker {
            store: accounts.store.clone(),
            mailer: Mailer::new(config)?,
            reset_url: config.reset_url.clone(),
            timeout: config.reset_timeout,
        };
        tokio::spawn(worker.run(jobs));
        Ok(Self { inner: Some(Arc::new(Enabled { accounts, queue })) })
    }

    fn enabled(&self) -> Result<&Enabled, ResetError> {
        self.inner.as_deref().ok_or(ResetError::Disabled)
    }

    /// Counts the request and queues it: the same steps for every address, known or not.
    pub async fn request(&self, email: &str, client: &str) -> Result<(), ResetError> {
        let enabled = self.enabled()?;
        let email = email.trim().to_lowercase();
        if !is_valid_email(&email) {
            return Err(AccountError::InvalidEmail(email).into());
        }
        let now = unix_now();
        let since = now - THROTTLE_WINDOW.as_secs() as i64;
        let store = &enabled.accounts.store;
        let admitted = store
            .record_reset_request(client, &email, now, since, (ADDRESS_LIMIT, EMAIL_LIMIT))
            .await
            .map_err(AccountError::from)?;
        if !admitted {
            tracing::info!(client, "password reset request throttled; no mail");
            metrics::counter!("tokensmith_password_reset_throttled_total").increment(1);
            return Ok(());
        }
        if enabled.queue.try_send(Job { email, client: client.to_owned() }).is_err() {
            tracing::warn!("password reset queue full; no mail");
            metrics::counter!("tokensmith_mail_failures_total").increment(1);
        }
        Ok(())
    }

    /// Sets `new_password` for the token's user, ends every session and uses the token up.
    pub async fn confirm(&self, token: &str, new_password: SecretString, client: &str) -> Result<(), ResetError> {
        let enabled = self.enabled()?;
        let accounts = &enabled.accounts;
        if token.is_empty() || token.len() > TOKEN_MAX_CHARS {
            return Err(ResetError::InvalidToken);
        }
        let row = accounts.store.password_reset(&sha256_hex(token.as_bytes())).await.map_err(AccountError::from)?;
        let now = unix_now();
        let Some(row) = row.filter(|r| r.used_at.is_none() && r.expires_at > now && r.user.is_active) else {
            return Err(ResetError::InvalidToken);
        };
        let user = &row.user;
        let Some(old_hash) = user.password_hash.as_deref().filter(|h| fingerprint(h) == row.password_fingerprint)
        else {
            return Err(ResetError::InvalidToken);
        };
        accounts.check_new_password(new_password.expose_secret(), &super::owner_of(user))?;
        let new_hash = accounts.passwords.hash(new_password).await.map_err(AccountError::from)?;
        let write = ResetWrite { reset_id: row.reset_id, user_id: user.id, old_hash, new_hash: &new_hash, now };
        let event = super::Actor::client(client).event(AuditKind::PasswordResetCompleted).user(user);
        if !accounts.store.complete_password_reset(&write, &event).await.map_err(AccountError::from)? {
            return Err(ResetError::InvalidToken);
        }
        Ok(())
    }
}

/// Looks queued requests up and mails each matching user a link.
struct Worker {
    store: Store,
    mailer: Mailer,
    reset_url: String,
    timeout: Duration,
}

impl Worker {
    async fn run(self, mut jobs: mpsc::Receiver<Job>) {
        let this = Arc::new(self);
        let senders = Arc::new(Semaphore::new(SENDERS));
        while let Some(job) = jobs.recv().await {
            let Ok(permit) = senders.clone().acquire_owned().await else { return };
            let this = this.clone();
            tokio::spawn(async move {
                this.handle(job).await;
                drop(permit);
            });
        }
    }

    /// Every active user with a password and this email gets a mail of their own (emails need
    /// not be unique): each link resets that user's password only.
    async fn handle(&self, job: Job) {
        let users = match self.store.reset_candidates(&job.email).await {
            Ok(users) => users,
            Err(e) => return mail_failed("looking up the address", &e),
        };
        for user in users {
            if let Err(e) = self.mail_link(&user, &job.client).await {
                mail_failed("sending the reset mail", &e);
            } else {
                metrics::counter!("tokensmith_mails_sent_total").increment(1);
            }
        }
    }

    async fn mail_link(&self, user: &User, client: &str) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let Some(hash) = user.password_hash.as_deref() else { return Ok(()) };
        let token = new_token()?;
        let now = unix_now();
        let expires_at = now.saturating_add(self.timeout.as_secs() as i64);
        self.store
            .insert_password_reset(&sha256_hex(token.as_bytes()), user.id, &fingerprint(hash), now, expires_at)
            .await?;
        let event = super::Actor::client(client).event(AuditKind::PasswordResetRequested).user(user);
        self.store.record_audit_event(&event, now).await?;
        let link = self.reset_url.replace("{token}", &token);
        let body = format!(
            "Someone asked to reset the password of the account {username}.\n\n\
             To choose a new password, open this link within {within}:\n\n{link}\n\n\
             If it was not you, ignore this mail: your password stays as it is.\n",
            username = user.username,
            within = humantime::format_duration(self.timeout),
        );
        self.mailer.send(Mail { to: &user.email, subject: "Password reset", body }).await?;
        Ok(())
    }
}

/// Logged without the address or token; counted in `/metrics`.
fn mail_failed(step: &str, error: &dyn std::fmt::Display) {
    metrics::counter!("tokensmith_mail_failures_total").increment(1);
    tracing::error!(step, error = %error, "password reset mail failed");
}

/// 256 random bits, URL-safe.
fn new_token() -> Result<String, aws_lc_rs::error::Unspecified> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

fn sha256_hex(bytes: &[u8]) -> String {
    digest(&SHA256, bytes).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// What a token remembers of the password it was made for.
fn fingerprint(password_hash: &str) -> String {
    sha256_hex(password_hash.as_bytes())
}
