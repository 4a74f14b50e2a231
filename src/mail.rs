//! Sending mail over SMTP (lettre on rustls/aws-lc-rs): the password-reset mail. `smtp://` is
//! plain SMTP upgraded with STARTTLS when the server offers it, `smtps://` is TLS throughout.
//! Failures are the caller's to log and count; nothing here logs the URL (it may hold a password).

use std::time::Duration;

use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, header::ContentType},
    transport::smtp::{
        authentication::Credentials,
        client::{Tls, TlsParameters},
    },
};
use secrecy::ExposeSecret;

use crate::config::{MailConfig, SmtpSecurity};

/// No SMTP exchange may hold a mail worker longer than this.
const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The recipient's address is not one SMTP can carry.
    #[error("invalid recipient address")]
    Address,
    #[error("could not build the mail: {0}")]
    Build(String),
    /// The server refused the mail, or could not be reached (lettre's message names neither
    /// the credentials nor the URL).
    #[error("SMTP: {0}")]
    Smtp(String),
}

/// One plain-text mail.
pub struct Mail<'a> {
    pub to: &'a str,
    pub subject: &'a str,
    pub body: String,
}

#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    /// The transport `config` describes; no connection is made until a mail is sent.
    pub fn new(config: &MailConfig) -> Result<Self, MailError> {
        let from = config.from.parse::<Mailbox>().map_err(|_| MailError::Build("EMAIL_FROM".to_owned()))?;
        let tls = TlsParameters::new(config.smtp_host.clone()).map_err(|e| MailError::Build(e.to_string()))?;
        let tls = match config.smtp_security {
            SmtpSecurity::Opportunistic => Tls::Opportunistic(tls),
            SmtpSecurity::Implicit => Tls::Wrapper(tls),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.smtp_host)
            .port(config.smtp_port)
            .tls(tls)
            .timeout(Some(SMTP_TIMEOUT));
        if let Some(credentials) = credentials(config.smtp_url.expose_secret()) {
            builder = builder.credentials(credentials);
        }
        Ok(Self { transport: builder.build(), from })
    }

    pub async fn send(&self, mail: Mail<'_>) -> Result<(), MailError> {
        let to = mail.to.parse::<Mailbox>().map_err(|_| MailError::Address)?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject)
            .header(ContentType::TEXT_PLAIN)
            .body(mail.body)
            .map_err(|e| MailError::Build(e.to_string()))?;
        self.transport.send(message).await.map_err(|e| MailError::Smtp(e.to_string()))?;
        Ok(())
    }
}

/// The user and password of `smtp://user:pass@host`, percent-decoded; `None` without a user.
fn credentials(url: &str) -> Option<Credentials> {
    let url = url::Url::parse(url).ok()?;
    if url.username().is_empty() {
        return None;
    }
    let decode = |s: &str| percent_decode(s);
    Some(Credentials::new(decode(url.username()), decode(url.password().unwrap_or(""))))
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_decoded() {
        assert!(credentials("smtp://host:25").is_none());
        let expected = Credentials::new("me@x".to_owned(), "p+s:w".to_owned());
        assert_eq!(credentials("smtp://me%40x:p+s%3Aw@host").unwrap(), expected);
    }
}
