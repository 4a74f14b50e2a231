//! Identity providers outside tokensmith (Clerk first): verifying their tokens, fetching their
//! keys, reading their webhooks and their user directories. Nothing here touches the database;
//! `auth::exchange` links what is verified here to local users.

pub mod clerk;
pub mod clerk_api;
pub mod issuers;
pub mod jwks;
pub mod svix;

use std::fmt;

use serde_json::{Map, Value};

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

/// The organization active in the external session, carried into local access tokens.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Organization {
    pub id: String,
    pub role: Option<String>,
    pub slug: Option<String>,
}

/// What the provider says about a user; empty strings where it says nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExternalProfile {
    pub username: Option<String>,
    /// Only a verified address.
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    /// The provider's `updated_at` in ms (0 when unknown): older updates never overwrite newer.
    pub updated_at_ms: i64,
}

/// A verified external session token.
#[derive(Debug, Clone)]
pub struct ExternalIdentity {
    pub provider: &'static str,
    pub subject: String,
    pub session_id: String,
    pub organization: Option<Organization>,
    pub profile: ExternalProfile,
    /// (is_staff, is_superuser) from the token's roles, re-applied at every exchange; `None` when
    /// the provider maps no roles.
    pub roles: Option<(bool, bool)>,
}

/// The claims of `token` once its signature checks out with `key` under one of `algorithms`;
/// no claim is checked here (callers check each after, with its own reason), so a forged token
/// learns nothing about which claims would have passed.
pub(crate) fn signed_claims(
    token: &str,
    key: &jsonwebtoken::DecodingKey,
    algorithms: &[jsonwebtoken::Algorithm],
) -> Result<Map<String, Value>, Rejection> {
    use jsonwebtoken::errors::ErrorKind;
    let mut validation = jsonwebtoken::Validation::new(algorithms[0]);
    validation.algorithms = algorithms.to_vec();
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation).map(|data| data.claims).map_err(|e| match e.kind() {
        ErrorKind::InvalidAlgorithm => Rejection::Algorithm,
        ErrorKind::InvalidSignature | ErrorKind::InvalidRsaKey(_) | ErrorKind::InvalidKeyFormat | ErrorKind::InvalidEcdsaKey => {
            Rejection::BadSignature
        }
        _ => Rejection::Malformed,
    })
}

/// A claim that, when present, must be a whole number.
pub(crate) fn number(claims: &Map<String, Value>, name: &'static str) -> Result<Option<i64>, Rejection> {
    match claims.get(name) {
        None => Ok(None),
        Some(value) => value.as_i64().map(Some).ok_or(Rejection::MissingClaim(name)),
    }
}

/// A claim that, when present, must be a string.
pub(crate) fn string<'a>(claims: &'a Map<String, Value>, name: &'static str) -> Result<Option<&'a str>, Rejection> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value.as_str().map(Some).ok_or(Rejection::MissingClaim(name)),
    }
}
