//! Django's username rule, the one rule for every way a username is made: at most 150
//! letters, digits and `@ . + - _`.

use std::fmt;

pub const MAX_CHARS: usize = 150;

fn allowed(c: char) -> bool {
    c.is_alphanumeric() || "@.+-_".contains(c)
}

/// A username that satisfies the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("use at most 150 letters, digits and @ . + - _ (got {0:?})")]
pub struct InvalidUsername(pub String);

impl Username {
    pub fn parse(raw: &str) -> Result<Self, InvalidUsername> {
        let valid = !raw.is_empty() && raw.chars().count() <= MAX_CHARS && raw.chars().all(allowed);
        if valid { Ok(Self(raw.to_owned())) } else { Err(InvalidUsername(raw.to_owned())) }
    }

    /// `raw` with every character the rule refuses dropped, cut to the maximum length; empty
    /// when nothing is left. For usernames made from what a provider says (names, emails, ids).
    pub fn sanitize(raw: &str) -> String {
        raw.chars().filter(|c| allowed(*c)).take(MAX_CHARS).collect()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_is_djangos() {
        for good in ["alice", "a.b+c-d_e@f", "Ünïcödé", &"x".repeat(150)] {
            assert!(Username::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "with space", "semi;colon", &"x".repeat(151)] {
            assert!(Username::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sanitized_names_satisfy_the_rule() {
        assert_eq!(Username::sanitize("bad name!"), "badname");
        assert_eq!(Username::sanitize(&"y".repeat(400)).len(), 150);
        assert!(Username::parse(&Username::sanitize("ada lovelace <ada@x.io>")).is_ok());
    }
}
