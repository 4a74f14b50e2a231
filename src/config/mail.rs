//! The password-reset mail settings: `SMTP_URL`, `EMAIL_FROM`, `PASSWORD_RESET_URL` and
//! `PASSWORD_RESET_TIMEOUT`. Unset `SMTP_URL` turns password reset off (its endpoints are 404);
//! set, the other three are checked here so a typo stops the process at start, not at the first
//! forgotten password.

use std::time::Duration;

use secrecy::SecretString;

use super::{
    ConfigError,
    vars::{Vars, positive_duration},
};

/// How the connection to the SMTP server is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// `smtp://`: plain SMTP, upgraded with STARTTLS when the server offers it.
    Opportunistic,
    /// `smtps://`: TLS from the first byte.
    Implicit,
}

/// Where mail goes and what it says. `SMTP_URL` may carry a password: the URL is kept secret
/// and only its parts are read (by `mail`); `Debug` shows it redacted.
#[derive(Debug, Clone)]
pub struct MailConfig {
    pub smtp_url: SecretString,
    pub smtp_host: String,
    pub smtp_port: u16,
    pub smtp_security: SmtpSecurity,
    /// The `From` of every mail, as written (`Name <addr@host>` or `addr@host`).
    pub from: String,
    /// The link a reset mail carries, with `{token}` where the token goes.
    pub reset_url: String,
    /// How long a reset token works.
    pub reset_timeout: Duration,
}

impl MailConfig {
    /// `None` when `SMTP_URL` is unset.
    pub(super) fn read(vars: &Vars<'_>) -> Result<Option<Self>, ConfigError> {
        let Some(raw) = vars.raw("SMTP_URL") else { return Ok(None) };
        let (smtp_host, smtp_port, smtp_security) =
            parse_smtp_url(raw.trim()).map_err(|m| ConfigError::new("SMTP_URL", m))?;
        let from =
            vars.raw("EMAIL_FROM").ok_or_else(|| ConfigError::new("EMAIL_FROM", "required when SMTP_URL is set"))?;
        let from = from.trim().to_owned();
        from.parse::<lettre::message::Mailbox>().map_err(|_| {
            ConfigError::new("EMAIL_FROM", format!("not an address such as Name <noreply@example.com>: {from:?}"))
        })?;
        let reset_url = vars
            .raw("PASSWORD_RESET_URL")
            .ok_or_else(|| ConfigError::new("PASSWORD_RESET_URL", "required when SMTP_URL is set"))?;
        let reset_url = check_reset_url(reset_url.trim()).map_err(|m| ConfigError::new("PASSWORD_RESET_URL", m))?;
        Ok(Some(Self {
            smtp_url: SecretString::from(raw),
            smtp_host,
            smtp_port,
            smtp_security,
            from,
            reset_url,
            reset_timeout: vars.parsed("PASSWORD_RESET_TIMEOUT", "1h", positive_duration)?,
        }))
    }
}

/// `smtp://[user:pass@]host[:port]` or `smtps://…`: the host, the port (25 or 465 by default)
/// and the security. The message never repeats the URL, which may hold a password.
fn parse_smtp_url(raw: &str) -> Result<(String, u16, SmtpSecurity), String> {
    let url = url::Url::parse(raw).map_err(|_| "not a URL; write smtp://host:port or smtps://host:port".to_owned())?;
    let (security, default_port) = match url.scheme() {
        "smtp" => (SmtpSecurity::Opportunistic, 25),
        "smtps" => (SmtpSecurity::Implicit, 465),
        other => return Err(format!("unsupported scheme {other:?}; use smtp:// or smtps://")),
    };
    let host = match url.host() {
        Some(url::Host::Domain(d)) if !d.is_empty() => d.to_owned(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        _ => return Err("has no host; write smtp://host:port".to_owned()),
    };
    if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
        return Err("takes no path or query; write smtp://[user:pass@]host[:port]".to_owned());
    }
    if url.password().is_some() && url.username().is_empty() {
        return Err("has a password but no user name".to_owned());
    }
    Ok((host, url.port().unwrap_or(default_port), security))
}

/// An http(s) URL with `{token}` in it.
fn check_reset_url(raw: &str) -> Result<String, String> {
    if !raw.contains("{token}") {
        return Err(format!("must contain {{token}}, where the reset token goes: {raw:?}"));
    }
    let url = url::Url::parse(&raw.replace("{token}", "t")).map_err(|_| format!("not a URL: {raw:?}"))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(format!("must be an http(s):// URL, got {raw:?}"));
    }
    Ok(raw.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls() {
        assert_eq!(
            parse_smtp_url("smtp://mail.example.com").unwrap(),
            ("mail.example.com".into(), 25, SmtpSecurity::Opportunistic)
        );
        assert_eq!(
            parse_smtp_url("smtps://u:p@127.0.0.1:2465").unwrap(),
            ("127.0.0.1".into(), 2465, SmtpSecurity::Implicit)
        );
        assert!(parse_smtp_url("http://mail.example.com").is_err());
        assert!(parse_smtp_url("smtp://:secret@host").is_err());
        assert!(!parse_smtp_url("smtp//u:hunter2@host").unwrap_err().contains("hunter2"));
    }

    #[test]
    fn reset_urls() {
        assert!(check_reset_url("https://app.example.com/reset?token={token}").is_ok());
        assert!(check_reset_url("https://app.example.com/reset").is_err());
        assert!(check_reset_url("ftp://x/{token}").is_err());
    }
}
