//! Login throttling: per username from one address, and per address across usernames.

use super::{AuthError, Result, Sessions};
use crate::{
    clock::secs,
    domain::{AuditEvent, AuditKind},
};

impl Sessions {
    /// 429 when this username failed `LOGIN_FAILURE_LIMIT` times from this address, or this
    /// address failed `LOGIN_ADDRESS_FAILURE_LIMIT` times across usernames, within
    /// `LOGIN_FAILURE_WINDOW`. Returns the username's failures so far.
    pub(super) async fn check_login_throttle(&self, username: &str, client: &str, now: i64) -> Result<i64> {
        let window = secs(self.settings.login_failure_window);
        let since = now - window;
        let (for_user, from_address) = self.store.login_failures(username, client, since).await?;
        let limits = [
            (Some(username), for_user, i64::from(self.settings.login_failure_limit)),
            (None, from_address, i64::from(self.settings.login_address_failure_limit)),
        ];
        for (scope, failures, limit) in limits {
            if failures < limit {
                continue;
            }
            // Allowed again once enough of the counted failures have left the window.
            let lifts_with = self.store.nth_login_failure(scope, client, since, failures - limit).await?.unwrap_or(now);
            let retry_after = (lifts_with + window - now).max(1) as u64;
            metrics::counter!("tokensmith_logins_total", "result" => "throttled").increment(1);
            let detail = if scope.is_some() { "username from this address" } else { "this address" };
            let event = AuditEvent::new(AuditKind::LoginThrottled).username(username).client(client).detail(detail);
            self.audit(event).await?;
            return Err(AuthError::Throttled { retry_after });
        }
        Ok(for_user)
    }
}
