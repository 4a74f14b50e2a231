//! Every `JWT_ALGORITHM` as a downstream service sees it: an access token from a real login
//! verifies with the key the JWKS publishes for it (or with `JWT_SECRET` under HS*), the JWK says
//! what it is (`alg`, `kty`, `crv`), key files of the right kind sign and of the wrong kind are
//! refused at start, secrets are as long as their hash, and rotation and key switches keep every
//! key verifying its own algorithm's tokens and nothing else.

use std::{path::Path, process::Command, str::FromStr, time::Duration};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, jwk::Jwk};
use serde_json::{Value, json};
use tokensmith::{config::Config, http::Application};

use crate::{
    config::{OPENSSL_P256, OPENSSL_RSA, config_from, openssl_key, serve_refuses},
    helpers::*,
};

crate::db_test!(
    hs256_verifies_with_the_secret,
    hs384_verifies_with_the_secret,
    hs512_verifies_with_the_secret,
    rs256_verifies_from_the_jwks,
    rs384_verifies_from_the_jwks,
    rs512_verifies_from_the_jwks,
    ps256_verifies_from_the_jwks,
    ps384_verifies_from_the_jwks,
    ps512_verifies_from_the_jwks,
    es256_verifies_from_the_jwks,
    es384_verifies_from_the_jwks,
    eddsa_verifies_from_the_jwks,
    an_openssl_rsa_key_signs_ps256_and_rs512,
    an_openssl_p384_key_signs_es384,
    rotation_under_ps256_keeps_old_tokens_verifying,
    a_key_verifies_only_its_own_algorithm,
);

/// Secrets exactly as long as RFC 7518 §3.2 requires: the hash's output size.
fn secret_for(alg: &str) -> String {
    let len = match alg {
        "HS256" => 32,
        "HS384" => 48,
        "HS512" => 64,
        other => panic!("{other} has no secret"),
    };
    "k".repeat(len)
}

fn b64(bytes: &[u8]) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(bytes).expect("base64url")
}

/// What a JWK for `alg` must say about itself (RFC 7518 §6), checked from the JSON alone.
fn assert_describes(jwk: &Value, alg: &str) {
    assert_eq!(jwk["alg"], alg, "{jwk}");
    assert_eq!(jwk["use"], "sig", "{jwk}");
    assert!(jwk["kid"].as_str().is_some_and(|k| !k.is_empty()), "{jwk}");
    for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
        assert!(jwk.get(private).is_none(), "{alg}: private member {private:?} published: {jwk}");
    }
    let len = |member: &str| b64(jwk[member].as_str().unwrap_or_else(|| panic!("no {member}: {jwk}")).as_bytes()).len();
    match &alg[..2] {
        "RS" | "PS" => {
            assert_eq!(jwk["kty"], "RSA", "{jwk}");
            assert!(jwk.get("crv").is_none(), "{jwk}");
            assert!(len("n") >= 256, "{alg}: an RSA modulus under 2048 bits: {jwk}");
            assert_eq!(b64(jwk["e"].as_str().unwrap().as_bytes()), [1, 0, 1], "{jwk}");
        }
        "ES" => {
            let (crv, coordinate) = if alg == "ES256" { ("P-256", 32) } else { ("P-384", 48) };
            assert_eq!(jwk["kty"], "EC", "{jwk}");
            assert_eq!(jwk["crv"], crv, "{jwk}");
            assert_eq!((len("x"), len("y")), (coordinate, coordinate), "{alg}: coordinates of the wrong size: {jwk}");
        }
        "Ed" => {
            assert_eq!(jwk["kty"], "OKP", "{jwk}");
            assert_eq!(jwk["crv"], "Ed25519", "{jwk}");
            assert_eq!(len("x"), 32, "{jwk}");
        }
        _ => panic!("no JWK expected for {alg}"),
    }
}

/// Verifies `token` as a downstream service would: the JWKS member named by its kid, turned
/// into a key by jsonwebtoken, and the algorithm pinned by the downstream's own configuration.
fn verify_with_jwks(set: &Value, token: &str, alg: &str) -> Value {
    tokensmith::install_crypto_provider();
    let kid = header(token)["kid"].as_str().expect("a kid").to_owned();
    let jwk: Jwk = serde_json::from_value(jwk_with_kid(set, &kid)).expect("a standard JWK");
    let key = DecodingKey::from_jwk(&jwk).expect("a usable public key");
    let algorithm = Algorithm::from_str(alg).unwrap();
    jsonwebtoken::decode::<Value>(token, &key, &Validation::new(algorithm))
        .unwrap_or_else(|e| panic!("{alg}: the token does not verify with its published key: {e}"))
        .claims
}

async fn assert_server_accepts(app: &TestApp, access: &str) {
    let reply = app.post_json("/api/token/verify/", json!({"token": access})).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let me = app.get_bearer("/api/me/", access).await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.json()["username"], "alice");
}

/// Logs in under `alg` with a generated key, and verifies the access token from the JWKS; then
/// refreshes, and verifies the new one too.
async fn verifies_from_the_jwks(backend: Backend, alg: &str) {
    let app = spawn_app_with(backend, &[("JWT_ALGORITHM", alg)]).await;
    let (access, refresh) = app.alice().await;
    assert_eq!(header(&access)["alg"], alg);
    assert_eq!(header(&access)["typ"], "JWT");

    let set = jwks(&app).await;
    assert_eq!(set["keys"].as_array().unwrap().len(), 1, "one generated key: {set}");
    let kid = header(&access)["kid"].as_str().unwrap().to_owned();
    assert_describes(&jwk_with_kid(&set, &kid), alg);

    let claims = verify_with_jwks(&set, &access, alg);
    assert_eq!(claims["token_type"], "access");
    assert_eq!(claims["user_id"], "1");
    assert_server_accepts(&app, &access).await;

    let refreshed = app.post_json("/api/token/refresh/", json!({"refresh": refresh})).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);
    verify_with_jwks(&set, &refreshed.field("access"), alg);
}

/// Under HS* the JWKS stays empty and the downstream service holds `JWT_SECRET`.
async fn verifies_with_the_secret(backend: Backend, alg: &str) {
    let secret = secret_for(alg);
    let app = spawn_app_with(backend, &[("JWT_ALGORITHM", alg), ("JWT_SECRET", &secret)]).await;
    let (access, _) = app.alice().await;
    assert_eq!(header(&access)["alg"], alg);
    assert_eq!(jwks(&app).await, json!({"keys": []}), "a shared secret is never published");

    tokensmith::install_crypto_provider();
    let key = DecodingKey::from_secret(secret.as_bytes());
    let claims = jsonwebtoken::decode::<Value>(&access, &key, &Validation::new(Algorithm::from_str(alg).unwrap()))
        .unwrap_or_else(|e| panic!("{alg}: the token does not verify with JWT_SECRET: {e}"))
        .claims;
    assert_eq!(claims["user_id"], "1");
    assert_server_accepts(&app, &access).await;

    // A token the downstream signs with the same secret (as simplejwt would) is accepted too.
    let now = now();
    let theirs = json!({"token_type": "access", "exp": now + 60, "iat": now, "jti": "a".repeat(32), "user_id": "1"});
    let theirs = jsonwebtoken::encode(
        &Header::new(Algorithm::from_str(alg).unwrap()),
        &theirs,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    assert_server_accepts(&app, &theirs).await;
}

async fn hs256_verifies_with_the_secret(backend: Backend) {
    verifies_with_the_secret(backend, "HS256").await;
}
async fn hs384_verifies_with_the_secret(backend: Backend) {
    verifies_with_the_secret(backend, "HS384").await;
}
async fn hs512_verifies_with_the_secret(backend: Backend) {
    verifies_with_the_secret(backend, "HS512").await;
}
async fn rs256_verifies_from_the_jwks(backend: Backend) {
    verifies_from_the_jwks(backend, "RS256").await;
}
async fn rs384_verifies_from_the_jwks(backend: Backend) {
    verifies_from_the_jwks(backend, "RS384").await;
}
async fn rs512_verifies_from_the_jwks(backend: Backend) {
    verifies_from_the_jwks(backend, "RS512").await;
}
async fn ps256_verifies_from_the_jwks(backend: Backend) {
    verifies_from_the_jwks(backend, "PS256").await;
}
async fn ps384_verifies_from_the_jwks(backend: Backend) {
    verifies_from_the_jwks(backend, "PS384").await;
}
async fn ps512_verifies_from_the_jwks(backend: Backend) {
    verifies_from_the_jwks(backend, "PS512").await;
}
async fn es256_verifies_from_the_jwks(backend: Backend) {
    verifies_from_the_jwks(backend, "ES256").await;
}
async fn es384_verifies_from_the_jwks(backend: Backend) {
    verifies_from_the_jwks(backend, "ES384").await;
}
async fn eddsa_verifies_from_the_jwks(backend: Backend) {
    verifies_from_the_jwks(backend, "EdDSA").await;
}

// ---------------------------------------------------------------- key files, checked by openssl

const OPENSSL_P384: &[&str] = &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"];

fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl").args(args).output().expect("openssl is installed");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// An ECDSA signature as JWS writes it (r ‖ s, RFC 7518 §3.4) in the DER form openssl reads.
fn ecdsa_der(raw: &[u8]) -> Vec<u8> {
    let integer = |half: &[u8]| {
        let mut bytes: Vec<u8> = half.iter().copied().skip_while(|b| *b == 0).collect();
        if bytes.first().is_none_or(|b| b & 0x80 != 0) {
            bytes.insert(0, 0);
        }
        let mut out = vec![0x02, bytes.len() as u8];
        out.extend(bytes);
        out
    };
    let (r, s) = raw.split_at(raw.len() / 2);
    let body = [integer(r), integer(s)].concat();
    [vec![0x30, body.len() as u8], body].concat()
}

/// Checks `token`'s signature with openssl and the public half of `key_file`: a second,
/// unrelated implementation of the algorithm (PSS salt as long as the hash, as RFC 7518 §3.5 says).
fn assert_openssl_verifies(dir: &Path, key_file: &str, token: &str, alg: &str) {
    let (signing_input, signature) = token.rsplit_once('.').unwrap();
    let signature = b64(signature.as_bytes());
    let digest = format!("-sha{}", &alg[2..]);
    let public = dir.join(format!("{alg}.pub.pem"));
    openssl(&["pkey", "-in", key_file, "-pubout", "-out", public.to_str().unwrap()]);
    let (data, sig) = (dir.join(format!("{alg}.data")), dir.join(format!("{alg}.sig")));
    std::fs::write(&data, signing_input).unwrap();
    std::fs::write(&sig, if alg.starts_with("ES") { ecdsa_der(&signature) } else { signature }).unwrap();
    let mut args = vec!["dgst", &digest, "-verify", public.to_str().unwrap(), "-signature", sig.to_str().unwrap()];
    if alg.starts_with("PS") {
        args.extend(["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:digest"]);
    }
    args.push(data.to_str().unwrap());
    let verified = String::from_utf8(openssl(&args)).unwrap();
    assert!(verified.contains("Verified OK"), "{alg}: {verified}");
}

/// One RSA key file made by openssl serves PS256 and RS512 alike: each publishes the file's
/// public key under its own `alg`, and its tokens verify with openssl and from the JWKS.
async fn an_openssl_rsa_key_signs_ps256_and_rs512(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let path = openssl_key(dir.path(), "rsa.pem", OPENSSL_RSA);
    let modulus = String::from_utf8(openssl(&["rsa", "-in", &path, "-noout", "-modulus"])).unwrap();
    let modulus = modulus.trim().strip_prefix("Modulus=").unwrap().to_lowercase();
    for alg in ["PS256", "RS512"] {
        let app = spawn_app_with(backend, &[("JWT_ALGORITHM", alg), ("JWT_SIGNING_KEY_FILE", &path)]).await;
        let set = jwks(&app).await;
        assert_eq!(set["keys"].as_array().unwrap().len(), 1, "exactly the file's key: {set}");
        let jwk = set["keys"][0].clone();
        assert_describes(&jwk, alg);
        assert_eq!(tokensmith::key_material::hex(&b64(jwk["n"].as_str().unwrap().as_bytes())), modulus);

        let (access, _) = app.alice().await;
        assert_eq!(header(&access)["alg"], alg);
        assert_openssl_verifies(dir.path(), &path, &access, alg);
        verify_with_jwks(&set, &access, alg);
        assert_server_accepts(&app, &access).await;
    }
}

/// A P-384 key file made by openssl signs ES384: the JWKS publishes its point on P-384.
async fn an_openssl_p384_key_signs_es384(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let path = openssl_key(dir.path(), "p384.pem", OPENSSL_P384);
    let spki = openssl(&["pkey", "-in", &path, "-pubout", "-outform", "DER"]);
    let point = &spki[spki.len() - 97..];
    assert_eq!(point[0], 4, "an uncompressed point ends the SubjectPublicKeyInfo");

    let app = spawn_app_with(backend, &[("JWT_ALGORITHM", "ES384"), ("JWT_SIGNING_KEY_FILE", &path)]).await;
    let set = jwks(&app).await;
    let jwk = set["keys"][0].clone();
    assert_describes(&jwk, "ES384");
    assert_eq!(b64(jwk["x"].as_str().unwrap().as_bytes()), point[1..49]);
    assert_eq!(b64(jwk["y"].as_str().unwrap().as_bytes()), point[49..]);

    let (access, _) = app.alice().await;
    assert_eq!(header(&access)["alg"], "ES384");
    assert_openssl_verifies(dir.path(), &path, &access, "ES384");
    verify_with_jwks(&set, &access, "ES384");
    assert_server_accepts(&app, &access).await;
}

// ---------------------------------------------------------------- configuration errors

/// RFC 7518 §3.2: an HMAC key as long as the hash output, named in one line that does not echo it.
#[test]
fn hs_secrets_must_be_as_long_as_their_hash() {
    for (alg, min) in [("HS256", 32), ("HS384", 48), ("HS512", 64)] {
        serve_refuses(&[("JWT_ALGORITHM", alg)], "JWT_SECRET");
        let short = "s".repeat(min - 1);
        let line = serve_refuses(&[("JWT_ALGORITHM", alg), ("JWT_SECRET", &short)], "JWT_SECRET");
        assert!(line.contains(&min.to_string()) && line.contains(alg), "{alg}: the rule is stated: {line}");
        assert!(!line.contains(&short), "the error must not echo the secret: {line}");
        let enough = "s".repeat(min);
        let config = config_from(&[("JWT_ALGORITHM", alg), ("JWT_SECRET", &enough)])
            .unwrap_or_else(|e| panic!("{alg} with a {min}-byte secret: {e}"));
        assert_eq!(config.jwt_algorithm.as_str(), alg);
    }
}

/// A key file of another kind than the algorithm signs with stops the start, naming the file's variable.
#[test]
fn key_files_of_the_wrong_kind_are_refused() {
    let keys = tempfile::tempdir().unwrap();
    let p256 = openssl_key(keys.path(), "p256.pem", OPENSSL_P256);
    let p384 = openssl_key(keys.path(), "p384.pem", OPENSSL_P384);
    let rsa = openssl_key(keys.path(), "rsa.pem", OPENSSL_RSA);
    for (alg, path, kind) in [
        ("ES384", &p256, "P-384"),
        ("ES256", &p384, "P-256"),
        ("ES384", &rsa, "P-384"),
        ("PS256", &p384, "RSA"),
        ("RS384", &p256, "RSA"),
    ] {
        let line = serve_refuses(&[("JWT_ALGORITHM", alg), ("JWT_SIGNING_KEY_FILE", path)], "JWT_SIGNING_KEY_FILE");
        assert!(line.contains(kind) && line.contains(alg), "{alg}: says which key it needs: {line}");
    }
}

// ---------------------------------------------------------------- rotation and key switches

/// `tokensmith keys rotate` under PS256: the new key is PS256 too, and the old token keeps
/// verifying, downstream and on the server.
async fn rotation_under_ps256_keeps_old_tokens_verifying(backend: Backend) {
    let app = spawn_app_with(backend, &[("JWT_ALGORITHM", "PS256"), ("KEYS_RELOAD_INTERVAL", "1s")]).await;
    let (old, _) = app.alice().await;
    let old_kid = header(&old)["kid"].as_str().unwrap().to_owned();

    let out = app.cli(&["keys", "rotate"]);
    assert!(out.status.success(), "keys rotate failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("PS256"), "{}", String::from_utf8_lossy(&out.stdout));

    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let set = loop {
        let set = jwks(&app).await;
        if set["keys"].as_array().unwrap().len() == 2 {
            break set;
        }
        assert!(std::time::Instant::now() < deadline, "the running server never published the new key: {set}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for jwk in set["keys"].as_array().unwrap() {
        assert_describes(jwk, "PS256");
    }
    let (new, _) = app.login("alice", "correct horse").await;
    assert_ne!(header(&new)["kid"], old_kid.as_str(), "new tokens come from the new key");
    verify_with_jwks(&set, &new, "PS256");
    verify_with_jwks(&set, &old, "PS256");
    assert_server_accepts(&app, &old).await;

    let out = app.cli(&["keys", "list"]);
    let listing = String::from_utf8_lossy(&out.stdout);
    assert_eq!(listing.lines().filter(|l| l.contains("\tPS256\t")).count(), 2, "{listing}");
}

/// A server on the same database switched from RS256 to PS256: the RS256 key stays published
/// under RS256 and verifies its own tokens, but a token signed with that very key under PS256
/// (or one whose header merely claims another algorithm) is refused.
async fn a_key_verifies_only_its_own_algorithm(backend: Backend) {
    let app = spawn_app_with(backend, &[("JWT_ALGORITHM", "RS256"), ("KEYS_RELOAD_INTERVAL", "1h")]).await;
    let (rs_token, _) = app.alice().await;
    let rs_kid = header(&rs_token)["kid"].as_str().unwrap().to_owned();

    let mut env = app.env.clone();
    env.insert("JWT_ALGORITHM".to_owned(), "PS256".to_owned());
    let config = Config::from_lookup(&|name| env.get(name).cloned()).unwrap();
    let switched = Application::build(config).await.expect("the switched server builds");
    let ps = Http::new(switched.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(switched.run_until(async move {
        let _ = stopped.await;
    }));

    let set = ps.get("/.well-known/jwks.json").await.json();
    assert_describes(&jwk_with_kid(&set, &rs_kid), "RS256");
    let (ps_token, _) = ps.login("alice", "correct horse").await;
    assert_eq!(header(&ps_token)["alg"], "PS256");
    assert_describes(&jwk_with_kid(&set, header(&ps_token)["kid"].as_str().unwrap()), "PS256");
    let verify = |token: String| {
        let ps = &ps;
        async move { ps.post_json("/api/token/verify/", json!({"token": token})).await }
    };
    assert_eq!(verify(rs_token.clone()).await.status, 200, "the RS256 key still verifies its tokens");
    assert_eq!(verify(ps_token.clone()).await.status, 200);

    // The RS256 key's private half, as stored, signing the same claims under each RSA algorithm.
    let stored = app.store.all_signing_keys().await.unwrap();
    let rs_key = stored.iter().find(|k| k.kid == rs_kid).expect("the RS256 key is stored");
    assert_eq!(rs_key.algorithm, "RS256");
    let signing = EncodingKey::from_rsa_pem(rs_key.private_key_pem.as_bytes()).unwrap();
    let claims = claims(&rs_token);
    let sign = |alg: Algorithm| {
        let mut head = Header::new(alg);
        head.kid = Some(rs_kid.clone());
        jsonwebtoken::encode(&head, &claims, &signing).unwrap()
    };
    assert_eq!(verify(sign(Algorithm::RS256)).await.status, 200, "control: RS256 with the RS256 key verifies");
    for alg in [Algorithm::PS256, Algorithm::RS512, Algorithm::PS512] {
        assert_401(&verify(sign(alg)).await, TOKEN_INVALID);
    }

    // The genuine tokens with their headers' `alg` swapped for the other family's.
    for (token, claimed) in [(&rs_token, "PS256"), (&ps_token, "RS256")] {
        let mut head = header(token);
        head["alg"] = json!(claimed);
        let (_, rest) = token.split_once('.').unwrap();
        let relabelled = format!("{}.{rest}", URL_SAFE_NO_PAD.encode(head.to_string()));
        assert_401(&verify(relabelled).await, TOKEN_INVALID);
    }
    drop(stop);
}
