//! The password policy says what Django says: a few hundred passwords and owners (common
//! passwords in other cases and with space around them, digits of many scripts, passwords like
//! a username, a name or an email address, short, long and non-ASCII ones) are put to the real
//! Django 5.2's `validate_password` with its four default validators
//! (`tests/python/password_policy.py`) and to tokensmith's `PasswordPolicy`, and every message
//! must be the same, in the same order. And `PASSWORD_MIN_LENGTH`, which sets the policy's
//! minimum, is checked at start.

use std::{
    io::Write,
    process::{Command, Stdio},
};

use serde_json::{Value, json};
use tokensmith::passwords::{PasswordOwner, PasswordPolicy, PasswordRejected};

use crate::{
    config::{config_from, serve_refuses},
    python,
};

/// One password and its owner's attributes, as the script reads them.
struct Case {
    password: String,
    username: String,
    email: String,
    first_name: String,
    last_name: String,
}

impl Case {
    fn json(&self) -> Value {
        json!({
            "password": self.password, "username": self.username, "email": self.email,
            "first_name": self.first_name, "last_name": self.last_name,
        })
    }

    fn owner(&self) -> PasswordOwner<'_> {
        PasswordOwner {
            username: &self.username,
            email: &self.email,
            first_name: &self.first_name,
            last_name: &self.last_name,
        }
    }
}

/// Owners as (username, email, first name, last name): punctuation, empty attributes, non-ASCII
/// names, a Greek final sigma, a dotted capital I, runs of separators, circled letters and
/// combining marks (which Python's `\W` splits at).
const OWNERS: [[&str; 4]; 9] = [
    ["alice", "alice@example.com", "Alice", "Liddell"],
    ["john.smith", "john.smith@wonderland.org", "John", "Smith -- Jones"],
    ["z_oe+99", "zoë.o'brien@example.co.uk", "Zoë", "O'Brien-Müller"],
    ["", "", "", ""],
    ["ΣΟΦΙΑΣ", "sofias@παράδειγμα.ελ", "Σοφία", "Παπαδοπούλου"],
    ["İlker", "i̇lker@istanbul.example", "İlker", "Yıldız"],
    ["bob", "a@b.", "", "Bob"],
    ["jürgen_straße", "j.s@x.de", "Jürgen", "Straße"],
    ["carol", "carol@example.org", "Ⓒⓐⓡⓞⓛ\u{301}Bob", "Berg"],
];

/// Passwords put to every owner: like the owners' attributes or parts of them, short and long,
/// numeric, non-ASCII.
fn passwords() -> Vec<String> {
    let mut passwords: Vec<String> = [
        "",
        "a",
        "abc!xyz",
        "correct horse battery staple",
        "alice",
        "Alice1",
        "ALICE.LIDDELL",
        "liddell-alice",
        "ecila",
        "example",
        "example.com!",
        "alice@example.com",
        "JohnSmith",
        "smith.john",
        "j0hn5m1th",
        "wonderland",
        "john.smith@wonderland.org",
        "zoë",
        "ZOË-O'BRIEN",
        "obrienmuller",
        "Müller99",
        "sofia",
        "σοφιας",
        "ΣΟΦΙΑΣ!",
        "παπαδοπουλου",
        "ilker",
        "İLKER",
        "i̇lker123",
        "yildiz",
        "yıldız",
        "b",
        "bob1",
        "bobbob",
        "jürgen",
        "STRASSE",
        "straße",
        "strasse-jurgen",
        "90817263545",
        "12345678",
        "٠١٢٣٤٥٦٧٨٩",
        "१२३४५६७८",
        "１２３４５６７８",
        "¹²³⁴⁵⁶⁷⁸",
        "①②③④⑤⑥⑦⑧",
        "½½½½½½½½",
        "ⅫⅫⅫⅫⅫⅫⅫⅫ",
        "𝟏𝟐𝟑𝟒𝟓𝟔𝟕𝟖",
        "1234 5678",
        "٣",
        "七八九十百千万億",
        "ééééééé",
        "éééééééé",
        "пароль",
        "пароль12",
        "🔑🔑🔑🔑🔑🔑🔑",
        "🔑🔑🔑🔑🔑🔑🔑🔑",
        "e\u{301}e\u{301}e\u{301}e\u{301}",
        "tab\there",
        "nul\u{0}byte",
        "ǅemal-ǆ",
        "Ⓐⓛⓘⓒⓔ",
    ]
    .map(str::to_owned)
    .to_vec();
    passwords.push("a".repeat(500));
    passwords.push("alice".repeat(3));
    passwords.push("x".repeat(49) + "alice");
    passwords.push("correct horse battery staple ".repeat(40));
    passwords
}

/// Common passwords (a sample of Django's list) as people type them: other cases, space or
/// separators around them, a character added.
fn common_variants() -> Vec<String> {
    let list = include_str!("../../src/passwords/common-passwords.txt");
    let spaces = [" ", "\t", "\n", "\u{a0}", "\u{3000}", "\u{1c}", "\u{2028}", "\u{200b}"];
    let mut variants = Vec::new();
    for (i, word) in list.lines().step_by(331).enumerate() {
        let space = spaces[i % spaces.len()];
        variants.push(word.to_owned());
        variants.push(word.to_uppercase());
        variants.push(format!("{space}{word}{space}"));
        variants.push(format!("{}{}", word.get(..1).unwrap_or("").to_uppercase(), word.get(1..).unwrap_or("")));
        variants.push(format!("{word}!"));
    }
    variants
}

fn cases() -> Vec<Case> {
    let case = |password: &str, owner: &[&str; 4]| Case {
        password: password.to_owned(),
        username: owner[0].to_owned(),
        email: owner[1].to_owned(),
        first_name: owner[2].to_owned(),
        last_name: owner[3].to_owned(),
    };
    let mut cases: Vec<Case> =
        OWNERS.iter().flat_map(|owner| passwords().into_iter().map(|p| case(&p, owner))).collect();
    // The common passwords against two owners, one of whose names is itself common.
    for (i, password) in common_variants().iter().enumerate() {
        cases.push(case(password, &OWNERS[i % 2]));
    }
    cases
}

/// Django's messages for each case, with MinimumLengthValidator's `min_length`.
fn djangos_messages(cases: &[Case], min_length: usize) -> Vec<Vec<String>> {
    let input = Value::Array(cases.iter().map(Case::json).collect()).to_string();
    let mut child = Command::new(python::python())
        .arg(python::scripts().join("password_policy.py"))
        .arg(min_length.to_string())
        .env_remove("PYTHONPATH")
        .env_remove("PYTHONHOME")
        .env_remove("DJANGO_SETTINGS_MODULE")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the venv's python runs");
    let mut stdin = child.stdin.take().unwrap();
    // Written from another thread, so a script that writes before it has read all cannot block.
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().expect("waiting for python");
    writer.join().unwrap().expect("the cases reach the script");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "password_policy.py failed ({}):\n{stdout}\n{stderr}", output.status);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("password_policy.py printed no JSON ({e}):\n{stdout}"))
}

fn tokensmiths_messages(policy: &PasswordPolicy, case: &Case) -> Vec<String> {
    match policy.check(&case.password, &case.owner()) {
        Ok(()) => Vec::new(),
        Err(PasswordRejected(messages)) => messages,
    }
}

#[test]
fn the_policy_gives_djangos_messages_for_every_password() {
    let cases = cases();
    assert!(cases.len() > 500, "{} cases", cases.len());
    for min_length in [8, 1, 12] {
        let django = djangos_messages(&cases, min_length);
        assert_eq!(django.len(), cases.len());
        let policy = PasswordPolicy::new(min_length);
        let differences: Vec<String> = cases
            .iter()
            .zip(&django)
            .filter_map(|(case, django)| {
                let ours = tokensmiths_messages(&policy, case);
                (ours != *django).then(|| format!("{}\n  Django: {django:?}\n  tokensmith: {ours:?}", case.json()))
            })
            .collect();
        assert!(differences.is_empty(), "min_length {min_length}:\n{}", differences.join("\n"));
        // Each rule was met by some case, so none is compared only on passwords it accepts.
        let said: Vec<&String> = django.iter().flatten().collect();
        for start in ["The password is too similar", "This password is too short", "This password is too common"] {
            assert!(said.iter().any(|m| m.starts_with(start)), "no case where Django said {start:?}");
        }
        assert!(said.iter().any(|m| *m == "This password is entirely numeric."));
    }
}

#[test]
fn password_min_length_is_a_count_from_1_to_4096() {
    for bad in ["0", "-1", "eight", "8.5", "4097"] {
        let line = serve_refuses(&[("PASSWORD_MIN_LENGTH", bad)], "PASSWORD_MIN_LENGTH");
        assert!(line.contains(bad) || bad == "0", "the error shows the rejected value: {line}");
    }
    assert_eq!(config_from(&[]).unwrap().password_min_length, 8, "Django's default");
    assert_eq!(config_from(&[("PASSWORD_MIN_LENGTH", "12")]).unwrap().password_min_length, 12);
    assert_eq!(config_from(&[("PASSWORD_MIN_LENGTH", "4096")]).unwrap().password_min_length, 4096);
}
