//! Throttling password guesses, for logins and password changes alike: per username from one
//! address (`LOGIN_FAILURE_LIMIT`) and per address across usernames
//! (`LOGIN_ADDRESS_FAILURE_LIMIT`), within `LOGIN_FAILURE_WINDOW`. An attempt is reserved before
//! its password is hashed, so a burst sent at once is counted whole: at most the limit's number
//! of attempts ever reach argon2 in a window, on any number of replicas.

use std::time::Duration;

use crate::{
    clock::{secs, unix_now},
    config::Config,
    domain::{AuditEvent, AuditKind},
    store::{Store, StoreError},
};

#[derive(Debug, thiserror::Error)]
pub enum ThrottleError {
    /// The client may try again in this many seconds.
    #[error("throttled for {retry_after} s")]
    Throttled { retry_after: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A guess allowed through: until released by a success, it counts as a failure.
#[must_use]
pub struct Attempt {
    id: i64,
}

#[derive(Clone)]
pub struct LoginThrottle {
    store: Store,
    user_limit: u32,
    address_limit: u32,
    window: Duration,
}

impl LoginThrottle {
    pub fn new(config: &Config, store: Store) -> Self {
        Self {
            store,
            user_limit: config.login_failure_limit,
            address_limit: config.login_address_failure_limit,
            window: config.login_failure_window,
        }
    }

    /// Reserves a guess of `username`'s password from `client`, or refuses it (429) when this
    /// username failed `LOGIN_FAILURE_LIMIT` times from this address, or this address failed
    /// `LOGIN_ADDRESS_FAILURE_LIMIT` times, within the window (attempts in flight included).
    pub async fn reserve(&self, username: &str, client: &str) -> Result<Attempt, ThrottleError> {
        let now = unix_now();
        let window = secs(self.window);
        let since = now - window;
        let limits = (i64::from(self.user_limit), i64::from(self.address_limit));
        if let Some(id) = self.store.reserve_login_attempt(username, client, now, since, limits).await? {
            return Ok(Attempt { id });
        }
        let counts = self.store.login_failures(username, client, since).await?;
        let retry_after = self.retry_after(username, client, counts, now).await?;
        metrics::counter!("tokensmith_logins_total", "result" => "throttled").increment(1);
        let detail = if counts.0 >= limits.0 { "username from this address" } else { "this address" };
        let event = AuditEvent::new(AuditKind::LoginThrottled).username(username).client(client).detail(detail);
        self.store.record_audit_event(&event, now).await?;
        Err(ThrottleError::Throttled { retry_after })
    }

    /// The right password: the attempt, and the username's earlier failures from this address,
    /// are forgotten.
    pub async fn succeeded(&self, attempt: Attempt, username: &str, client: &str) -> Result<(), StoreError> {
        self.store.release_login_attempt(attempt.id, username, client).await
    }

    /// Seconds until enough of the counted failures leave the window for the next guess.
    async fn retry_after(
        &self,
        username: &str,
        client: &str,
        (for_user, from_address): (i64, i64),
        now: i64,
    ) -> Result<u64, StoreError> {
        let window = secs(self.window);
        let since = now - window;
        let scopes = [
            (Some(username), for_user, i64::from(self.user_limit)),
            (None, from_address, i64::from(self.address_limit)),
        ];
        let mut wait = 1;
        for (scope, failures, limit) in scopes {
            if failures >= limit {
                let lifts_with = self.store.nth_login_failure(scope, client, since, failures - limit).await?;
                wait = wait.max(lifts_with.unwrap_or(now) + window - now);
            }
        }
        Ok(wait.max(1) as u64)
    }
}
