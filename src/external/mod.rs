//! Identity providers outside tokensmith (Clerk first): verifying their tokens, fetching their
//! keys, reading their webhooks and their user directories. Nothing here touches the database;
//! `exchange` and `webhooks` link what is verified here to local users through `accounts`.

pub mod clerk;
pub mod clerk_api;
pub mod issuers;
pub mod jwks;
pub mod roles;
pub mod svix;

use std::fmt;

use serde_json::{Map, Value};

use crate::domain::{ExternalProfile, Organization};

/// Why an external token was refused. The message becomes the `detail` of the 401, so it says
/// which check failed, and never echoes the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    Malformed,
    Algorithm,
    UnknownKey,
    BadSignature,
    Expired,
    NotYetValid,
    MissingClaim(&'static str),
    Issuer,
    Audience,
    AuthorizedParty,
    PendingSession,
    NotASessionToken,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed => f.write_str("Token is malformed"),
            Self::Algorithm => f.write_str("Token algorithm is not allowed"),
            Self::UnknownKey => f.write_str("Token is signed by an unknown key"),
            Self::BadSignature => f.write_str("Token signature is invalid"),
            Self::Expired => f.write_str("Token is expired"),
            Self::NotYetValid => f.write_str("Token is not yet valid"),
            Self::MissingClaim(claim) => write!(f, "Token has no valid {claim} claim"),
            Self::Issuer => f.write_str("Token issuer is not trusted"),
            Self::Audience => f.write_str("Token audience is not allowed"),
            Self::AuthorizedParty => f.write_str("Token authorized party (azp) is not allowed"),
            Self::PendingSession => f.write_str("Session is pending"),
            Self::NotASessionToken => f.write_str("Token is not a session token"),
        }
    }
}

/// What verifying an external token can end in, besides success.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ExternalError {
    #[error("{0}")]
    Rejected(Rejection),
    /// No key could be fetched and none is cached: the caller may retry later.
    #[error("the identity provider's keys are unavailable")]
    KeysUnavailable,
}

impl From<Rejection> for ExternalError {
    fn from(r: Rejection) -> Self {
        Self::Rejected(r)
    }
}

/// A verified external session token.
#[derive(Debug, Clone)]
pub struct ExternalIdentity {
    pub provider: &'static str,
    pub subject: String,
    pub session_id: String,
    pub organization: Option<Organization>,
    /// Its `roles`, when known, are re-applied at every exchange.
    pub profile: ExternalProfile,
}

/// The claims of `token` once its signature checks out with `key` under `algorithm`, the
/// header's `alg`, which must be one of `allowed`. Verifying with the one algorithm the token
/// names (not the whole list) lets an issuer allow several key types: jsonwebtoken refuses a
/// list whose algorithms are not all of the key's family. A key of another family than
/// `algorithm` is refused as the wrong algorithm. No claim is checked here (callers check each
/// after, with its own reason), so a forged token learns nothing about which claims would have
/// passed.
pub(crate) fn signed_claims(
    token: &str,
    key: &jsonwebtoken::DecodingKey,
    algorithm: jsonwebtoken::Algorithm,
    allowed: &[jsonwebtoken::Algorithm],
) -> Result<Map<String, Value>, Rejection> {
    use jsonwebtoken::errors::ErrorKind;
    if !allowed.contains(&algorithm) || key.family() != algorithm.family() {
        return Err(Rejection::Algorithm);
    }
    let mut validation = jsonwebtoken::Validation::new(algorithm);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation).map(|data| data.claims).map_err(|e| {
        match e.kind() {
            ErrorKind::InvalidAlgorithm => Rejection::Algorithm,
            ErrorKind::InvalidSignature
            | ErrorKind::InvalidRsaKey(_)
            | ErrorKind::InvalidKeyFormat
            | ErrorKind::InvalidEcdsaKey => Rejection::BadSignature,
            _ => Rejection::Malformed,
        }
    })
}

/// Clock skew allowed on `exp`, `nbf` and `iat`, as Clerk's SDKs allow.
pub(crate) const CLOCK_SKEW_SECS: i64 = 5;

/// What an issuer's token must satisfy besides its provider's own rules, in this order: `exp`
/// (required), `nbf`, `iat` (required when `iat_required`), the exact `iss`, `aud` containing
/// one of `audience` when any is given, and `azp` present and in `authorized_parties` when any
/// is given (a missing azp is a failure, not a bypass).
pub(crate) fn check_registered_claims(
    claims: &Map<String, Value>,
    issuer: &str,
    audience: &[String],
    authorized_parties: &[String],
    iat_required: bool,
    now: i64,
) -> Result<(), Rejection> {
    let exp = number(claims, "exp")?.ok_or(Rejection::MissingClaim("exp"))?;
    if now > exp + CLOCK_SKEW_SECS {
        return Err(Rejection::Expired);
    }
    let in_future = |t: i64| t > now + CLOCK_SKEW_SECS;
    if number(claims, "nbf")?.is_some_and(in_future) {
        return Err(Rejection::NotYetValid);
    }
    match number(claims, "iat")? {
        None if iat_required => return Err(Rejection::MissingClaim("iat")),
        Some(iat) if in_future(iat) => return Err(Rejection::NotYetValid),
        _ => {}
    }
    if string(claims, "iss")? != Some(issuer) {
        return Err(Rejection::Issuer);
    }
    if !audience.is_empty() {
        let presented: Vec<&str> = match claims.get("aud") {
            Some(Value::String(aud)) => vec![aud.as_str()],
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        if !presented.iter().any(|aud| audience.iter().any(|want| want == aud)) {
            return Err(Rejection::Audience);
        }
    }
    if !authorized_parties.is_empty() {
        let azp = string(claims, "azp")?.ok_or(Rejection::AuthorizedParty)?;
        if !authorized_parties.iter().any(|p| p == azp) {
            return Err(Rejection::AuthorizedParty);
        }
    }
    Ok(())
}

/// A claim that, when present, must be a whole number.
pub(crate) fn number(claims: &Map<String, Value>, name: &'static str) -> Result<Option<i64>, Rejection> {
    match claims.get(name) {
        None => Ok(None),
        Some(value) => value.as_i64().map(Some).ok_or(Rejection::MissingClaim(name)),
    }
}

/// A claim that, when present, must be a string, and one free of NUL characters: claims end up
/// in the database, and PostgreSQL cannot store NUL in text.
pub(crate) fn string<'a>(claims: &'a Map<String, Value>, name: &'static str) -> Result<Option<&'a str>, Rejection> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value.as_str().filter(|s| !s.contains('\0')).map(Some).ok_or(Rejection::MissingClaim(name)),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const NOW: i64 = 1_000_000;
    const ISS: &str = "https://id.example.com";

    fn claims(extra: Value) -> Map<String, Value> {
        let mut base = json!({"iss": ISS, "exp": NOW + 60, "iat": NOW});
        base.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        base.as_object().unwrap().clone()
    }

    fn check(extra: Value, audience: &[&str], parties: &[&str], iat_required: bool) -> Result<(), Rejection> {
        let audience: Vec<String> = audience.iter().map(|a| a.to_string()).collect();
        let parties: Vec<String> = parties.iter().map(|p| p.to_string()).collect();
        check_registered_claims(&claims(extra), ISS, &audience, &parties, iat_required, NOW)
    }

    #[test]
    fn exp_is_required_and_allows_the_skew() {
        assert_eq!(check(json!({"exp": null}), &[], &[], false), Err(Rejection::MissingClaim("exp")));
        assert!(check(json!({"exp": NOW - CLOCK_SKEW_SECS}), &[], &[], false).is_ok());
        assert_eq!(check(json!({"exp": NOW - CLOCK_SKEW_SECS - 1}), &[], &[], false), Err(Rejection::Expired));
    }

    #[test]
    fn future_nbf_or_iat_is_not_yet_valid_and_iat_may_be_required() {
        assert_eq!(check(json!({"nbf": NOW + 6}), &[], &[], false), Err(Rejection::NotYetValid));
        assert_eq!(check(json!({"iat": NOW + 6}), &[], &[], false), Err(Rejection::NotYetValid));
        let mut without_iat = claims(json!({}));
        without_iat.remove("iat");
        assert!(check_registered_claims(&without_iat, ISS, &[], &[], false, NOW).is_ok());
        assert_eq!(
            check_registered_claims(&without_iat, ISS, &[], &[], true, NOW),
            Err(Rejection::MissingClaim("iat"))
        );
    }

    #[test]
    fn the_issuer_must_match_exactly() {
        assert_eq!(check(json!({"iss": format!("{ISS}/")}), &[], &[], false), Err(Rejection::Issuer));
        assert_eq!(check(json!({"iss": 7}), &[], &[], false), Err(Rejection::MissingClaim("iss")));
    }

    #[test]
    fn audience_as_string_or_list_must_name_an_allowed_one() {
        assert!(check(json!({"aud": "api"}), &["api"], &[], false).is_ok());
        assert!(check(json!({"aud": ["other", "api"]}), &["api"], &[], false).is_ok());
        assert_eq!(check(json!({"aud": ["other"]}), &["api"], &[], false), Err(Rejection::Audience));
        assert_eq!(check(json!({}), &["api"], &[], false), Err(Rejection::Audience));
        assert!(check(json!({}), &[], &[], false).is_ok(), "no audience configured: none required");
    }

    #[test]
    fn a_missing_azp_is_a_failure_not_a_bypass() {
        let parties = ["https://app.example.com"];
        assert!(check(json!({"azp": "https://app.example.com"}), &[], &parties, false).is_ok());
        assert_eq!(check(json!({}), &[], &parties, false), Err(Rejection::AuthorizedParty));
        assert_eq!(
            check(json!({"azp": "https://evil.example"}), &[], &parties, false),
            Err(Rejection::AuthorizedParty)
        );
    }
}
