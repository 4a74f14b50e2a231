//! Django's `EmailValidator`, which Django's user model and DRF's `EmailField` apply: a dot-atom
//! or quoted local part, and a domain of dotted labels ending in a 2–63 character one, `localhost`,
//! or an address literal. Written out here rather than taken from a crate: the point is to
//! accept and refuse exactly what the Django a team is moving from accepts and refuses, and no
//! email crate follows Django's rules. An internationalised domain is taken label by label with
//! Unicode letters and digits where Django would first convert it to punycode.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::EMAIL_MAX_CHARS;

/// Whether Django would accept `email` as an address (it must not be empty).
pub fn is_valid_email(email: &str) -> bool {
    if email.is_empty() || email.chars().count() > EMAIL_MAX_CHARS {
        return false;
    }
    let Some((user, domain)) = email.rsplit_once('@') else { return false };
    (dot_atom(user) || quoted(user)) && (domain == "localhost" || domain_name(domain) || literal(domain))
}

fn atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~-".contains(c)
}

fn dot_atom(user: &str) -> bool {
    user.split('.').all(|atom| !atom.is_empty() && atom.chars().all(atext))
}

/// `"…"`: printable ASCII but `"` and `\`, which come escaped (`\"`, `\\`).
fn quoted(user: &str) -> bool {
    let Some(inner) = user.strip_prefix('"').and_then(|u| u.strip_suffix('"')) else { return false };
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if !chars.next().is_some_and(|e| e.is_ascii() && e != '\n' && e != '\r' && e != '\0') => {
                return false;
            }
            '\\' => {}
            '"' => return false,
            c if !c.is_ascii() || c.is_ascii_control() && c != '\t' => return false,
            _ => {}
        }
    }
    true
}

/// Labels of letters, digits and inner hyphens (at most 63 characters), at least two of them,
/// the last at least two characters and not ending in a hyphen.
fn domain_name(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    let Some((tld, rest)) = labels.split_last() else { return false };
    let letter_or_digit = |c: char| c.is_alphanumeric();
    let label = |l: &str| {
        let n = l.chars().count();
        (1..=63).contains(&n)
            && l.chars().all(|c| letter_or_digit(c) || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let tld_ok = (2..=63).contains(&tld.chars().count())
        && tld.chars().all(|c| letter_or_digit(c) || c == '-')
        && !tld.ends_with('-');
    !rest.is_empty() && rest.iter().all(|l| label(l)) && tld_ok
}

/// `[192.0.2.1]` or `[IPv6:2001:db8::1]`.
fn literal(domain: &str) -> bool {
    let Some(inner) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) else { return false };
    match inner.strip_prefix("IPv6:") {
        Some(v6) => v6.parse::<Ipv6Addr>().is_ok(),
        None => inner.parse::<Ipv4Addr>().is_ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_django_accepts() {
        for ok in [
            "bob@example.com",
            "first.last+tag@sub.example.co.uk",
            "o'brien@example.ie",
            "x@localhost",
            "\"a b\"@example.com",
            "user@[192.0.2.1]",
            "user@[IPv6:2001:db8::1]",
            "jorg@bücher.de",
            "a@xn--bcher-kva.de",
        ] {
            assert!(is_valid_email(ok), "{ok}");
        }
    }

    #[test]
    fn what_django_refuses() {
        for bad in [
            "",
            "e@",
            "@example.com",
            "a b@example.com",
            "a@b@example.com",
            "bob@",
            "bob@example",
            "bob@example.c",
            "bob@-example.com",
            "bob@example-.com",
            "bob@example.com-",
            ".bob@example.com",
            "bob.@example.com",
            "bo..b@example.com",
            "bob@exa mple.com",
            "bob@[300.1.1.1]",
            "plain",
        ] {
            assert!(!is_valid_email(bad), "{bad}");
        }
        assert!(!is_valid_email(&format!("{}@example.com", "a".repeat(250))));
    }
}
