//! Each of Django's four rules alone, with the messages Django 5.2 gives for the same inputs
//! (checked with its `validate_password`); `tests/api/password_policy.rs` compares many more
//! cases with the real Django.

use super::*;

const ALICE: PasswordOwner<'static> =
    PasswordOwner { username: "alice", email: "alice@example.com", first_name: "Alice", last_name: "Liddell" };
const NOBODY: PasswordOwner<'static> = PasswordOwner { username: "", email: "", first_name: "", last_name: "" };

const SHORT: &str = "This password is too short. It must contain at least 8 characters.";
const COMMON: &str = "This password is too common.";
const NUMERIC: &str = "This password is entirely numeric.";

/// Django's messages for `password`, none when it is accepted.
fn messages(password: &str, owner: &PasswordOwner<'_>) -> Vec<String> {
    match PasswordPolicy::new(8).check(password, owner) {
        Ok(()) => Vec::new(),
        Err(PasswordRejected(messages)) => messages,
    }
}

#[test]
fn a_long_uncommon_unrelated_password_is_accepted() {
    assert_eq!(PasswordPolicy::new(8).check("correct horse battery staple", &ALICE), Ok(()));
    assert_eq!(messages("ünïcödé-pässwörd-🔑", &ALICE), Vec::<String>::new());
}

#[test]
fn a_password_like_an_attribute_names_the_first_one_in_djangos_order() {
    let john = PasswordOwner { username: "john.smith", ..ALICE };
    assert_eq!(messages("JohnSmith", &john), ["The password is too similar to the username."]);
    // "liddell" is 0.7 of "liddell-alice"; "alice" only 0.55.
    assert_eq!(messages("liddell-alice", &ALICE), ["The password is too similar to the last name."]);
    // A part of the email address, split at non-word characters.
    let wonder = PasswordOwner { email: "alice@wonderland.org", ..ALICE };
    assert_eq!(messages("wonderland!", &wonder), ["The password is too similar to the email address."]);
    let first = PasswordOwner { username: "x", first_name: "Bartholomew", ..ALICE };
    assert_eq!(messages("bartholomew1", &first), ["The password is too similar to the first name."]);
    // Similar to the username and the first name: one message, the username's.
    assert_eq!(
        messages("alice", &ALICE),
        ["The password is too similar to the username.", SHORT, COMMON],
        "every rule is applied, the similarity one first"
    );
}

#[test]
fn an_empty_password_is_like_an_empty_part_of_an_attribute() {
    // Django splits "a@b." into "a", "b" and "", and "" is like "".
    let owner = PasswordOwner { email: "a@b.", ..ALICE };
    assert_eq!(messages("", &owner), ["The password is too similar to the email address.", SHORT]);
    assert_eq!(messages("", &NOBODY), [SHORT]);
}

#[test]
fn the_similarity_rule_compares_lowercased_code_points() {
    // "İ" lowercases to "i" and a combining dot, two code points, as in Python.
    let owner = PasswordOwner { username: "i\u{307}stanbul", ..NOBODY };
    assert_eq!(messages("İstanbul99", &owner), ["The password is too similar to the username."]);
}

#[test]
fn words_split_as_pythons_regex_does() {
    assert_eq!(split_on_non_word(".a..b."), ["", "a", "b", ""]);
    assert_eq!(split_on_non_word(""), [""]);
    assert_eq!(split_on_non_word("john_smith-99"), ["john_smith", "99"]);
    // Python's \w: letters of every case class, numbers of every numeric type, and `_`; not
    // combining marks or circled letters.
    assert!(['ǅ', '½', '_', '٣', '七'].into_iter().all(is_word));
    assert!(!['Ⓐ', '\u{301}', '-', ' '].into_iter().any(is_word));
}

#[test]
fn quick_ratio_counts_shared_characters_once_each() {
    let chars = |s: &str| s.chars().collect::<Vec<_>>();
    assert_eq!(quick_ratio(&chars("aab"), &chars("ab")), 0.8);
    assert_eq!(quick_ratio(&chars("abc"), &chars("xyz")), 0.0);
    assert_eq!(quick_ratio(&[], &[]), 1.0);
}

#[test]
fn a_short_password_is_refused_counting_characters_not_bytes() {
    assert_eq!(messages("abc!xyz", &NOBODY), [SHORT]);
    assert_eq!(messages("ééééééé", &NOBODY), [SHORT], "7 characters in 14 bytes");
    assert_eq!(messages("éééééééé", &NOBODY), Vec::<String>::new());
    let twelve = PasswordPolicy::new(12).check("eleven-char", &NOBODY).unwrap_err();
    assert_eq!(twelve.0, ["This password is too short. It must contain at least 12 characters."]);
    let one = PasswordPolicy::new(1).check("", &NOBODY).unwrap_err();
    assert_eq!(one.0, ["This password is too short. It must contain at least 1 character."]);
}

#[test]
fn a_common_password_is_refused_whatever_its_case_and_surrounding_space() {
    for password in ["Password", "PASSWORD", " password\t", "\u{1c}password\n", "\u{3000}Password\u{a0}"] {
        assert_eq!(messages(password, &NOBODY), [COMMON], "{password:?}");
    }
    assert_eq!(messages("пароль12", &NOBODY), Vec::<String>::new());
    assert_eq!(messages("привет", &NOBODY), [SHORT, COMMON], "the list holds non-ASCII passwords too");
    assert_eq!(messages("pass word", &NOBODY), Vec::<String>::new(), "inner space counts");
}

#[test]
fn a_password_of_digits_of_any_script_is_refused() {
    for password in ["90817263545", "٠١٢٣٤٥٦٧٨٩", "१२३४५६७८९", "１２３４５６７８", "¹²³⁴⁵⁶⁷⁸", "①②③④⑤⑥⑦⑧"]
    {
        assert_eq!(messages(password, &NOBODY), [NUMERIC], "{password:?}");
    }
    assert_eq!(messages("12345678", &NOBODY), [COMMON, NUMERIC]);
    // Numbers that are not digits, and digits with something else.
    for password in ["½½½½½½½½", "ⅫⅫⅫⅫⅫⅫⅫⅫ", "1234 5678", "20251201x"] {
        assert_eq!(messages(password, &NOBODY), Vec::<String>::new(), "{password:?}");
    }
}

#[test]
fn the_refusal_reads_as_all_its_messages() {
    let rejected = PasswordPolicy::new(8).check("1234", &NOBODY).unwrap_err();
    assert_eq!(rejected.to_string(), format!("{SHORT} {COMMON} {NUMERIC}"));
}
