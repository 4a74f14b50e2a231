//! The cost of the primitives the endpoints are built on, in this build on this machine, as
//! JSON for `bench/run.sh`: one argon2id hash at the configured parameters (one thread, working
//! memory reused, as the server hashes), one check of a wrong password against each of Django's
//! hashers at Django 5.2's default costs (hashes Django made), one ES256 and one HS256 token
//! verification (jsonwebtoken, in process, no HTTP).
//!
//! `cargo run --release --example bench_primitives`

use std::time::Instant;

use tokensmith::passwords::{Verdict, verify_with_memory};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Value, json};
use tokensmith::{config::JwtAlgorithm, key_material::generate_pem};

fn per_op<F: FnMut()>(iterations: u32, mut op: F) -> f64 {
    op(); // warm up
    let started = Instant::now();
    for _ in 0..iterations {
        op();
    }
    started.elapsed().as_secs_f64() / f64::from(iterations)
}

/// Operations per second with every core doing `op` `per_thread` times at once, as under a login
/// flood: cores share caches and memory bandwidth, so each takes longer than alone.
fn all_cores_rate(per_thread: u32, op: impl Fn(&mut Vec<argon2::Block>) + Sync) -> f64 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..cores {
            scope.spawn(|| {
                let mut memory = Vec::new();
                for _ in 0..per_thread {
                    op(&mut memory);
                }
            });
        }
    });
    (cores as f64 * f64::from(per_thread)) / started.elapsed().as_secs_f64()
}

fn main() {
    tokensmith::install_crypto_provider();
    // As the server's hashing threads do it: the 19 MiB of working memory reused.
    let mut memory = Vec::new();
    let argon2 = per_op(30, || {
        tokensmith::passwords::hash_with_memory(b"benchmark password", &mut memory).unwrap();
    });

    // Every core hashing at once, as under a login flood: cores share caches and memory
    // bandwidth, so each hash takes longer than alone.
    let parallel_rate = all_cores_rate(20, |memory| {
        tokensmith::passwords::hash_with_memory(b"benchmark password", memory).unwrap();
    });

    // `make_password("lètmein 🔑", salt, hasher)` by Django 5.2.19 at its default costs.
    let django = [
        ("pbkdf2_sha256", "pbkdf2_sha256$1000000$seasalt2024abcdefgh$51QZe4wEXidtJy0S5ISQu71ASynJfKvC9t7sKycdkWY="),
        ("pbkdf2_sha1", "pbkdf2_sha1$1000000$seasalt2024abcdefgh$DhTDa/HOlwszLjrH9fTAh/6gsO4="),
        (
            "argon2",
            "argon2$argon2id$v=19$m=102400,t=2,p=8$c2Vhc2FsdDIwMjRhYmNkZWZnaA$40n/qX95suKq4x3RkUUqCssYKU7V4tr7fk2iy2P7o50",
        ),
        ("bcrypt_sha256", "bcrypt_sha256$$2b$12$M7WjJCByhsSSVKi7ByLPm.xjbT2EPcjg2ujAJVB.b3WVVOVAgmjhS"),
        ("bcrypt", "bcrypt$$2b$12$LjhSJ3k4BDebZFyRSIyHo.GTpT7RyRMk55.5oi50YcZpSfwby1VUy"),
        (
            "scrypt",
            "scrypt$16384$seasalt2024abcdefgh$8$5$Rib+JOxnodpWuPFkVUi/5ITtwW3AbVDRi9kPb9lORSOY1eem80MhJ+1a3NVYaZKZc1JfYbxAmvwk8rz9l39MTg==",
        ),
        ("md5", "md5$seasalt2024abcdefgh$684f470ce5580bb18626457290b9b092"),
    ];
    // A wrong password: what every failed login, and each check before the first success, costs.
    let mut django_ms = serde_json::Map::new();
    for (hasher, stored) in django {
        assert!(matches!(
            verify_with_memory("lètmein 🔑".as_bytes(), Some(stored), &mut memory),
            Verdict::MatchedOutdated { .. }
        ));
        let ms =
            per_op(5, || assert_eq!(verify_with_memory(b"wrong", Some(stored), &mut memory), Verdict::Mismatch)) * 1e3;
        django_ms.insert(hasher.to_owned(), json!(ms));
    }

    // Every core checking Django's default hash at once, as under a flood of imported users' logins.
    let pbkdf2_parallel_rate = all_cores_rate(4, |memory| {
        verify_with_memory(b"wrong", Some(django[0].1), memory);
    });

    let claims = json!({"token_type": "access", "exp": 4_000_000_000u64, "iat": 1, "jti": "0123456789abcdef0123456789abcdef", "user_id": "1"});
    let pem = generate_pem(JwtAlgorithm::Es256).unwrap();
    let es_token = jsonwebtoken::encode(
        &Header::new(Algorithm::ES256),
        &claims,
        &EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
    )
    .unwrap();
    let public =
        jsonwebtoken::jwk::Jwk::from_encoding_key(&EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(), Algorithm::ES256)
            .unwrap();
    let es_key = DecodingKey::from_jwk(&public).unwrap();
    let es_validation = Validation::new(Algorithm::ES256);
    let es256 = per_op(20_000, || {
        jsonwebtoken::decode::<Value>(&es_token, &es_key, &es_validation).unwrap();
    });

    let secret = b"0123456789abcdef0123456789abcdef";
    let hs_token =
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret)).unwrap();
    let hs_key = DecodingKey::from_secret(secret);
    let hs_validation = Validation::new(Algorithm::HS256);
    let hs256 = per_op(100_000, || {
        jsonwebtoken::decode::<Value>(&hs_token, &hs_key, &hs_validation).unwrap();
    });
    println!(
        "{}",
        json!({
            "argon2_hash_ms": argon2 * 1e3,
            "argon2_all_cores_per_s": parallel_rate,
            "django_wrong_password_ms": django_ms,
            "pbkdf2_all_cores_per_s": pbkdf2_parallel_rate,
            "es256_verify_us": es256 * 1e6,
            "hs256_verify_us": hs256 * 1e6,
        })
    );
}
