//! `EXTERNAL_ISSUERS_FILE` (TOML): each `[[issuer]]` names an identity provider, where its keys
//! come from (a JWKS URL, OIDC discovery, or a PEM), what its tokens must carry, and how their
//! roles map to `is_staff` / `is_superuser`. Read and parsed once; `external::issuers` verifies
//! tokens with what is parsed here.

use std::{collections::HashSet, path::Path, sync::Arc};

use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;

use super::{PublicKey, RoleMapping, check_issuer_url};

/// Names that `/api/token/{name}/` can never reach, because a fixed route answers there.
const FIXED_ROUTES: [&str; 6] = ["verify", "refresh", "blacklist", "revoke-all", "exchange", "sliding"];

/// One `[[issuer]]` entry, as written in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct IssuerEntry {
    name: String,
    issuer: String,
    #[serde(default)]
    jwks_url: Option<String>,
    #[serde(default)]
    discovery: bool,
    #[serde(default)]
    public_key_pem: Option<String>,
    #[serde(default = "default_algorithms")]
    algorithms: Vec<String>,
    #[serde(default)]
    audience: Vec<String>,
    #[serde(default)]
    authorized_parties: Vec<String>,
    #[serde(default = "default_subject_claim")]
    subject_claim: String,
    #[serde(default = "default_email_claim")]
    email_claim: String,
    #[serde(default)]
    email_verified_default: bool,
    #[serde(default)]
    first_name_claim: Option<String>,
    #[serde(default)]
    last_name_claim: Option<String>,
    #[serde(default)]
    roles_claim: Option<String>,
    #[serde(default)]
    staff_roles: Vec<String>,
    #[serde(default)]
    superuser_roles: Vec<String>,
}

fn default_algorithms() -> Vec<String> {
    vec!["RS256".to_owned()]
}

fn default_subject_claim() -> String {
    "sub".to_owned()
}

fn default_email_claim() -> String {
    "email".to_owned()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IssuersFile {
    #[serde(default)]
    issuer: Vec<IssuerEntry>,
}

/// Where an issuer's keys come from.
#[derive(Debug, Clone)]
pub enum IssuerKeys {
    /// `public_key_pem`: one key, usable with each allowed algorithm it fits.
    Pem(Vec<(Algorithm, PublicKey)>),
    JwksUrl(String),
    /// The JWKS URL named by `{issuer}/.well-known/openid-configuration`, read at first use.
    Discovery,
}

/// One configured issuer, parsed.
#[derive(Debug, Clone)]
pub struct IssuerConfig {
    pub name: String,
    pub issuer: String,
    pub keys: IssuerKeys,
    /// The algorithms its tokens may use (never HS*).
    pub algorithms: Vec<Algorithm>,
    pub audience: Vec<String>,
    pub authorized_parties: Vec<String>,
    pub subject_claim: String,
    pub email_claim: String,
    /// Whether a token with no `email_verified` claim vouches for its address (false unless the
    /// entry says so: an address nobody verified proves nothing).
    pub email_verified_default: bool,
    pub first_name_claim: Option<String>,
    pub last_name_claim: Option<String>,
    /// `roles_claim`, `staff_roles`, `superuser_roles`; `None` without `roles_claim`.
    pub roles: Option<RoleMapping>,
}

/// Reads and parses the file. `Err` is one line naming the file, the entry and the key at fault.
pub(super) fn load(path: &Path) -> Result<Vec<IssuerConfig>, String> {
    let file = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{file}: cannot read: {e}"))?;
    let parsed: IssuersFile =
        toml::from_str(&text).map_err(|e| format!("{file}: {}", e.to_string().replace('\n', " ").trim().to_owned()))?;
    let mut names = HashSet::new();
    let mut issuers = Vec::with_capacity(parsed.issuer.len());
    for (i, entry) in parsed.issuer.into_iter().enumerate() {
        let name = entry.name.clone();
        let at = |key: &str, message: &str| format!("{file}: issuer[{i}] ({name}): {key}: {message}");
        if !names.insert(entry.name.clone()) {
            return Err(at("name", "another issuer has this name"));
        }
        issuers.push(parse_entry(entry).map_err(|(key, message)| at(key, &message))?);
    }
    Ok(issuers)
}

/// One entry, checked key by key; `Err` names the key at fault.
fn parse_entry(entry: IssuerEntry) -> Result<IssuerConfig, (&'static str, String)> {
    let valid_name =
        !entry.name.is_empty() && entry.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid_name || entry.name == "clerk" {
        return Err(("name", "use [a-z0-9-]+, and not \"clerk\" (Clerk is configured by CLERK_*)".to_owned()));
    }
    if FIXED_ROUTES.contains(&entry.name.as_str()) {
        let message = format!("/api/token/{}/ is a fixed route, so this issuer could never be reached", entry.name);
        return Err(("name", message));
    }
    if entry.issuer.is_empty() {
        return Err(("issuer", "required".to_owned()));
    }
    let sources = usize::from(entry.jwks_url.is_some())
        + usize::from(entry.discovery)
        + usize::from(entry.public_key_pem.is_some());
    if sources != 1 {
        return Err(("jwks_url", "give exactly one of jwks_url, discovery = true, public_key_pem".to_owned()));
    }
    if let Some(url) = &entry.jwks_url {
        check_issuer_url(url).map_err(|m| ("jwks_url", m))?;
    }
    if entry.discovery {
        check_issuer_url(&entry.issuer).map_err(|m| ("issuer", format!("discovery fetches from the issuer: {m}")))?;
    }
    let algorithms = algorithms(&entry.algorithms).map_err(|m| ("algorithms", m))?;
    let keys = match (&entry.jwks_url, &entry.public_key_pem) {
        (Some(url), _) => IssuerKeys::JwksUrl(url.clone()),
        (None, Some(pem)) => {
            let keys: Vec<_> = algorithms.iter().filter_map(|alg| Some((*alg, pem_key(pem, *alg)?))).collect();
            if keys.is_empty() {
                return Err(("public_key_pem", "not a PEM public key for the allowed algorithms".to_owned()));
            }
            IssuerKeys::Pem(keys)
        }
        (None, None) => IssuerKeys::Discovery,
    };
    Ok(IssuerConfig {
        name: entry.name,
        issuer: entry.issuer,
        keys,
        algorithms,
        audience: entry.audience,
        authorized_parties: entry.authorized_parties,
        subject_claim: entry.subject_claim,
        email_claim: entry.email_claim,
        email_verified_default: entry.email_verified_default,
        first_name_claim: entry.first_name_claim,
        last_name_claim: entry.last_name_claim,
        roles: entry.roles_claim.map(|claim| RoleMapping {
            claim,
            staff_roles: entry.staff_roles,
            superuser_roles: entry.superuser_roles,
        }),
    })
}

fn algorithms(names: &[String]) -> Result<Vec<Algorithm>, String> {
    if names.is_empty() {
        return Err("list at least one of RS256, ES256, EdDSA".to_owned());
    }
    names
        .iter()
        .map(|name| match name.as_str() {
            "RS256" => Ok(Algorithm::RS256),
            "ES256" => Ok(Algorithm::ES256),
            "EdDSA" => Ok(Algorithm::EdDSA),
            other => Err(format!("{other:?} is not allowed (RS256, ES256 or EdDSA; never HS*)")),
        })
        .collect()
}

fn pem_key(pem: &str, algorithm: Algorithm) -> Option<PublicKey> {
    let key = match algorithm {
        Algorithm::RS256 => DecodingKey::from_rsa_pem(pem.as_bytes()).ok(),
        Algorithm::ES256 => DecodingKey::from_ec_pem(pem.as_bytes()).ok(),
        Algorithm::EdDSA => DecodingKey::from_ed_pem(pem.as_bytes()).ok(),
        _ => None,
    }?;
    Some(PublicKey(Arc::new(key)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str) -> IssuerEntry {
        toml::from_str(&format!("name = {name:?}\nissuer = \"https://id.example.com\"\ndiscovery = true")).unwrap()
    }

    #[test]
    fn a_name_a_fixed_route_answers_for_is_refused() {
        for fixed in FIXED_ROUTES {
            let (key, message) = parse_entry(entry(fixed)).unwrap_err();
            assert_eq!(key, "name");
            assert!(message.contains("fixed route"), "{message}");
        }
        assert!(parse_entry(entry("auth0")).is_ok());
    }
}
