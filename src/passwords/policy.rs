//! The password policy: Django's four default password validators (Django 5.2,
//! `django/contrib/auth/password_validation.py`), with Django's messages, so a password a Django
//! site would refuse is refused here in the same words, and one it accepts is accepted. Every
//! `Accounts` operation that sets a password asks it (`Accounts::check_new_password`): the CLI,
//! the admin API, registration and the users' own password changes alike.
//!
//! Django's rules are written in Python's terms (`str.lower`, `str.strip`, `str.isdigit`,
//! `re`'s `\W`, `difflib.SequenceMatcher.quick_ratio`); each is reproduced below over code points,
//! as Python's strings are, and `tests/api/password_policy.rs` compares the whole policy with the
//! real Django on a few hundred passwords. Character classes come from ICU's Unicode data
//! (`icu_properties`, already in the build through `url`), which may be a newer Unicode than the
//! Python that runs Django: the two can differ only on characters assigned since.

use std::{
    collections::{HashMap, HashSet},
    sync::LazyLock,
};

use icu_properties::{
    CodePointMapData,
    props::{GeneralCategory, GeneralCategoryGroup, NumericType},
};

/// What a password is compared with (Django's UserAttributeSimilarityValidator attributes).
#[derive(Debug, Clone, Copy)]
pub struct PasswordOwner<'a> {
    pub username: &'a str,
    pub email: &'a str,
    pub first_name: &'a str,
    pub last_name: &'a str,
}

/// Why a password was refused: Django's messages, in Django's validator order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.join(" "))]
pub struct PasswordRejected(pub Vec<String>);

/// Django's `AUTH_PASSWORD_VALIDATORS` defaults, with `MinimumLengthValidator`'s `min_length`.
#[derive(Debug, Clone)]
pub struct PasswordPolicy {
    min_length: usize,
}

impl PasswordPolicy {
    pub fn new(min_length: usize) -> Self {
        Self { min_length }
    }

    /// Every rule is applied, as Django's `validate_password` does, so a refusal lists all that
    /// failed, not just the first.
    pub fn check(&self, password: &str, owner: &PasswordOwner<'_>) -> Result<(), PasswordRejected> {
        let mut messages = Vec::new();
        if let Some(attribute) = too_similar(password, owner) {
            messages.push(format!("The password is too similar to the {attribute}."));
        }
        if password.chars().count() < self.min_length {
            let unit = if self.min_length == 1 { "character" } else { "characters" };
            messages.push(format!("This password is too short. It must contain at least {} {unit}.", self.min_length));
        }
        if is_common(password) {
            messages.push("This password is too common.".to_owned());
        }
        if is_digit(password) {
            messages.push("This password is entirely numeric.".to_owned());
        }
        if messages.is_empty() { Ok(()) } else { Err(PasswordRejected(messages)) }
    }
}

/// UserAttributeSimilarityValidator's `max_similarity`.
const MAX_SIMILARITY: f64 = 0.7;

/// UserAttributeSimilarityValidator: the verbose name of the first attribute (in Django's order)
/// the password is too similar to. Django raises at the first, so there is one message at most.
fn too_similar(password: &str, owner: &PasswordOwner<'_>) -> Option<&'static str> {
    let password: Vec<char> = password.to_lowercase().chars().collect();
    let attributes = [
        (owner.username, "username"),
        (owner.first_name, "first name"),
        (owner.last_name, "last name"),
        (owner.email, "email address"),
    ];
    attributes.into_iter().find(|(value, _)| !value.is_empty() && similar(&password, value)).map(|(_, name)| name)
}

/// Whether `password` (lowercased) is too similar to `value`, to any of its parts
/// (`re.split(r"\W+", value)`) or to the whole of it.
fn similar(password: &[char], value: &str) -> bool {
    let value = value.to_lowercase();
    let mut parts = split_on_non_word(&value);
    parts.push(&value);
    parts.into_iter().any(|part| {
        let part: Vec<char> = part.chars().collect();
        !exceeds_maximum_length_ratio(password, &part) && quick_ratio(password, &part) >= MAX_SIMILARITY
    })
}

/// Django's shortcut: a value a tenth of the password's length or less cannot reach the ratio,
/// so it is not compared. Same arithmetic, in floating point, as Django's.
fn exceeds_maximum_length_ratio(password: &[char], value: &[char]) -> bool {
    let length_bound_similarity = MAX_SIMILARITY / 2.0 * password.len() as f64;
    password.len() >= 10 * value.len() && (value.len() as f64) < length_bound_similarity
}

/// `SequenceMatcher(a=a, b=b).quick_ratio()`: twice the size of the multiset intersection over
/// the total length; 1.0 when both are empty.
fn quick_ratio(a: &[char], b: &[char]) -> f64 {
    let mut available: HashMap<char, usize> = HashMap::new();
    for &c in b {
        *available.entry(c).or_default() += 1;
    }
    let matches = a
        .iter()
        .filter(|c| match available.get_mut(c) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        })
        .count();
    let length = a.len() + b.len();
    if length == 0 { 1.0 } else { 2.0 * matches as f64 / length as f64 }
}

/// `re.split(r"\W+", value)`: the pieces between runs of non-word characters, with an empty
/// piece before a leading run and after a trailing one, as Python gives them.
fn split_on_non_word(value: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut in_run = false;
    for (i, c) in value.char_indices() {
        if is_word(c) {
            if in_run {
                start = i;
                in_run = false;
            }
        } else if !in_run {
            parts.push(&value[start..i]);
            in_run = true;
        }
    }
    parts.push(if in_run { "" } else { &value[start..] });
    parts
}

/// Python's `\w` in a str pattern: `_`, or a character `str.isalnum()` accepts, i.e. a letter
/// (general category L*) or a character with any numeric type (decimal, digit or numeric,
/// which takes in Nd, Nl, No and CJK numerals). Rust's `char::is_alphanumeric` differs: it takes
/// combining marks and other `Alphabetic` symbols (Ⓐ) that Python does not.
fn is_word(c: char) -> bool {
    c == '_'
        || GeneralCategoryGroup::Letter.contains(CodePointMapData::<GeneralCategory>::new().get(c))
        || CodePointMapData::<NumericType>::new().get(c) != NumericType::None
}

/// Python's `str.isdigit()`: not empty, and every character has numeric type Decimal (Nd: '7',
/// '٧', '७', '７') or Digit (superscripts, circled digits: '²', '①'), per the Unicode data
/// Python's own `unicodedata` is built from. Not fractions or Roman numerals ('½', 'Ⅻ', type
/// Numeric), which `char::is_numeric` would take; `char::is_ascii_digit` would miss '٧'.
fn is_digit(password: &str) -> bool {
    let numeric_type = CodePointMapData::<NumericType>::new();
    !password.is_empty()
        && password.chars().all(|c| matches!(numeric_type.get(c), NumericType::Decimal | NumericType::Digit))
}

/// Django's list of common passwords (19,640 of them, lowercased), as Django ships it,
/// decompressed. BSD-3-Clause, © Django Software Foundation and individual contributors: see
/// `common-passwords.LICENSE` beside it.
static COMMON_PASSWORDS: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| include_str!("common-passwords.txt").lines().map(python_strip).collect());

/// CommonPasswordValidator: `password.lower().strip() in passwords`.
fn is_common(password: &str) -> bool {
    COMMON_PASSWORDS.contains(python_strip(&password.to_lowercase()))
}

/// Python's `str.strip()`: Unicode whitespace (what `char::is_whitespace` takes) and also the
/// ASCII separators U+001C..U+001F, which Python counts as whitespace and Rust does not.
fn python_strip(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
