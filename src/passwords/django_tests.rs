//! Django's formats: hashes Django 5.2.19 made (in the test venv, `make_password`) verify; what
//! is malformed or beyond a ceiling never panics, never matches, and is named without the hash.

use super::*;
use crate::passwords::check_stored_hash;

const PASSWORD: &str = "lètmein 🔑";

/// `make_password("lètmein 🔑", salt, hasher)` by Django 5.2.19, at its default costs.
const DJANGO: [&str; 7] = [
    "pbkdf2_sha256$1000000$seasalt2024abcdefgh$51QZe4wEXidtJy0S5ISQu71ASynJfKvC9t7sKycdkWY=",
    "pbkdf2_sha1$1000000$seasalt2024abcdefgh$DhTDa/HOlwszLjrH9fTAh/6gsO4=",
    "argon2$argon2id$v=19$m=102400,t=2,p=8$c2Vhc2FsdDIwMjRhYmNkZWZnaA$40n/qX95suKq4x3RkUUqCssYKU7V4tr7fk2iy2P7o50",
    "bcrypt_sha256$$2b$12$M7WjJCByhsSSVKi7ByLPm.xjbT2EPcjg2ujAJVB.b3WVVOVAgmjhS",
    "bcrypt$$2b$12$LjhSJ3k4BDebZFyRSIyHo.GTpT7RyRMk55.5oi50YcZpSfwby1VUy",
    "scrypt$16384$seasalt2024abcdefgh$8$5$Rib+JOxnodpWuPFkVUi/5ITtwW3AbVDRi9kPb9lORSOY1eem80MhJ+1a3NVYaZKZc1JfYbxAmvwk8rz9l39MTg==",
    "md5$seasalt2024abcdefgh$684f470ce5580bb18626457290b9b092",
];

/// Cheaper ones, for the many malformed variants below.
const PBKDF2_1000: &str = "pbkdf2_sha256$1000$seasalt$rm4xNGznWUi/NcYgguI9Fx1GzxmmnVaA8KPX69eUAvE=";
const SCRYPT_1024: &str =
    "scrypt$1024$seasalt$8$1$5zsXq3MtXxm/oRPkuqaP3Ac8/dL9jlbeOU2pD9/8XNzBzD73ZRFnrYL5avIqe8VfNfGDRrpJSVXRtI/dpwTt+g==";
/// Django's argon2 hasher with `memory_cost=64, time_cost=1, parallelism=2`, argon2id and argon2i.
const ARGON2ID_64: &str =
    "argon2$argon2id$v=19$m=64,t=1,p=2$c2Vhc2FsdDIwMjRhYmNkZWZnaA$koda98vHcJSF+951cz5q+5YFFoUDD126Us/neCtzGxc";
const ARGON2I_64: &str =
    "argon2$argon2i$v=19$m=64,t=1,p=2$c2Vhc2FsdDIwMjRhYmNkZWZnaA$lcJZPyMU6IswsNJbaksgaogeOU6z1rQmKpHgXJ4p0as";
/// bcrypt_sha256 of `"x" * 100 + "é"`: past bcrypt's 72 bytes, every byte still counts.
const BCRYPT_SHA256_LONG: &str = "bcrypt_sha256$$2b$12$QFFTavR0PaILJQH3PdxK..xm/Lfa9vIlWfXeQYA2Srly9jdYClJ.i";

fn verifies(password: &str, stored: &str) -> bool {
    DjangoHash::parse(stored).is_ok_and(|hash| hash.verify(password.as_bytes(), &mut Vec::new()))
}

fn refusal(stored: &str) -> String {
    check_stored_hash(stored).err().map(|e| e.to_string()).unwrap_or_else(|| "accepted".to_owned())
}

#[test]
fn every_hasher_verifies_what_django_made() {
    for stored in DJANGO {
        assert_eq!(check_stored_hash(stored), Ok(()), "{stored}");
        assert!(verifies(PASSWORD, stored), "{stored}");
        assert!(!verifies("lètmein 🔐", stored), "{stored}");
    }
    for stored in [PBKDF2_1000, SCRYPT_1024, ARGON2ID_64, ARGON2I_64] {
        assert!(verifies(PASSWORD, stored), "{stored}");
        assert!(!verifies("", stored), "{stored}");
    }
    let long = format!("{}é", "x".repeat(100));
    assert!(verifies(&long, BCRYPT_SHA256_LONG));
    assert!(!verifies(&format!("{}e", "x".repeat(100)), BCRYPT_SHA256_LONG));
    assert!(!verifies(&long[..72], BCRYPT_SHA256_LONG));
}

#[test]
fn hashers_are_named_as_django_names_them() {
    let names: Vec<_> =
        DJANGO.iter().map(|stored| DjangoHash::parse(stored).unwrap_or_else(|_| panic!()).hasher()).collect();
    assert_eq!(names, ["pbkdf2_sha256", "pbkdf2_sha1", "argon2", "bcrypt_sha256", "bcrypt", "scrypt", "md5"]);
}

#[test]
fn bcrypt_version_prefixes_are_kept_as_pyca_bcrypt_keeps_them() {
    let bcrypt = DJANGO[4];
    for version in ["2a", "2x", "2y"] {
        let other = bcrypt.replace("$$2b$", &format!("$${version}$"));
        assert!(verifies(PASSWORD, &other), "{other}");
    }
    assert_eq!(refusal(&bcrypt.replace("$$2b$", "$$2c$")), "bcrypt with an unknown version");
}

#[test]
fn a_plain_bcrypt_hash_never_matches_a_password_past_72_bytes() {
    // pyca/bcrypt 5, Django 5.2's, refuses such a password instead of cutting it.
    let password = "p".repeat(72);
    let made = bcrypt::hash_with_salt(&password, 4, [7; 16]).unwrap().format_for_version(bcrypt::Version::TwoB);
    let stored = format!("bcrypt${made}");
    assert!(verifies(&password, &stored));
    assert!(!verifies(&format!("{password}p"), &stored));
}

#[test]
fn only_the_exact_string_djangos_encoder_writes_is_read() {
    let variants = [
        PBKDF2_1000.replace("$1000$", "$01000$"),
        PBKDF2_1000.replace("$1000$", "$+1000$"),
        PBKDF2_1000.replace("$1000$", "$1_000$"),
        PBKDF2_1000.replace("$1000$", "$ 1000$"),
        PBKDF2_1000.replace("=", ""),
        PBKDF2_1000.replace("AvE=", "AvF="),
        format!("{PBKDF2_1000}$"),
        PBKDF2_1000.replace("pbkdf2_sha256", "PBKDF2_SHA256"),
        SCRYPT_1024.replace("$8$1$", "$08$1$"),
        SCRYPT_1024.replace("$8$1$", "$8$1$$"),
        DJANGO[4].replace("$12$", "$012$"),
        DJANGO[4].replace("$$2b$12$", "$$2b$$12$"),
        DJANGO[4].replace("$$2b", "$2b"),
        format!("{}a", DJANGO[4]),
        DJANGO[6].to_uppercase().replace("MD5$", "md5$"),
        DJANGO[2].replacen("argon2$", "argon2", 1),
        DJANGO[2].replace("argon2$argon2id", "argon2$$argon2id"),
    ];
    for stored in variants {
        assert_ne!(refusal(&stored), "accepted", "{stored}");
        assert!(!verifies(PASSWORD, &stored), "{stored}");
    }
}

#[test]
fn refusals_name_the_fault_and_never_the_hash() {
    let cases = [
        ("sha1$seasalt$0123456789abcdef0123456789abcdef01234567", "unknown hasher \"sha1\""),
        ("crypt$$abN8L5DQJm4cM", "unknown hasher \"crypt\""),
        ("5f4dcc3b5aa765d61d8327deb882cf99", "not a password hash in a known format"),
        ("Hash With Spaces$x", "not a password hash in a known format"),
        ("pbkdf2_sha256$0$seasalt$rm4xNGznWUi/NcYgguI9Fx1GzxmmnVaA8KPX69eUAvE=", "pbkdf2_sha256 with 0 iterations"),
        (
            "pbkdf2_sha256$x$seasalt$rm4xNGznWUi/NcYgguI9Fx1GzxmmnVaA8KPX69eUAvE=",
            "pbkdf2_sha256 with malformed iterations",
        ),
        ("pbkdf2_sha256$1000$$rm4xNGznWUi/NcYgguI9Fx1GzxmmnVaA8KPX69eUAvE=", "pbkdf2_sha256 with an empty salt"),
        ("pbkdf2_sha256$1000$seasalt$rm4xNGzn", "pbkdf2_sha256 with a malformed hash"),
        ("pbkdf2_sha1$1000$seasalt$rm4xNGznWUi/NcYgguI9Fx1GzxmmnVaA8KPX69eUAvE=", "pbkdf2_sha1 with a malformed hash"),
        ("pbkdf2_sha256$1000$seasalt", "pbkdf2_sha256 with a malformed hash"),
        ("md5$$684f470ce5580bb18626457290b9b092", "md5 with an empty salt"),
        ("md5$salt$684F470CE5580BB18626457290B9B092", "md5 with a malformed hash"),
        ("bcrypt$$2b$03$LjhSJ3k4BDebZFyRSIyHo.GTpT7RyRMk55.5oi50YcZpSfwby1VUy", "bcrypt with a cost below 4"),
        ("bcrypt$$2b$1x$LjhSJ3k4BDebZFyRSIyHo.GTpT7RyRMk55.5oi50YcZpSfwby1VUy", "bcrypt with a malformed cost"),
        ("bcrypt$$2b$12$LjhSJ3k4BDebZFyRSIyHo/GTpT7RyRMk55.5oi50YcZpSfwby1VUy", "bcrypt with a malformed salt"),
        ("bcrypt_sha256$$2b$12$M7WjJCByhsSSVKi7ByLPm", "bcrypt_sha256 with a malformed hash"),
        (
            "scrypt$1000$seasalt$8$1$5zsXq3MtXxm/oRPkuqaP3Ac8/dL9jlbeOU2pD9/8XNzBzD73ZRFnrYL5avIqe8VfNfGDRrpJSVXRtI/dpwTt+g==",
            "scrypt with malformed parameters",
        ),
        (
            "scrypt$1024$seasalt$0$1$5zsXq3MtXxm/oRPkuqaP3Ac8/dL9jlbeOU2pD9/8XNzBzD73ZRFnrYL5avIqe8VfNfGDRrpJSVXRtI/dpwTt+g==",
            "scrypt with malformed parameters",
        ),
        (
            "scrypt$65536$seasalt$1$1$5zsXq3MtXxm/oRPkuqaP3Ac8/dL9jlbeOU2pD9/8XNzBzD73ZRFnrYL5avIqe8VfNfGDRrpJSVXRtI/dpwTt+g==",
            "scrypt with malformed parameters",
        ),
        ("argon2$argon2id$v=19$m=102400,t=2,p=8$c2Vhc2FsdA$", "argon2 with a malformed hash"),
        (
            "argon2$argon2x$v=19$m=102400,t=2,p=8$c2Vhc2FsdA$40n/qX95suKq4x3RkUUqCssYKU7V4tr7fk2iy2P7o50",
            "argon2 with a malformed type",
        ),
    ];
    for (stored, phrase) in cases {
        assert_eq!(refusal(stored), phrase, "{stored}");
        assert!(!verifies(PASSWORD, stored), "{stored}");
    }
    assert_eq!(refusal(&format!("md5$salt${}", "a".repeat(600))), "longer than 512 characters");
}

#[test]
fn costs_beyond_the_ceilings_are_refused_before_any_work() {
    let hash = "rm4xNGznWUi/NcYgguI9Fx1GzxmmnVaA8KPX69eUAvE=";
    assert_eq!(refusal(&format!("pbkdf2_sha256$10000000$seasalt${hash}")), "accepted");
    for iterations in ["10000001", "4294967295", "4294967296", "99999999999999999999999"] {
        let phrase = refusal(&format!("pbkdf2_sha256${iterations}$seasalt${hash}"));
        let expected = if iterations.len() > 20 {
            "pbkdf2_sha256 with malformed iterations"
        } else {
            "pbkdf2_sha256 iterations above the 10,000,000 ceiling"
        };
        assert_eq!(phrase, expected, "{iterations}");
    }
    let bcrypt = |cost: &str| format!("bcrypt$$2b${cost}$LjhSJ3k4BDebZFyRSIyHo.GTpT7RyRMk55.5oi50YcZpSfwby1VUy");
    assert_eq!(refusal(&bcrypt("16")), "accepted");
    assert_eq!(refusal(&bcrypt("17")), "bcrypt cost above the 16 ceiling");
    assert_eq!(refusal(&bcrypt("31")), "bcrypt cost above the 16 ceiling");
    let scrypt_hash = "5zsXq3MtXxm/oRPkuqaP3Ac8/dL9jlbeOU2pD9/8XNzBzD73ZRFnrYL5avIqe8VfNfGDRrpJSVXRtI/dpwTt+g==";
    let scrypt = |n: u64, r: u64, p: u64| refusal(&format!("scrypt${n}$seasalt${r}${p}${scrypt_hash}"));
    assert_eq!(scrypt(1 << 17, 8, 4), "accepted");
    assert_eq!(scrypt(1 << 19, 8, 1), "scrypt memory above the 256 MiB ceiling");
    assert_eq!(scrypt(2, 1 << 21, 1), "scrypt memory above the 256 MiB ceiling");
    // A small N with a large r and p takes its memory in the p lanes (128·r each), not in N.
    assert_eq!(scrypt(2, 1 << 20, 4), "scrypt memory above the 256 MiB ceiling");
    assert_eq!(scrypt(1 << 17, 8, 9), "scrypt memory × parallelism above the 1 GiB ceiling");
    assert_eq!(scrypt(1 << 14, 8, 4_000_000_000), "scrypt memory above the 256 MiB ceiling");
    assert_eq!(scrypt(1 << 62, 1 << 40, 1), "scrypt memory above the 256 MiB ceiling");
    let argon2 = |params: &str| {
        refusal(&format!(
            "argon2$argon2id$v=19${params}$c2Vhc2FsdDIwMjRhYmNkZWZnaA$40n/qX95suKq4x3RkUUqCssYKU7V4tr7fk2iy2P7o50"
        ))
    };
    assert_eq!(argon2("m=262144,t=8,p=8"), "accepted");
    assert_eq!(argon2("m=262145,t=2,p=8"), "argon2 memory above the 256 MiB ceiling");
    assert_eq!(argon2("m=102400,t=21,p=8"), "argon2 memory × passes above the 2 GiB ceiling");
}

#[test]
fn unusable_and_tokensmiths_own_hashes_are_fine_to_store() {
    for stored in ["", "!", "!Xq3ZzVwWb0uCjJ7ai1Tn5hTqjQ5cEsZ0mW7S6oRk", "!anything$at$all"] {
        assert_eq!(check_stored_hash(stored), Ok(()), "{stored:?}");
    }
    let own = crate::passwords::hash_blocking("correct horse").unwrap();
    assert_eq!(check_stored_hash(&own), Ok(()));
}

#[test]
fn truncated_and_mangled_hashes_never_panic_nor_match() {
    // Django's own argon2 (100 MiB) is left out: its truncated hashes are still hashes, of 100 MiB each.
    let cheap = [PBKDF2_1000, SCRYPT_1024, BCRYPT_SHA256_LONG, ARGON2ID_64, ARGON2I_64];
    for stored in DJANGO.iter().filter(|s| !s.starts_with("argon2")).chain(&cheap) {
        for end in 0..stored.len() {
            let Some(prefix) = stored.get(..end) else { continue };
            assert!(!verifies(PASSWORD, prefix), "{prefix}");
            let _ = check_stored_hash(prefix);
        }
        for (at, _) in stored.char_indices().step_by(3) {
            let mut mangled = stored.to_string();
            mangled.insert(at, '$');
            assert!(!verifies(PASSWORD, &mangled) || mangled == *stored, "{mangled}");
        }
    }
}
