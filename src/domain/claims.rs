//! What a user's tokens may say besides the id: the groups a user belongs to, and the custom
//! claims an operator gives a user. Both are bounded here, once, because they end up in every
//! access token the user gets (and tokens travel in headers).

use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value};

/// Django's `Group.name`: at most 150 characters.
pub const GROUP_NAME_MAX_CHARS: usize = 150;
/// Groups one user may belong to: every access token lists them all with `TOKEN_CLAIMS=groups`.
pub const MAX_GROUPS_PER_USER: i64 = 100;
/// Custom claims of one user, serialised: tokens travel in headers, which servers bound.
pub const CUSTOM_CLAIMS_MAX_BYTES: usize = 4096;
const CLAIM_NAME_MAX_CHARS: usize = 64;

/// A group name: not blank, at most 150 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a group name is 1 to 150 characters, not blank, without control characters (got {0:?})")]
pub struct InvalidGroupName(pub String);

impl GroupName {
    pub fn parse(raw: &str) -> Result<Self, InvalidGroupName> {
        let valid =
            !raw.trim().is_empty() && raw.chars().count() <= GROUP_NAME_MAX_CHARS && !raw.chars().any(char::is_control);
        if valid { Ok(Self(raw.to_owned())) } else { Err(InvalidGroupName(raw.to_owned())) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for GroupName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A user's custom claims: a JSON object merged into each of the user's access tokens.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(transparent)]
pub struct CustomClaims(Map<String, Value>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidClaims {
    #[error("custom claims must be a JSON object")]
    NotAnObject,
    #[error("custom claims take at most {CUSTOM_CLAIMS_MAX_BYTES} bytes of JSON")]
    TooLarge,
    #[error("a claim name is 1 to 64 characters without control characters (got {0:?})")]
    BadName(String),
    #[error("{0:?} is a claim tokensmith writes itself")]
    Reserved(String),
}

impl CustomClaims {
    /// Claims an operator gives: a JSON object within the bounds, none of whose names
    /// `reserved` refuses.
    pub fn parse(json: &str, reserved: impl Fn(&str) -> bool) -> Result<Self, InvalidClaims> {
        if json.len() > CUSTOM_CLAIMS_MAX_BYTES {
            return Err(InvalidClaims::TooLarge);
        }
        let Ok(Value::Object(map)) = serde_json::from_str::<Value>(json) else {
            return Err(InvalidClaims::NotAnObject);
        };
        for name in map.keys() {
            if name.is_empty() || name.chars().count() > CLAIM_NAME_MAX_CHARS || name.chars().any(char::is_control) {
                return Err(InvalidClaims::BadName(name.clone()));
            }
            if reserved(name) {
                return Err(InvalidClaims::Reserved(name.clone()));
            }
        }
        Ok(Self(map))
    }

    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The stored form.
    pub fn to_json(&self) -> String {
        Value::Object(self.0.clone()).to_string()
    }
}

/// The stored column: written only by `parse`d claims, so anything else reads as none.
impl From<String> for CustomClaims {
    fn from(stored: String) -> Self {
        match serde_json::from_str(&stored) {
            Ok(Value::Object(map)) => Self(map),
            _ => Self::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_are_an_object_of_bounded_unreserved_names() {
        let reserved = |n: &str| n == "exp";
        assert!(CustomClaims::parse(r#"{"tenant":"acme","level":3}"#, reserved).is_ok());
        assert_eq!(CustomClaims::parse("[1]", reserved), Err(InvalidClaims::NotAnObject));
        assert_eq!(CustomClaims::parse("{", reserved), Err(InvalidClaims::NotAnObject));
        assert_eq!(CustomClaims::parse(r#"{"exp":1}"#, reserved), Err(InvalidClaims::Reserved("exp".into())));
        assert_eq!(CustomClaims::parse(r#"{"":1}"#, reserved), Err(InvalidClaims::BadName(String::new())));
        let big = format!(r#"{{"a":"{}"}}"#, "x".repeat(CUSTOM_CLAIMS_MAX_BYTES));
        assert_eq!(CustomClaims::parse(&big, reserved), Err(InvalidClaims::TooLarge));
    }

    #[test]
    fn group_names_follow_djangos_bound() {
        assert!(GroupName::parse("editors").is_ok());
        assert!(GroupName::parse(&"g".repeat(150)).is_ok());
        assert!(GroupName::parse(&"g".repeat(151)).is_err());
        assert!(GroupName::parse("  ").is_err());
        assert!(GroupName::parse("a\nb").is_err());
    }
}
