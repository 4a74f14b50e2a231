//! What a presented refresh token is worth, from its record: the one rule that refresh,
//! verify and blacklist all apply.

use std::time::Duration;

use crate::store::RefreshTokenState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RefreshStatus {
    Live,
    /// Rotated away within the grace window: refused, but the session lives on.
    RecentlyRotated,
    /// Rotated away long ago and presented again: stolen, the whole family dies.
    Reused,
    Revoked,
}

impl RefreshStatus {
    pub(super) fn of(state: &RefreshTokenState, now_ms: i64, grace: Duration) -> Self {
        match state.used_at_ms {
            _ if state.revoked_at.is_some() || state.family_revoked_at.is_some() => Self::Revoked,
            Some(used) if now_ms - used <= grace.as_millis() as i64 => Self::RecentlyRotated,
            Some(_) => Self::Reused,
            None => Self::Live,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(used_at_ms: Option<i64>, revoked_at: Option<i64>, family_revoked_at: Option<i64>) -> RefreshTokenState {
        RefreshTokenState {
            jti: "j".into(),
            family_id: "f".into(),
            user_id: 1,
            used_at_ms,
            revoked_at,
            family_revoked_at,
            family_expires_at: i64::MAX,
            user_active: true,
            org_id: None,
            org_role: None,
            org_slug: None,
        }
    }

    const GRACE: Duration = Duration::from_secs(10);

    #[test]
    fn unused_and_unrevoked_is_live() {
        assert_eq!(RefreshStatus::of(&state(None, None, None), 1_000_000, GRACE), RefreshStatus::Live);
    }

    #[test]
    fn grace_is_inclusive_and_measured_in_milliseconds() {
        let used = state(Some(1_000_000), None, None);
        assert_eq!(RefreshStatus::of(&used, 1_000_000 + 10_000, GRACE), RefreshStatus::RecentlyRotated);
        assert_eq!(RefreshStatus::of(&used, 1_000_000 + 10_001, GRACE), RefreshStatus::Reused);
        assert_eq!(RefreshStatus::of(&used, 1_000_001, Duration::ZERO), RefreshStatus::Reused);
    }

    #[test]
    fn revocation_wins_over_everything() {
        for s in [state(None, Some(1), None), state(None, None, Some(1)), state(Some(1), None, Some(1))] {
            assert_eq!(RefreshStatus::of(&s, 2, GRACE), RefreshStatus::Revoked);
        }
    }
}
