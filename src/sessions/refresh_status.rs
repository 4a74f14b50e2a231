//! What a presented refresh token is worth, from its session's row: the one rule that refresh,
//! verify and blacklist all apply. The row remembers the current token and the one it replaced;
//! any other token of the session was rotated away before those.

use std::time::Duration;

use crate::store::RefreshSessionState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RefreshStatus {
    Live,
    /// The token just replaced, within the grace window: refused, but the session lives on.
    RecentlyRotated,
    /// Rotated away, past the grace window or before the last rotation, and presented again:
    /// stolen, the whole session dies.
    Reused,
    Revoked,
}

impl RefreshStatus {
    pub(super) fn of(state: &RefreshSessionState, jti: &str, now_ms: i64, grace: Duration) -> Self {
        let is = |held: &Option<String>| held.as_deref() == Some(jti);
        if state.revoked_at.is_some() {
            Self::Revoked
        } else if is(&state.current_jti) {
            Self::Live
        } else if is(&state.previous_jti)
            && state.rotated_at_ms.is_some_and(|at| now_ms - at <= grace.as_millis() as i64)
        {
            Self::RecentlyRotated
        } else {
            Self::Reused
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(
        current: &str,
        previous: Option<&str>,
        rotated_at_ms: Option<i64>,
        revoked_at: Option<i64>,
    ) -> RefreshSessionState {
        RefreshSessionState {
            family_id: "f".into(),
            user_id: 1,
            current_jti: Some(current.into()),
            previous_jti: previous.map(Into::into),
            rotated_at_ms,
            revoked_at,
            expires_at: i64::MAX,
            user_active: true,
            org_id: None,
            org_role: None,
            org_slug: None,
        }
    }

    const GRACE: Duration = Duration::from_secs(10);

    #[test]
    fn the_current_token_of_a_live_session_is_live() {
        assert_eq!(
            RefreshStatus::of(&state("b", Some("a"), Some(1), None), "b", 1_000_000, GRACE),
            RefreshStatus::Live
        );
    }

    #[test]
    fn grace_covers_the_replaced_token_inclusively_in_milliseconds() {
        let rotated = state("b", Some("a"), Some(1_000_000), None);
        assert_eq!(RefreshStatus::of(&rotated, "a", 1_000_000 + 10_000, GRACE), RefreshStatus::RecentlyRotated);
        assert_eq!(RefreshStatus::of(&rotated, "a", 1_000_000 + 10_001, GRACE), RefreshStatus::Reused);
        assert_eq!(RefreshStatus::of(&rotated, "a", 1_000_001, Duration::ZERO), RefreshStatus::Reused);
    }

    #[test]
    fn a_token_older_than_the_replaced_one_is_reuse_even_within_the_grace() {
        let rotated = state("c", Some("b"), Some(1_000_000), None);
        assert_eq!(RefreshStatus::of(&rotated, "a", 1_000_001, GRACE), RefreshStatus::Reused);
    }

    #[test]
    fn revocation_wins_over_everything() {
        for (s, jti) in [(state("b", None, None, Some(1)), "b"), (state("b", Some("a"), Some(1), Some(1)), "a")] {
            assert_eq!(RefreshStatus::of(&s, jti, 2, GRACE), RefreshStatus::Revoked);
        }
    }
}
