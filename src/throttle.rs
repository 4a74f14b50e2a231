//! Throttling password guesses, for logins and password changes alike: per username from one
//! address (`LOGIN_FAILURE_LIMIT`) and per address across usernames
//! (`LOGIN_ADDRESS_FAILURE_LIMIT`), within `LOGIN_FAILURE_WINDOW`. An attempt is reserved before
//! its password is hashed, so a burst sent at once is counted whole: at most the limit's number
//! of attempts ever reach argon2 in a window, on any number of replicas. Registrations are
//! limited per address the same way (`REGISTRATION_LIMIT`).

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

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
    /// The address it was counted under.
    key: String,
}

#[derive(Clone)]
pub struct LoginThrottle {
    store: Store,
    user_limit: u32,
    address_limit: u32,
    window: Duration,
    audited: Arc<RecentlyAudited>,
}

impl LoginThrottle {
    pub fn new(config: &Config, store: Store) -> Self {
        Self {
            store,
            user_limit: config.login_failure_limit,
            address_limit: config.login_address_failure_limit,
            window: config.login_failure_window,
            audited: Arc::new(RecentlyAudited::default()),
        }
    }

    /// Reserves a guess of `username`'s password from `client`, or refuses it (429) when this
    /// username failed `LOGIN_FAILURE_LIMIT` times from this address, or this address failed
    /// `LOGIN_ADDRESS_FAILURE_LIMIT` times, within the window (attempts in flight included).
    pub async fn reserve(&self, username: &str, client: &str) -> Result<Attempt, ThrottleError> {
        let now = unix_now();
        let since = now - secs(self.window);
        let limits = (i64::from(self.user_limit), i64::from(self.address_limit));
        let key = throttle_key(client);
        // A plain read first: once throttled, a flood from one address costs no write and no
        // lock, so it cannot starve the database for everyone else.
        let mut counts = self.store.login_failures(username, &key, since).await?;
        if counts.0 < limits.0 && counts.1 < limits.1 {
            if let Some(id) = self.store.reserve_login_attempt(username, &key, now, since, limits).await? {
                return Ok(Attempt { id, key });
            }
            // Attempts in flight took the last places meanwhile: count them.
            counts = self.store.login_failures(username, &key, since).await?;
        }
        let retry_after = self.retry_after(username, &key, counts, now).await?;
        metrics::counter!("tokensmith_logins_total", "result" => "throttled").increment(1);
        if self.audited.first_in_a_while(username, &key, now) {
            let detail = if counts.0 >= limits.0 { "username from this address" } else { "this address" };
            let event = AuditEvent::new(AuditKind::LoginThrottled).username(username).client(client).detail(detail);
            self.store.record_audit_event(&event, now).await?;
        }
        Err(ThrottleError::Throttled { retry_after })
    }

    /// The right password: the attempt, and the username's earlier failures from this address,
    /// are forgotten.
    pub async fn succeeded(&self, attempt: Attempt, username: &str) -> Result<(), StoreError> {
        self.store.release_login_attempt(attempt.id, username, &attempt.key).await
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

/// `REGISTRATION_LIMIT` counts the registrations of the last hour.
pub const REGISTRATION_WINDOW_SECS: i64 = 3600;

/// A registration allowed through: it counts unless given back (`RegistrationThrottle::release`).
#[must_use]
pub struct RegistrationSlot(i64);

/// Accepted registrations per client address per hour (`REGISTRATION_LIMIT`), counted in the
/// database as failed logins are and reserved the same way before the password is hashed: of any
/// number of registrations sent at once, on any number of replicas, at most the limit pass.
#[derive(Clone)]
pub struct RegistrationThrottle {
    store: Store,
    limit: u32,
}

impl RegistrationThrottle {
    pub fn new(config: &Config, store: Store) -> Self {
        Self { store, limit: config.registration_limit }
    }

    /// Reserves a registration from `client`, or refuses it (429) when `REGISTRATION_LIMIT` of
    /// them (in flight included) happened from this address within the hour.
    pub async fn reserve(&self, client: &str) -> Result<RegistrationSlot, ThrottleError> {
        let now = unix_now();
        let since = now - REGISTRATION_WINDOW_SECS;
        let limit = i64::from(self.limit);
        let key = throttle_key(client);
        // A plain read first, as for logins: once throttled, a flood costs no write and no lock.
        let mut count = self.store.registrations_since(&key, since).await?;
        if count < limit {
            if let Some(id) = self.store.reserve_registration(&key, now, since, limit).await? {
                return Ok(RegistrationSlot(id));
            }
            count = self.store.registrations_since(&key, since).await?;
        }
        let lifts_with = self.store.nth_registration(&key, since, (count - limit).max(0)).await?;
        let retry_after = (lifts_with.unwrap_or(now) + REGISTRATION_WINDOW_SECS - now).max(1);
        metrics::counter!("tokensmith_registrations_total", "result" => "throttled").increment(1);
        Err(ThrottleError::Throttled { retry_after: retry_after as u64 })
    }

    /// A registration refused after its reservation (a username taken meanwhile): its place
    /// goes back, since no user was created.
    pub async fn release(&self, slot: RegistrationSlot) -> Result<(), StoreError> {
        self.store.release_registration(slot.0).await
    }
}

/// The address a client's guesses are counted under: itself, or for IPv6 its /64, which one
/// client typically owns whole (counting each address would give it 2^64 budgets).
fn throttle_key(client: &str) -> String {
    match client.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let [a, b, c, d, ..] = v6.segments();
            format!("{a:x}:{b:x}:{c:x}:{d:x}::/64")
        }
        _ => client.to_owned(),
    }
}

/// A throttled flood is audited once a minute per (username, address) in each process, not
/// once a request: the trail records that it happened, not every repetition.
#[derive(Default)]
struct RecentlyAudited(Mutex<HashMap<(String, String), i64>>);

/// How long a throttled (username, address) stays quiet in the audit trail.
const THROTTLED_AUDIT_EVERY_SECS: i64 = 60;
/// Entries kept before the oldest are forgotten: memory stays bounded under any flood.
const THROTTLED_AUDIT_MEMORY: usize = 10_000;

impl RecentlyAudited {
    fn first_in_a_while(&self, username: &str, key: &str, now: i64) -> bool {
        let Ok(mut seen) = self.0.lock() else { return true };
        if seen.len() >= THROTTLED_AUDIT_MEMORY {
            seen.retain(|_, at| now - *at < THROTTLED_AUDIT_EVERY_SECS);
            if seen.len() >= THROTTLED_AUDIT_MEMORY {
                seen.clear();
            }
        }
        let last = seen.entry((username.to_owned(), key.to_owned())).or_insert(i64::MIN);
        if now.saturating_sub(*last) < THROTTLED_AUDIT_EVERY_SECS {
            return false;
        }
        *last = now;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        assert_eq!(throttle_key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(throttle_key("2001:db8:1:2:ffff:0:0:9"), throttle_key("2001:db8:1:2::1"));
        assert_eq!(throttle_key("203.0.113.7"), "203.0.113.7");
        assert_eq!(throttle_key("unknown"), "unknown");
    }

    #[test]
    fn a_throttled_flood_is_audited_once_a_minute() {
        let audited = RecentlyAudited::default();
        assert!(audited.first_in_a_while("alice", "203.0.113.7", 1000));
        assert!(!audited.first_in_a_while("alice", "203.0.113.7", 1059));
        assert!(audited.first_in_a_while("bob", "203.0.113.7", 1059));
        assert!(audited.first_in_a_while("alice", "203.0.113.7", 1060));
    }
}
