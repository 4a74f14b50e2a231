//! Clerk's settings: the issuer whose session tokens are exchanged, where its keys come from, and
//! the webhook secret.

use std::sync::Arc;

use jsonwebtoken::DecodingKey;
use secrecy::SecretString;

use super::{
    ConfigError, PublicKey, WebhookSecret,
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
