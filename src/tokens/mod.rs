//! Local JWTs: minting and checking them, claim for claim as simplejwt 5.5 writes them, with the
//! key ring (`ring`) that signs and verifies them.

mod claims;
mod ring;

use std::{sync::Arc, time::Duration};

use arc_swap::ArcSwap;
use jsonwebtoken::{Algorithm, Header, Validation, errors::ErrorKind};
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::Mutex;

use self::claims::UserIdClaim;
pub use self::claims::user_claims;
pub use self::ring::{KeyError, KeyRing, rotate};
use crate::{
    clock::{secs, unix_now},
    config::{Config, JwtAlgorithm},
    domain::Organization,
    store::Store,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenType {
    Access,
    Refresh,
    /// simplejwt's `SlidingToken`: authenticates like an access token, refreshes itself.
    Sliding,
}

impl TokenType {
    fn as_str(self) -> &'static str {
        match self {
            Self::Access => "access",
            Self::Refresh => "refresh",
            Self::Sliding => "sliding",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        [Self::Access, Self::Refresh, Self::Sliding].into_iter().find(|t| t.as_str() == name)
    }
}

/// Why a local token was refused; the messages are simplejwt's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("Token is invalid")]
    Invalid,
    #[error("Token is expired")]
    Expired,
    #[error("Token has wrong type")]
    WrongType,
    #[error("Token is blacklisted")]
    Blacklisted,
    /// A sliding token past its `refresh_exp`, presented for a refresh.
    #[error("Token 'refresh_exp' claim has expired")]
    RefreshExpired,
}

/// The claims of a token that passed every check.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    pub token_type: TokenType,
    pub jti: String,
    pub user_id: i64,
    pub expires_at: i64,
    /// Sliding tokens: until when they may be refreshed (`refresh_exp`).
    pub refresh_expires_at: Option<i64>,
    /// Access and refresh tokens: the session they belong to (`sid`). Tokens minted before
    /// sessions were named in their tokens, and simplejwt's imported ones, have none.
    pub sid: Option<String>,
}

impl VerifiedToken {
    /// The session the token belongs to, when the token names it: its `sid`, or for a sliding
    /// token its own jti (a sliding token is a session of its own).
    pub fn session_id(&self) -> Option<&str> {
        match self.token_type {
            TokenType::Sliding => Some(&self.jti),
            _ => self.sid.as_deref(),
        }
    }
}

#[derive(Serialize)]
struct Claims<'a> {
    token_type: &'static str,
    exp: i64,
    iat: i64,
    jti: &'a str,
    /// Access and refresh tokens: the session (`sid`, as OIDC and Clerk name it). A refresh finds
    /// its session by it, and an access token says which session a password change keeps.
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<&'a str>,
    /// Sliding tokens: until when they may be refreshed.
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_exp: Option<i64>,
    #[serde(flatten)]
    user_id: UserIdClaim<'a>,
    /// Access and sliding tokens: the user id again, where gateways and OIDC libraries look for the subject.
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
    /// The organization active in the external session the token descends from.
    #[serde(skip_serializing_if = "Option::is_none")]
    org_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    org_role: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    org_slug: Option<&'a str>,
    /// The user's claims (`TOKEN_CLAIMS`, custom claims): access and sliding tokens only.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    user: Option<&'a Map<String, Value>>,
}

/// A token to mint.
pub struct TokenSpec<'a> {
    pub token_type: TokenType,
    pub jti: &'a str,
    /// Access and refresh tokens: the session they belong to.
    pub session_id: Option<&'a str>,
    pub user_id: i64,
    pub issued_at: i64,
    pub expires_at: i64,
    /// Sliding tokens only: `refresh_exp`.
    pub refresh_expires_at: Option<i64>,
    /// Access tokens only.
    pub organization: Option<&'a Organization>,
    /// Access and sliding tokens only: what `user_claims` made of the user.
    pub user_claims: Option<&'a Map<String, Value>>,
}

/// The type a token claims, read without checking anything: only to say which kind of token a
/// refusal was about, as simplejwt's messages do.
pub fn claimed_type(token: &str) -> Option<TokenType> {
    #[derive(serde::Deserialize)]
    struct Typed {
        token_type: String,
    }
    let typed: Typed = jsonwebtoken::dangerous::insecure_decode_claims(token).ok()?;
    TokenType::parse(&typed.token_type)
}

pub fn new_jti() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Signs and verifies with the current key ring, which a background task (and an unknown
/// `kid`) reloads from the database so that `tokensmith keys rotate` reaches running servers.
pub struct TokenService {
    keys: ArcSwap<KeyRing>,
    config: Arc<Config>,
    store: Store,
    issuer: Option<String>,
    audience: Option<String>,
    leeway: i64,
    /// `USER_ID_CLAIM`.
    user_id_claim: String,
    /// One per algorithm, built once: verification allocates no validator per request.
    validations: Vec<Validation>,
    /// When an unknown kid last reloaded the ring (`None`: never yet). Held while it reloads,
    /// so requests meeting the same new kid wait for that reload instead of being refused.
    reload: Mutex<Option<std::time::Instant>>,
}

/// What every local token must satisfy, for keys of `algorithm`.
fn validation(algorithm: Algorithm, config: &Config) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.leeway = secs(config.jwt_leeway) as u64;
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.required_spec_claims = ["exp".to_owned()].into();
    validation.validate_aud = false;
    if let Some(iss) = &config.jwt_issuer {
        validation.set_issuer(&[iss]);
        validation.required_spec_claims.insert("iss".to_owned());
    }
    if let Some(aud) = &config.jwt_audience {
        validation.set_audience(&[aud]);
        validation.validate_aud = true;
        validation.required_spec_claims.insert("aud".to_owned());
    }
    validation
}

/// Unknown kids reload the ring at most this often, so forged kids cannot flood the database.
const UNKNOWN_KID_RELOAD_INTERVAL: Duration = Duration::from_secs(5);

enum Checked {
    Valid(VerifiedToken),
    Refused(TokenError),
    UnknownKid,
}

impl TokenService {
    pub fn new(config: Arc<Config>, store: Store, keys: KeyRing) -> Self {
        Self {
            keys: ArcSwap::from_pointee(keys),
            issuer: config.jwt_issuer.clone(),
            audience: config.jwt_audience.clone(),
            leeway: secs(config.jwt_leeway),
            user_id_claim: config.tokens.user_id_claim.clone(),
            validations: JwtAlgorithm::ALL
                .into_iter()
                .map(|algorithm| validation(algorithm.jsonwebtoken(), &config))
                .collect(),
            reload: Mutex::new(None),
            config,
            store,
        }
    }

    pub fn key_ring(&self) -> Arc<KeyRing> {
        self.keys.load_full()
    }

    pub fn replace_key_ring(&self, keys: KeyRing) {
        self.keys.store(Arc::new(keys));
    }

    pub fn mint(&self, spec: &TokenSpec<'_>) -> Result<String, jsonwebtoken::errors::Error> {
        let keys = self.keys.load();
        let mut header = Header::new(keys.signing.algorithm);
        header.typ = Some("JWT".to_owned());
        header.kid = Some(keys.signing.kid.clone());
        let claims = Claims {
            token_type: spec.token_type.as_str(),
            exp: spec.expires_at,
            iat: spec.issued_at,
            jti: spec.jti,
            sid: spec.session_id,
            refresh_exp: spec.refresh_expires_at,
            user_id: UserIdClaim { name: &self.user_id_claim, id: spec.user_id },
            sub: (spec.token_type != TokenType::Refresh).then(|| spec.user_id.to_string()),
            iss: self.issuer.as_deref(),
            aud: self.audience.as_deref(),
            org_id: spec.organization.map(|o| o.id.as_str()),
            org_role: spec.organization.and_then(|o| o.role.as_deref()),
            org_slug: spec.organization.and_then(|o| o.slug.as_deref()),
            user: spec.user_claims,
        };
        jsonwebtoken::encode(&header, &claims, keys.signing.encoding_key())
    }

    /// Checks signature, algorithm, time claims, issuer/audience and token type (`None`: any
    /// type tokensmith mints). A token signed by a key this server has not loaded yet triggers
    /// one reload.
    pub async fn verify(&self, token: &str, expected: Option<TokenType>) -> Result<VerifiedToken, TokenError> {
        self.verify_with(token, expected.as_slice(), true).await
    }

    /// As `verify`, for a token of any of the `expected` types.
    pub async fn verify_one_of(&self, token: &str, expected: &[TokenType]) -> Result<VerifiedToken, TokenError> {
        self.verify_with(token, expected, true).await
    }

    /// As `verify`, but a passed `exp` is no refusal: a sliding token is refreshed until its
    /// `refresh_exp`, which its caller checks.
    pub async fn verify_allowing_expired(&self, token: &str, expected: TokenType) -> Result<VerifiedToken, TokenError> {
        self.verify_with(token, &[expected], false).await
    }

    async fn verify_with(&self, token: &str, expected: &[TokenType], exp: bool) -> Result<VerifiedToken, TokenError> {
        let ring = self.keys.load_full();
        match self.check(&ring, token, expected, exp) {
            Checked::Valid(t) => Ok(t),
            Checked::Refused(e) => Err(e),
            Checked::UnknownKid => match self.reload_for_unknown_kid(&ring).await {
                Some(ring) => match self.check(&ring, token, expected, exp) {
                    Checked::Valid(t) => Ok(t),
                    Checked::Refused(e) => Err(e),
                    Checked::UnknownKid => Err(TokenError::Invalid),
                },
                None => Err(TokenError::Invalid),
            },
        }
    }

    /// A ring newer than `seen` (the one that did not know the kid), or `None`. A reload in
    /// progress is waited for; a ring replaced meanwhile is checked without another reload.
    /// Otherwise the ring is reloaded, at most once per `UNKNOWN_KID_RELOAD_INTERVAL`, so forged
    /// kids cannot flood the database; the first reload after start is allowed at once.
    async fn reload_for_unknown_kid(&self, seen: &Arc<KeyRing>) -> Option<Arc<KeyRing>> {
        let mut last = self.reload.lock().await;
        let current = self.keys.load_full();
        if !Arc::ptr_eq(&current, seen) {
            return Some(current);
        }
        if last.is_some_and(|at| at.elapsed() < UNKNOWN_KID_RELOAD_INTERVAL) {
            return None;
        }
        *last = Some(std::time::Instant::now());
        match KeyRing::load(&self.config, &self.store).await {
            Ok(ring) => {
                let ring = Arc::new(ring);
                self.keys.store(ring.clone());
                Some(ring)
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not reload signing keys");
                None
            }
        }
    }

    /// Reloads the ring from its source (the periodic task). It does not count against the
    /// unknown-kid limit: only attacker-triggered reloads are limited.
    pub async fn reload(&self) -> Result<(), KeyError> {
        let ring = KeyRing::load(&self.config, &self.store).await?;
        self.replace_key_ring(ring);
        Ok(())
    }

    /// `exp`: whether a passed `exp` refuses the token.
    fn check(&self, keys: &KeyRing, token: &str, expected: &[TokenType], exp: bool) -> Checked {
        let Ok(header) = jsonwebtoken::decode_header(token) else { return Checked::Refused(TokenError::Invalid) };
        let Some(key) = keys.verifying_key(header.kid.as_deref()) else {
            return match header.kid {
                Some(kid) if !keys.knows(&kid) => Checked::UnknownKid,
                _ => Checked::Refused(TokenError::Invalid),
            };
        };
        // The algorithm is the key's own; the header's `alg` only has to agree with it.
        let Some(validation) = self.validations.iter().find(|v| v.algorithms[0] == key.algorithm) else {
            return Checked::Refused(TokenError::Invalid);
        };
        // Rare (sliding refreshes only), so a copy here rather than a second set kept.
        let unexpired;
        let validation = if exp {
            validation
        } else {
            unexpired = Validation { validate_exp: false, ..validation.clone() };
            &unexpired
        };
        let claims = match jsonwebtoken::decode::<Map<String, Value>>(token, &key.decoding, validation) {
            Ok(data) => data.claims,
            Err(e) if matches!(e.kind(), ErrorKind::ExpiredSignature) => return Checked::Refused(TokenError::Expired),
            Err(_) => return Checked::Refused(TokenError::Invalid),
        };
        match self.check_claims(&claims, expected) {
            Ok(t) => Checked::Valid(t),
            Err(e) => Checked::Refused(e),
        }
    }

    /// The claims jsonwebtoken does not know: their types are checked here, so a validly
    /// signed token with odd claims is refused rather than crashing anything downstream.
    fn check_claims(&self, claims: &Map<String, Value>, expected: &[TokenType]) -> Result<VerifiedToken, TokenError> {
        let now = unix_now();
        let expires_at = claims.get("exp").and_then(Value::as_i64).ok_or(TokenError::Invalid)?;
        let issued_at = claims.get("iat").and_then(Value::as_i64).ok_or(TokenError::Invalid)?;
        if issued_at > now + self.leeway {
            return Err(TokenError::Invalid);
        }
        let jti = claims.get("jti").and_then(Value::as_str).filter(|j| !j.is_empty()).ok_or(TokenError::Invalid)?;
        let token_type = match claims.get("token_type").and_then(Value::as_str) {
            Some(name) => match TokenType::parse(name) {
                Some(token_type) => token_type,
                None if !expected.is_empty() => return Err(TokenError::WrongType),
                None => return Err(TokenError::Invalid),
            },
            None => return Err(TokenError::Invalid),
        };
        if !expected.is_empty() && !expected.contains(&token_type) {
            return Err(TokenError::WrongType);
        }
        let refresh_expires_at = match token_type {
            TokenType::Sliding => Some(claims.get("refresh_exp").and_then(Value::as_i64).ok_or(TokenError::Invalid)?),
            _ => None,
        };
        // simplejwt 5.5 writes the id as a string; older versions as a number.
        let user_id = match claims.get(&self.user_id_claim) {
            Some(Value::String(s)) => s.parse().ok(),
            Some(Value::Number(n)) => n.as_i64(),
            _ => None,
        }
        .ok_or(TokenError::Invalid)?;
        // Only ours name a session this way; a `sid` of another shape (a simplejwt project's own
        // claim, on an imported token) is not ours to read, and the token's record is used instead.
        let sid = match claims.get("sid") {
            Some(Value::String(sid)) if !sid.is_empty() && token_type != TokenType::Sliding => Some(sid.clone()),
            _ => None,
        };
        Ok(VerifiedToken { token_type, jti: jti.to_owned(), user_id, expires_at, refresh_expires_at, sid })
    }
}
