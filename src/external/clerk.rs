//! Verifying Clerk session tokens, more strictly than Clerk's own SDKs: the algorithm is pinned
//! to RS256, the signature is checked before any claim, `iss` must match exactly, `azp` must be
//! present and allowed when parties are configured, and only real session tokens pass (no
//! JWT-template, OAuth or machine tokens, no pending sessions).

use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};

use super::{
    ExternalError, ExternalIdentity, Rejection, check_registered_claims, jwks::JwksCache, number, roles, signed_claims,
    string,
};
use crate::{
    clock::unix_now,
    config::{ClerkConfig, RoleMapping},
    domain::{ExternalProfile, Organization},
};

pub const PROVIDER: &str = "clerk";

/// The most characters after `user_` a Clerk user id given by hand may have (Clerk's are 27).
pub const MAX_USER_ID_CHARS: usize = 64;

/// Whether `id` is shaped as a Clerk user id: `user_` and 1 to `MAX_USER_ID_CHARS` ASCII letters
/// and digits (base62). For ids an operator types (`tokensmith clerk link`).
pub fn is_user_id(id: &str) -> bool {
    id.strip_prefix("user_").is_some_and(|rest| {
        (1..=MAX_USER_ID_CHARS).contains(&rest.len()) && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

enum Keys {
    /// `CLERK_JWT_KEY`: no network at all.
    Pem(Arc<DecodingKey>),
    Jwks(JwksCache),
}

pub struct ClerkVerifier {
    issuer: String,
    authorized_parties: Vec<String>,
    keys: Keys,
    /// `CLERK_ROLES_CLAIM`: read from the token when its template carries the metadata.
    roles: Option<RoleMapping>,
}

impl ClerkVerifier {
    pub fn new(config: &ClerkConfig, roles: Option<&RoleMapping>) -> Self {
        let keys = match &config.jwt_key {
            Some(key) => Keys::Pem(key.0.clone()),
            None => Keys::Jwks(JwksCache::new(PROVIDER, config.jwks_url.clone(), vec![Algorithm::RS256])),
        };
        Self {
            issuer: config.issuer.clone(),
            authorized_parties: config.authorized_parties.clone(),
            keys,
            roles: roles.cloned(),
        }
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// How Clerk's metadata roles map to `is_staff` / `is_superuser`, when configured.
    pub fn roles(&self) -> Option<&RoleMapping> {
        self.roles.as_ref()
    }

    /// Every check, in an order that tells a forger nothing: header shape, key, signature,
    /// and only then the claims.
    pub async fn verify(&self, token: &str) -> Result<ExternalIdentity, ExternalError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| Rejection::Malformed)?;
        // Pinned: the header's `alg` is only compared, never used to choose how to verify.
        if header.alg != Algorithm::RS256 {
            return Err(Rejection::Algorithm.into());
        }
        // `jku`, `x5u` and `jwk` are ignored: keys come only from our configuration.
        let key = match &self.keys {
            Keys::Pem(key) => key.clone(),
            Keys::Jwks(cache) => {
                let kid = header.kid.as_deref().filter(|k| !k.is_empty()).ok_or(Rejection::UnknownKey)?;
                cache.key(kid).await?
            }
        };
        let claims = signed_claims(token, &key, header.alg, &[Algorithm::RS256])?;
        // OAuth access tokens are typed `at+jwt`; session tokens are plain JWTs.
        if header.typ.as_deref().is_some_and(|t| !t.eq_ignore_ascii_case("JWT")) {
            return Err(Rejection::NotASessionToken.into());
        }
        self.check_claims(&claims, unix_now()).map_err(ExternalError::from)
    }

    fn check_claims(&self, claims: &Map<String, Value>, now: i64) -> Result<ExternalIdentity, Rejection> {
        check_registered_claims(claims, &self.issuer, &[], &self.authorized_parties, true, now)?;
        // Session tokens only: a user subject and a session id. JWT-template tokens have no
        // `sid`; machine tokens have an `mch_` subject or a `cat` claim.
        let subject = string(claims, "sub")?.filter(|s| s.starts_with("user_")).ok_or(Rejection::NotASessionToken)?;
        let session_id = string(claims, "sid")?.filter(|s| !s.is_empty()).ok_or(Rejection::NotASessionToken)?;
        if claims.contains_key("cat") {
            return Err(Rejection::NotASessionToken);
        }
        let version = match claims.get("v") {
            None => 1,
            Some(v) => v.as_i64().filter(|v| (1..=2).contains(v)).ok_or(Rejection::NotASessionToken)?,
        };
        if string(claims, "sts")? == Some("pending") {
            return Err(Rejection::PendingSession);
        }
        let organization = if version == 2 { organization_v2(claims)? } else { organization_v1(claims)? };
        let mut profile = profile_hints(claims)?;
        // Only when the session token's template carries the metadata; else the flags stay as
        // the last token, webhook or sync left them.
        profile.roles = self.roles.as_ref().and_then(|mapping| roles::flags(mapping, claims));
        // The metadata as it was when Clerk minted the token (iat is required above): a token
        // minted before a webhook's update carries roles that update may have taken away.
        let iat = number(claims, "iat")?.ok_or(Rejection::MissingClaim("iat"))?;
        profile.roles_as_of_ms = Some(iat.saturating_mul(1000));
        Ok(ExternalIdentity {
            provider: PROVIDER,
            subject: subject.to_owned(),
            session_id: session_id.to_owned(),
            organization,
            profile,
        })
    }
}

/// Session token v1: `org_id`, `org_role`, `org_slug` at the top level.
fn organization_v1(claims: &Map<String, Value>) -> Result<Option<Organization>, Rejection> {
    let Some(id) = string(claims, "org_id")? else { return Ok(None) };
    Ok(Some(Organization {
        id: id.to_owned(),
        role: string(claims, "org_role")?.map(str::to_owned),
        slug: string(claims, "org_slug")?.map(str::to_owned),
    }))
}

/// Session token v2: `o: {id, rol, slg}`, the role without v1's `org:` prefix; restored here so
/// local tokens carry one form whichever version Clerk sent.
fn organization_v2(claims: &Map<String, Value>) -> Result<Option<Organization>, Rejection> {
    let org = match claims.get("o") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(org)) => org,
        Some(_) => return Err(Rejection::MissingClaim("o")),
    };
    let Some(id) = string(org, "id")? else { return Ok(None) };
    let role = string(org, "rol")?.map(|r| if r.starts_with("org:") { r.to_owned() } else { format!("org:{r}") });
    Ok(Some(Organization { id: id.to_owned(), role, slug: string(org, "slg")?.map(str::to_owned) }))
}

/// Session tokens carry no profile unless the Clerk instance adds claims to them (Dashboard →
/// Sessions → Customize session token); use them when they are there.
fn profile_hints(claims: &Map<String, Value>) -> Result<ExternalProfile, Rejection> {
    let text = |name| string(claims, name).map(|v| v.map(str::to_owned));
    Ok(ExternalProfile {
        username: text("username")?.filter(|u| !u.is_empty()),
        email: text("email")?.unwrap_or_default(),
        first_name: text("first_name")?.or(text("given_name")?).unwrap_or_default(),
        last_name: text("last_name")?.or(text("family_name")?).unwrap_or_default(),
        updated_at_ms: 0,
        roles: None,
        roles_as_of_ms: None,
        // Read from the Backend API's user at the first exchange (a webhook's, a sync's).
        local_user_id: None,
        locked_out: false,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn verifier(parties: &[&str]) -> ClerkVerifier {
        ClerkVerifier {
            issuer: "https://clerk.example.com".to_owned(),
            authorized_parties: parties.iter().map(|p| p.to_string()).collect(),
            keys: Keys::Jwks(JwksCache::new(PROVIDER, "http://127.0.0.1:1/jwks".to_owned(), vec![Algorithm::RS256])),
            roles: None,
        }
    }

    fn claims(extra: Value) -> Map<String, Value> {
        let mut base = json!({
            "iss": "https://clerk.example.com", "sub": "user_1", "sid": "sess_1",
            "exp": 1_000_060, "iat": 1_000_000, "nbf": 999_990, "azp": "https://app.example.com",
        });
        base.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        base.as_object().unwrap().clone()
    }

    #[test]
    fn user_ids_are_user_and_base62() {
        assert!(is_user_id("user_2NNEqL2nrIRdJ194ndJqAHwEfxC"));
        assert!(is_user_id(&format!("user_{}", "a".repeat(MAX_USER_ID_CHARS))));
        for bad in ["", "user_", "2NNEqL2n", "usr_abc", "user_abc-def", "user_abc def", "user_é", "USER_abc"] {
            assert!(!is_user_id(bad), "{bad:?}");
        }
        assert!(!is_user_id(&format!("user_{}", "a".repeat(MAX_USER_ID_CHARS + 1))));
    }

    #[test]
    fn v2_role_gets_the_v1_prefix() {
        let c = claims(json!({"v": 2, "o": {"id": "org_1", "rol": "admin", "slg": "acme"}}));
        let id = verifier(&[]).check_claims(&c, 1_000_000).unwrap();
        let org = id.organization.unwrap();
        assert_eq!(
            (org.id.as_str(), org.role.as_deref(), org.slug.as_deref()),
            ("org_1", Some("org:admin"), Some("acme"))
        );
    }

    #[test]
    fn skew_is_five_seconds_each_way() {
        let v = verifier(&[]);
        assert!(v.check_claims(&claims(json!({})), 1_000_065).is_ok());
        assert_eq!(v.check_claims(&claims(json!({})), 1_000_066).unwrap_err(), Rejection::Expired);
        assert_eq!(v.check_claims(&claims(json!({"iat": 1_000_006})), 1_000_000).unwrap_err(), Rejection::NotYetValid);
    }

    #[test]
    fn odd_claim_types_are_rejections_not_panics() {
        let v = verifier(&["https://app.example.com"]);
        for odd in [
            json!({"exp": "soon"}),
            json!({"exp": 1.5e300}),
            json!({"iss": 7}),
            json!({"azp": []}),
            json!({"v": 2, "o": "x"}),
            json!({"v": "2"}),
        ] {
            assert!(v.check_claims(&claims(odd.clone()), 1_000_000).is_err(), "{odd}");
        }
    }
}
