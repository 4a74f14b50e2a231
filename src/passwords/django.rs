//! Django's password hash formats, checked as Django 5.2's hashers check them
//! (`django/contrib/auth/hashers.py`): `pbkdf2_sha256`, `pbkdf2_sha1`, `argon2`,
//! `bcrypt_sha256`, `bcrypt`, `scrypt` and salted `md5`.
//!
//! Django re-encodes the password with the stored salt and parameters and compares the whole
//! string, so only the exact string its encoder writes can match. Each format is read here
//! strictly in that form (decimals without leading zeros, base64 as Python writes it, bcrypt's
//! cost in two digits); anything else is refused when read and never matches. Secret-dependent
//! comparisons are constant-time.
//!
//! The primitives are well-kept crates, not code of ours: PBKDF2 is aws-lc-rs's (already the
//! crypto provider; its `pbkdf2::verify` compares in constant time, and it is C with assembly
//! SHA-2, like the OpenSSL Django's hashlib calls); bcrypt is the `bcrypt` crate, the one pyca/bcrypt
//! (which Django calls) is built on, so salt, cost and version prefixes (`2a`, `2b`, `2x`, `2y`)
//! are handled by the same code; scrypt and MD5 are RustCrypto's `scrypt` and `md-5`; argon2 is
//! read as libargon2 reads it (`phc`). As with pyca/bcrypt 5 (Django 5.2's), a password longer
//! than 72 bytes never matches a plain `bcrypt` hash (older versions cut it to 72 bytes).
//!
//! A stored hash sets its own cost, so each is bounded before any work, well above Django's
//! defaults (in brackets); beyond a ceiling the hash never matches: PBKDF2 at most 10,000,000
//! iterations (1,000,000), bcrypt cost at most 16 (12), scrypt memory (128·r·(N + p), its blocks
//! and its lanes) at most 256 MiB (16 MiB) and its work (128·N·r × p) at most 1 GiB (80 MiB),
//! argon2 as `phc` says. (Stock Django cannot even check a scrypt hash above 32 MiB, OpenSSL's
//! default `maxmem`; the ceiling leaves room for sites that raised it.)
//! Unsalted MD5 and SHA-1, `sha1` and `crypt`, which Django 5.2 no longer enables, are unknown.

use std::num::NonZeroU32;

use ::argon2::Block;
use aws_lc_rs::{digest, pbkdf2};
use base64::{
    Engine,
    alphabet::BCRYPT,
    engine::{
        GeneralPurpose,
        general_purpose::{NO_PAD, STANDARD},
    },
};
use md5::{Digest, Md5};

use super::{UnsupportedHash, phc::Argon2Hash, same_bytes};

/// Longer than any hash here (Django's column holds 128 characters): refused unread.
pub(super) const MAX_STORED_CHARS: usize = 512;

const PBKDF2_MAX_ITERATIONS: u64 = 10_000_000;
const BCRYPT_MIN_COST: u64 = 4;
const BCRYPT_MAX_COST: u64 = 16;
const SCRYPT_MAX_MEMORY: u128 = 256 << 20;
const SCRYPT_MAX_WORK: u128 = 1 << 30;
/// Django's scrypt output: 64 bytes.
const SCRYPT_LEN: usize = 64;
/// bcrypt reads at most 72 bytes of a password.
const BCRYPT_MAX_PASSWORD: usize = 72;

/// bcrypt's base64 (its own alphabet, no padding, no stray bits), as pyca/bcrypt decodes it.
const BCRYPT_BASE64: GeneralPurpose = GeneralPurpose::new(&BCRYPT, NO_PAD);

/// A stored Django hash, read and within the ceilings.
pub(super) enum DjangoHash<'a> {
    Pbkdf2 {
        hasher: &'static str,
        prf: pbkdf2::Algorithm,
        iterations: NonZeroU32,
        salt: &'a str,
        hash: Vec<u8>,
    },
    Argon2(Argon2Hash),
    /// `data` is bcrypt's own string (`$2b$12$…`), which Django stores after `bcrypt$`;
    /// `bcrypt_sha256` hashes the password's SHA-256 (so every byte of it counts).
    Bcrypt {
        hasher: &'static str,
        sha256: bool,
        version: bcrypt::Version,
        cost: u32,
        salt: [u8; 16],
        data: &'a str,
    },
    Scrypt {
        params: scrypt::Params,
        salt: &'a str,
        hash: Vec<u8>,
    },
    Md5 {
        salt: &'a str,
        hex: &'a str,
    },
}

impl<'a> DjangoHash<'a> {
    /// Reads `algorithm$…` as the hasher Django's `identify_hasher` would pick reads it.
    pub(super) fn parse(stored: &'a str) -> Result<Self, UnsupportedHash> {
        let (hasher, rest) = stored.split_once('$').ok_or(UnsupportedHash::Unrecognised)?;
        match hasher {
            "pbkdf2_sha256" => pbkdf2("pbkdf2_sha256", pbkdf2::PBKDF2_HMAC_SHA256, 32, rest),
            "pbkdf2_sha1" => pbkdf2("pbkdf2_sha1", pbkdf2::PBKDF2_HMAC_SHA1, 20, rest),
            // Django hands libargon2 `$` and what follows its `argon2`.
            "argon2" => Ok(Self::Argon2(Argon2Hash::parse(&stored[hasher.len()..], "argon2")?)),
            "bcrypt_sha256" => bcrypt("bcrypt_sha256", true, rest),
            "bcrypt" => bcrypt("bcrypt", false, rest),
            "scrypt" => scrypt(rest),
            "md5" => md5(rest),
            name if is_hasher_name(name) => Err(UnsupportedHash::UnknownHasher(name.to_owned())),
            _ => Err(UnsupportedHash::Unrecognised),
        }
    }

    /// Django's name for the hasher.
    pub(super) fn hasher(&self) -> &'static str {
        match self {
            Self::Pbkdf2 { hasher, .. } | Self::Bcrypt { hasher, .. } => hasher,
            Self::Argon2(_) => "argon2",
            Self::Scrypt { .. } => "scrypt",
            Self::Md5 { .. } => "md5",
        }
    }

    /// Whether `password` is the one the hash was made from.
    pub(super) fn verify(&self, password: &[u8], memory: &mut Vec<Block>) -> bool {
        match self {
            Self::Pbkdf2 { prf, iterations, salt, hash, .. } => {
                pbkdf2::verify(*prf, *iterations, salt.as_bytes(), password, hash).is_ok()
            }
            Self::Argon2(hash) => hash.verify(password, memory),
            Self::Bcrypt { sha256, version, cost, salt, data, .. } => {
                // Django hands bcrypt the SHA-256 in lowercase hex.
                let prehashed;
                let password = if *sha256 {
                    prehashed = hex(digest::digest(&digest::SHA256, password).as_ref());
                    prehashed.as_bytes()
                } else if password.len() > BCRYPT_MAX_PASSWORD {
                    return false;
                } else {
                    password
                };
                let computed = bcrypt::hash_with_salt(password, *cost, *salt);
                computed.is_ok_and(|c| same_bytes(c.format_for_version(version.clone()).as_bytes(), data.as_bytes()))
            }
            Self::Scrypt { params, salt, hash } => {
                let mut computed = [0u8; SCRYPT_LEN];
                scrypt::scrypt(password, salt.as_bytes(), params, &mut computed).is_ok() && same_bytes(&computed, hash)
            }
            Self::Md5 { salt, hex: stored } => {
                let computed = hex(&Md5::new().chain_update(salt).chain_update(password).finalize());
                same_bytes(computed.as_bytes(), stored.as_bytes())
            }
        }
    }
}

/// `iterations$salt$hash`, the hash in padded standard base64.
fn pbkdf2<'a>(
    hasher: &'static str,
    prf: pbkdf2::Algorithm,
    len: usize,
    rest: &'a str,
) -> Result<DjangoHash<'a>, UnsupportedHash> {
    let [iterations, salt, hash] =
        fields(rest).ok_or(UnsupportedHash::Invalid { hasher, why: "with a malformed hash" })?;
    let iterations = number(iterations).ok_or(UnsupportedHash::Invalid { hasher, why: "with malformed iterations" })?;
    if iterations > PBKDF2_MAX_ITERATIONS {
        return Err(UnsupportedHash::AboveCeiling { hasher, what: "iterations", ceiling: "10,000,000" });
    }
    let iterations = u32::try_from(iterations).ok().and_then(NonZeroU32::new);
    let iterations = iterations.ok_or(UnsupportedHash::Invalid { hasher, why: "with 0 iterations" })?;
    let salt = salted(hasher, salt)?;
    let hash = decoded(hasher, &STANDARD, hash, len)?;
    Ok(DjangoHash::Pbkdf2 { hasher, prf, iterations, salt, hash })
}

/// bcrypt's `$2b$12$` + 22 characters of salt + 31 of hash, after Django's `bcrypt$`.
fn bcrypt<'a>(hasher: &'static str, sha256: bool, data: &'a str) -> Result<DjangoHash<'a>, UnsupportedHash> {
    let malformed = |why| UnsupportedHash::Invalid { hasher, why };
    let shape =
        data.len() == 60 && data.is_ascii() && data.char_indices().all(|(i, c)| (c == '$') == [0, 3, 6].contains(&i));
    if !shape {
        return Err(malformed("with a malformed hash"));
    }
    let version = match &data[1..3] {
        "2a" => bcrypt::Version::TwoA,
        "2b" => bcrypt::Version::TwoB,
        "2x" => bcrypt::Version::TwoX,
        "2y" => bcrypt::Version::TwoY,
        _ => return Err(malformed("with an unknown version")),
    };
    let cost = Some(&data[4..6]).filter(|c| c.bytes().all(|b| b.is_ascii_digit())).and_then(|c| c.parse().ok());
    let cost: u64 = cost.ok_or(malformed("with a malformed cost"))?;
    if cost < BCRYPT_MIN_COST {
        return Err(malformed("with a cost below 4"));
    }
    if cost > BCRYPT_MAX_COST {
        return Err(UnsupportedHash::AboveCeiling { hasher, what: "cost", ceiling: "16" });
    }
    let salt = decoded(hasher, &BCRYPT_BASE64, &data[7..29], 16).map_err(|_| malformed("with a malformed salt"))?;
    decoded(hasher, &BCRYPT_BASE64, &data[29..], 23)?;
    let salt = salt.try_into().map_err(|_| malformed("with a malformed salt"))?;
    Ok(DjangoHash::Bcrypt { hasher, sha256, version, cost: cost as u32, salt, data })
}

/// `N$salt$r$p$hash`, the hash in padded standard base64.
fn scrypt(rest: &str) -> Result<DjangoHash<'_>, UnsupportedHash> {
    const HASHER: &str = "scrypt";
    let malformed = |why| UnsupportedHash::Invalid { hasher: HASHER, why };
    let [n, salt, r, p, hash] = fields(rest).ok_or(malformed("with a malformed hash"))?;
    let (n, r, p) = match (number(n), number(r), number(p)) {
        (Some(n), Some(r), Some(p)) if n > 1 && n.is_power_of_two() && r > 0 && p > 0 => (n, r, p),
        _ => return Err(malformed("with malformed parameters")),
    };
    // What scrypt allocates (as OpenSSL counts it for its `maxmem`): 128·r bytes for each of
    // N blocks and of p lanes. A small N with a large r and p would take its memory in the lanes.
    let memory = 128 * u128::from(r) * (u128::from(n) + u128::from(p));
    if memory > SCRYPT_MAX_MEMORY {
        return Err(UnsupportedHash::AboveCeiling { hasher: HASHER, what: "memory", ceiling: "256 MiB" });
    }
    if 128 * u128::from(n) * u128::from(r) * u128::from(p) > SCRYPT_MAX_WORK {
        return Err(UnsupportedHash::AboveCeiling { hasher: HASHER, what: "memory × parallelism", ceiling: "1 GiB" });
    }
    // OpenSSL, which Django's hashlib.scrypt calls, also wants N < 2^(16·r).
    let log_n = n.trailing_zeros();
    if 16 * r <= 64 && u64::from(log_n) >= 16 * r {
        return Err(malformed("with malformed parameters"));
    }
    let salt = salted(HASHER, salt)?;
    let hash = decoded(HASHER, &STANDARD, hash, SCRYPT_LEN)?;
    // Within the ceilings, r and p fit in u32 and log_n in u8.
    let params =
        scrypt::Params::new(log_n as u8, r as u32, p as u32).map_err(|_| malformed("with malformed parameters"))?;
    Ok(DjangoHash::Scrypt { params, salt, hash })
}

/// `salt$hash`, the hash MD5's 32 lowercase hex digits.
fn md5(rest: &str) -> Result<DjangoHash<'_>, UnsupportedHash> {
    const HASHER: &str = "md5";
    let [salt, hex] = fields(rest).ok_or(UnsupportedHash::Invalid { hasher: HASHER, why: "with a malformed hash" })?;
    let salt = salted(HASHER, salt)?;
    if hex.len() != 32 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(UnsupportedHash::Invalid { hasher: HASHER, why: "with a malformed hash" });
    }
    Ok(DjangoHash::Md5 { salt, hex })
}

/// Exactly `N` fields separated by `$`.
fn fields<const N: usize>(text: &str) -> Option<[&str; N]> {
    text.split('$').collect::<Vec<_>>().try_into().ok()
}

/// A decimal as Python's `%d` writes one: digits only, no leading zero.
fn number(text: &str) -> Option<u64> {
    let canonical =
        !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) && !(text.starts_with('0') && text.len() > 1);
    if canonical { text.parse().ok() } else { None }
}

/// Django refuses to hash with an empty salt, so no such hash matches.
fn salted<'a>(hasher: &'static str, salt: &'a str) -> Result<&'a str, UnsupportedHash> {
    if salt.is_empty() { Err(UnsupportedHash::Invalid { hasher, why: "with an empty salt" }) } else { Ok(salt) }
}

/// `text` decoded as exactly `len` bytes, in the canonical form `engine` writes.
fn decoded(hasher: &'static str, engine: &GeneralPurpose, text: &str, len: usize) -> Result<Vec<u8>, UnsupportedHash> {
    engine
        .decode(text)
        .ok()
        .filter(|bytes| bytes.len() == len)
        .ok_or(UnsupportedHash::Invalid { hasher, why: "with a malformed hash" })
}

/// How Django's algorithm names look (the part before the first `$`).
fn is_hasher_name(name: &str) -> bool {
    (1..=32).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
#[path = "django_tests.rs"]
mod tests;
