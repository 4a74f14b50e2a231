//! Wall-clock time as the database and the tokens keep it: whole Unix seconds (milliseconds
//! where rotation needs them), and durations as seconds. A leaf: it uses nothing of the crate.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

pub fn unix_now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// A duration in whole seconds, saturating far below `i64::MAX` so that adding it to a time
/// cannot overflow.
pub fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4)
}

/// `unix` as RFC 3339 (UTC, whole seconds), for people reading the CLI.
pub fn rfc3339(unix: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_secs(unix.max(0) as u64);
    humantime::format_rfc3339_seconds(at).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_durations_saturate_without_overflowing_a_sum() {
        assert_eq!(secs(Duration::from_secs(90)), 90);
        assert!(unix_now().checked_add(secs(Duration::MAX)).is_some());
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    }
}
