//! Reading settings: from the process environment or a map (tests), with the parsers every
//! setting shares. Their messages are what an operator reads after the variable's name.

use std::{str::FromStr, time::Duration};

use super::ConfigError;

/// Where settings are read from: the process environment, or a map in tests.
pub(super) struct Vars<'a>(pub(super) &'a dyn Fn(&str) -> Option<String>);

impl Vars<'_> {
    /// A missing or empty variable is `None`.
    pub(super) fn raw(&self, var: &'static str) -> Option<String> {
        (self.0)(var).filter(|v| !v.trim().is_empty())
    }

    pub(super) fn parsed<T>(
        &self,
        var: &'static str,
        default: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        let value = self.raw(var).unwrap_or_else(|| default.to_owned());
        parse(value.trim()).map_err(|message| ConfigError::new(var, message))
    }

    pub(super) fn list(&self, var: &'static str) -> Vec<String> {
        self.raw(var)
            .map(|v| v.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect())
            .unwrap_or_default()
    }
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|_| format!("invalid duration {s:?}; write it as 90s, 5m, 12h or 7d"))
}

pub(super) fn positive_number(s: &str) -> Result<u32, String> {
    match parse_number::<u32>(s)? {
        0 => Err(format!("must be at least 1, got {s:?}")),
        n => Ok(n),
    }
}

pub(super) fn positive_duration(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err(format!("must be longer than zero, got {s:?}")),
        d => Ok(d),
    }
}

pub(super) fn parse_bool(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("expected true or false, got {s:?}")),
    }
}

pub(super) fn parse_number<T: FromStr>(s: &str) -> Result<T, String> {
    s.parse().map_err(|_| format!("expected a whole number, got {s:?}"))
}

/// `https://` is required for Clerk and other issuers, except plain http to a loopback
/// host, which local development and tests need.
pub fn check_issuer_url(value: &str) -> Result<(), String> {
    let url = url::Url::parse(value).map_err(|_| format!("not a URL: {value:?}"))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(format!("must be an https:// URL (http:// only to a loopback host), got {value:?}")),
    }
}
