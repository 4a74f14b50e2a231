//! Signing keys as values: the algorithms tokensmith signs with, a private key parsed from PEM
//! (or the HS256 secret) with its public half as a JWK, and fresh keys. A leaf below `config`,
//! so that a key file is parsed once, when the configuration is read, and kept.

use std::str::FromStr;

use aws_lc_rs::{
    encoding::AsDer,
    rand::SystemRandom,
    rsa::KeySize,
    signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair},
};
use hmac::{Hmac, Mac};
use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey,
    jwk::{Jwk, PublicKeyUse, ThumbprintHash},
};
use sha2::Sha256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtAlgorithm {
    Hs256,
    Rs256,
    Es256,
    EdDsa,
}

impl JwtAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hs256 => "HS256",
            Self::Rs256 => "RS256",
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
        }
    }

    pub fn jsonwebtoken(self) -> Algorithm {
        match self {
            Self::Hs256 => Algorithm::HS256,
            Self::Rs256 => Algorithm::RS256,
            Self::Es256 => Algorithm::ES256,
            Self::EdDsa => Algorithm::EdDSA,
        }
    }
}

impl FromStr for JwtAlgorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "HS256" => Ok(Self::Hs256),
            "RS256" => Ok(Self::Rs256),
            "ES256" => Ok(Self::Es256),
            "EdDSA" => Ok(Self::EdDsa),
            other => Err(format!("unsupported algorithm {other:?}; use one of HS256, RS256, ES256, EdDSA")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyMaterialError {
    #[error("the key is not a PEM {0} private key")]
    WrongKind(&'static str),
    #[error("could not generate a key")]
    Generate,
    #[error("{0} keys are a shared secret, not generated")]
    NotGenerated(&'static str),
}

/// A private key with its public half: the JWK that is published, and the key that verifies.
pub struct KeyMaterial {
    pub kid: String,
    pub algorithm: Algorithm,
    encoding: EncodingKey,
    decoding: DecodingKey,
    public_jwk: Option<Jwk>,
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyMaterial({:?}, {})", self.algorithm, self.kid)
    }
}

impl KeyMaterial {
    pub fn from_pem(pem: &str, algorithm: JwtAlgorithm) -> Result<Self, KeyMaterialError> {
        let alg = algorithm.jsonwebtoken();
        let wrong = || KeyMaterialError::WrongKind(algorithm.as_str());
        let encoding = match algorithm {
            JwtAlgorithm::Rs256 => EncodingKey::from_rsa_pem(pem.as_bytes()),
            JwtAlgorithm::Es256 => EncodingKey::from_ec_pem(pem.as_bytes()),
            JwtAlgorithm::EdDsa => EncodingKey::from_ed_pem(pem.as_bytes()),
            JwtAlgorithm::Hs256 => return Err(wrong()),
        }
        .map_err(|_| wrong())?;
        let mut jwk = Jwk::from_encoding_key(&encoding, alg).map_err(|_| wrong())?;
        // A key that cannot be turned back into a verifier would sign tokens nobody can check.
        let decoding = DecodingKey::from_jwk(&jwk).map_err(|_| wrong())?;
        let kid = jwk.thumbprint(ThumbprintHash::SHA256).map_err(|_| wrong())?;
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        Ok(Self { kid, algorithm: alg, encoding, decoding, public_jwk: Some(jwk) })
    }

    /// The HS256 shared secret: nothing is published.
    pub fn from_secret(secret: &str) -> Self {
        // The kid names the secret without revealing anything about it.
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
        mac.update(b"tokensmith key id");
        let kid = hex(&mac.finalize().into_bytes()[..8]);
        Self {
            kid,
            algorithm: Algorithm::HS256,
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            public_jwk: None,
        }
    }

    pub fn encoding_key(&self) -> &EncodingKey {
        &self.encoding
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey { algorithm: self.algorithm, decoding: self.decoding.clone() }
    }

    /// The public JWK; `None` for a shared secret.
    pub fn public_jwk(&self) -> Option<&Jwk> {
        self.public_jwk.as_ref()
    }
}

/// A public key, with the one algorithm it may verify (never the token header's choice).
pub struct VerifyingKey {
    pub algorithm: Algorithm,
    pub decoding: DecodingKey,
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh private key as PKCS#8 PEM.
pub fn generate_pem(algorithm: JwtAlgorithm) -> Result<String, KeyMaterialError> {
    let der: Vec<u8> = match algorithm {
        JwtAlgorithm::Es256 => EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .map_err(|_| KeyMaterialError::Generate)?
            .as_ref()
            .to_vec(),
        // PKCS#8 v1: jsonwebtoken cannot derive the public JWK from a v2 Ed25519 document.
        JwtAlgorithm::EdDsa => Ed25519KeyPair::generate_pkcs8v1(&SystemRandom::new())
            .map_err(|_| KeyMaterialError::Generate)?
            .as_ref()
            .to_vec(),
        JwtAlgorithm::Rs256 => aws_lc_rs::rsa::KeyPair::generate(KeySize::Rsa2048)
            .and_then(|k| k.as_der())
            .map_err(|_| KeyMaterialError::Generate)?
            .as_ref()
            .to_vec(),
        JwtAlgorithm::Hs256 => return Err(KeyMaterialError::NotGenerated("HS256")),
    };
    Ok(pem::encode(&pem::Pem::new("PRIVATE KEY", der)))
}
