//! Clerk's settings: the issuer whose session tokens are exchanged, where its keys come from, the
//! webhook secret, and which metadata roles make a Clerk user staff or superuser.

use std::sync::Arc;

use jsonwebtoken::DecodingKey;
use secrecy::SecretString;

use super::{
    ConfigError, PublicKey, RoleMapping, WebhookSecret,
    vars::{Vars, check_issuer_url},
};

#[derive(Debug, Clone)]
pub struct ClerkConfig {
    pub issuer: String,
    pub jwks_url: String,
    /// `CLERK_JWT_KEY`: verify with this key, no network.
    pub jwt_key: Option<PublicKey>,
    pub authorized_parties: Vec<String>,
}

impl ClerkConfig {
    pub(super) fn read(vars: &Vars<'_>) -> Result<Option<Self>, ConfigError> {
        let Some(issuer) = vars.raw("CLERK_ISSUER") else { return Ok(None) };
        let issuer = issuer.trim().trim_end_matches('/').to_owned();
        check_issuer_url(&issuer).map_err(|m| ConfigError::new("CLERK_ISSUER", m))?;
        let jwks_url = vars.raw("CLERK_JWKS_URL").unwrap_or_else(|| format!("{issuer}/.well-known/jwks.json"));
        check_issuer_url(&jwks_url).map_err(|m| ConfigError::new("CLERK_JWKS_URL", m))?;
        let jwt_key = match vars.raw("CLERK_JWT_KEY") {
            None => None,
            Some(pem) => Some(PublicKey(Arc::new(
                DecodingKey::from_rsa_pem(pem.as_bytes())
                    .map_err(|_| ConfigError::new("CLERK_JWT_KEY", "not a PEM RSA public key"))?,
            ))),
        };
        Ok(Some(ClerkConfig { issuer, jwks_url, jwt_key, authorized_parties: vars.list("CLERK_AUTHORIZED_PARTIES") }))
    }
}

pub(super) fn webhook_secret(vars: &Vars<'_>) -> Result<Option<WebhookSecret>, ConfigError> {
    let Some(raw) = vars.raw("CLERK_WEBHOOK_SIGNING_SECRET") else { return Ok(None) };
    // The value is a secret: the message never repeats it.
    WebhookSecret::parse(&SecretString::from(raw)).map(Some).ok_or_else(|| {
        ConfigError::new("CLERK_WEBHOOK_SIGNING_SECRET", "must be whsec_ followed by base64, as Clerk shows it")
    })
}

/// `CLERK_ROLES_CLAIM` with `CLERK_STAFF_ROLES` / `CLERK_SUPERUSER_ROLES`. Unset: Clerk never
/// touches `is_staff` / `is_superuser`. Role lists without the claim would silently do nothing,
/// and a claim with no role lists would take staff from every Clerk user: both are refused.
pub(super) fn roles(vars: &Vars<'_>) -> Result<Option<RoleMapping>, ConfigError> {
    let staff_roles = vars.list("CLERK_STAFF_ROLES");
    let superuser_roles = vars.list("CLERK_SUPERUSER_ROLES");
    let Some(claim) = vars.raw("CLERK_ROLES_CLAIM") else {
        for (var, roles) in [("CLERK_STAFF_ROLES", &staff_roles), ("CLERK_SUPERUSER_ROLES", &superuser_roles)] {
            if !roles.is_empty() {
                return Err(ConfigError::new(
                    var,
                    "needs CLERK_ROLES_CLAIM, the path of the roles in Clerk's metadata",
                ));
            }
        }
        return Ok(None);
    };
    let claim = claim.trim().to_owned();
    check_roles_path(&claim).map_err(|m| ConfigError::new("CLERK_ROLES_CLAIM", m))?;
    if staff_roles.is_empty() && superuser_roles.is_empty() {
        let message = "set CLERK_STAFF_ROLES or CLERK_SUPERUSER_ROLES too; with neither, no Clerk user could be staff";
        return Err(ConfigError::new("CLERK_ROLES_CLAIM", message));
    }
    Ok(Some(RoleMapping { claim, staff_roles, superuser_roles }))
}

/// A dotted path of non-empty names, not into `unsafe_metadata`: Clerk lets users write their
/// own unsafe metadata from the browser, so roles read there would be whatever the user chose.
fn check_roles_path(path: &str) -> Result<(), String> {
    if path.split('.').any(|part| part.is_empty() || part.chars().any(char::is_whitespace)) {
        return Err(format!("expected a dotted path such as public_metadata.role, got {path:?}"));
    }
    if path.split('.').next() == Some("unsafe_metadata") {
        return Err("unsafe_metadata is writable by the users themselves; use public_metadata".to_owned());
    }
    Ok(())
}
