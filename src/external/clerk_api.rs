//! Clerk's user objects (as webhooks and the Backend API send them) and the Backend API's
//! user listing, for `tokensmith clerk sync-users`.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::roles;
use crate::{config::RoleMapping, domain::ExternalProfile};

/// The parts of Clerk's User object tokensmith keeps.
#[derive(Debug, Clone, Deserialize)]
pub struct ClerkUser {
    pub id: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub primary_email_address_id: Option<String>,
    #[serde(default)]
    pub email_addresses: Vec<EmailAddress>,
    #[serde(default)]
    pub banned: bool,
    #[serde(default)]
    pub locked: bool,
    /// Set by the application's backend (readable by the frontend too): where roles belong.
    #[serde(default)]
    pub public_metadata: Option<serde_json::Value>,
    /// Set by the application's backend, never seen by the frontend.
    #[serde(default)]
    pub private_metadata: Option<serde_json::Value>,
    // `unsafe_metadata` is not read: the user writes it from the browser.
    /// Set only with the secret key (the operator's import into Clerk): the id of the user in the
    /// operator's own system, here the local user's id.
    #[serde(default)]
    pub external_id: Option<String>,
    /// Unix milliseconds.
    #[serde(default)]
    pub updated_at: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EmailAddress {
    pub id: String,
    pub email_address: String,
    #[serde(default)]
    pub verification: Option<Verification>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Verification {
    #[serde(default)]
    pub status: Option<String>,
}

impl ClerkUser {
    /// Clerk's view of the user; its `roles` by `mapping` (`CLERK_ROLES_CLAIM`), looked up in
    /// the user's `public_metadata` and `private_metadata`.
    pub fn profile(&self, mapping: Option<&RoleMapping>) -> ExternalProfile {
        // Only the primary address, and only once verified: an unverified address proves nothing.
        let email = self
            .email_addresses
            .iter()
            .find(|e| Some(&e.id) == self.primary_email_address_id.as_ref())
            .filter(|e| e.verification.as_ref().and_then(|v| v.status.as_deref()) == Some("verified"))
            .map(|e| without_nul(&e.email_address))
            .unwrap_or_default();
        let text = |field: &Option<String>| field.as_deref().map(without_nul).unwrap_or_default();
        ExternalProfile {
            username: Some(text(&self.username)).filter(|u| !u.is_empty()),
            email,
            first_name: text(&self.first_name),
            last_name: text(&self.last_name),
            updated_at_ms: self.updated_at,
            roles: mapping.and_then(|mapping| roles::flags(mapping, &self.metadata())),
            roles_as_of_ms: Some(self.updated_at),
            local_user_id: self.external_id.as_deref().and_then(local_user_id),
            locked_out: self.locked && !self.banned,
        }
    }

    /// The metadata a roles path may start in, under Clerk's names.
    fn metadata(&self) -> serde_json::Map<String, serde_json::Value> {
        let fields = [("public_metadata", &self.public_metadata), ("private_metadata", &self.private_metadata)];
        fields.into_iter().filter_map(|(name, value)| Some((name.to_owned(), value.clone()?))).collect()
    }

    /// Whether tokensmith can link this user at all: PostgreSQL cannot store an id holding a
    /// NUL character, and no Clerk id holds one, so no local user can be linked to it.
    pub fn has_usable_id(&self) -> bool {
        usable_id(&self.id)
    }

    /// Banned or locked Clerk users may not sign in locally either.
    pub fn may_sign_in(&self) -> bool {
        !self.banned && !self.locked
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClerkApiError {
    #[error("Clerk Backend API refused CLERK_SECRET_KEY (HTTP {0})")]
    Unauthorized(u16),
    #[error("Clerk Backend API at {url} is unreachable: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("Clerk Backend API answered HTTP {0}")]
    Status(u16),
    #[error("Clerk Backend API sent a body that is not a list of users: {0}")]
    Body(String),
}

/// Users per page (Clerk allows 1 to 500).
pub const PAGE_SIZE: usize = 100;

pub struct ClerkApi {
    base_url: String,
    secret_key: SecretString,
    client: reqwest::Client,
}

impl ClerkApi {
    pub fn new(base_url: &str, secret_key: SecretString) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("tokensmith/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("a client with timeouts builds");
        Self { base_url: base_url.trim_end_matches('/').to_owned(), secret_key, client }
    }

    /// One page of `GET /v1/users`, oldest first so that paging is stable while users sign up.
    pub async fn users_page(&self, offset: usize) -> Result<Vec<ClerkUser>, ClerkApiError> {
        let url = format!("{}/v1/users", self.base_url);
        let response = self
            .client
            .get(&url)
            .query(&[
                ("limit", PAGE_SIZE.to_string()),
                ("offset", offset.to_string()),
                ("order_by", "+created_at".to_owned()),
            ])
            .bearer_auth(self.secret_key.expose_secret())
            .send()
            .await
            .map_err(|e| ClerkApiError::Unreachable { url: url.clone(), reason: error_kind(&e) })?;
        let status = response.status().as_u16();
        match status {
            200..=299 => {}
            401 | 403 => return Err(ClerkApiError::Unauthorized(status)),
            _ => return Err(ClerkApiError::Status(status)),
        }
        let body: serde_json::Value = response.json().await.map_err(|e| ClerkApiError::Body(e.to_string()))?;
        // The listing is a bare array; newer API versions wrap it as {"data": [...]}.
        let list = match body {
            serde_json::Value::Object(mut wrapped) => wrapped.remove("data").unwrap_or_default(),
            other => other,
        };
        serde_json::from_value(list).map_err(|e| ClerkApiError::Body(e.to_string()))
    }
}

impl ClerkApi {
    /// One user (`GET /v1/users/{id}`), quickly: this runs inside a sign-in request.
    /// `None` when Clerk does not know the id.
    pub async fn user(&self, id: &str) -> Result<Option<ClerkUser>, ClerkApiError> {
        let url = format!("{}/v1/users/{}", self.base_url, url_segment(id));
        let response = self
            .client
            .get(&url)
            .timeout(Duration::from_secs(3))
            .bearer_auth(self.secret_key.expose_secret())
            .send()
            .await
            .map_err(|e| ClerkApiError::Unreachable { url: self.base_url.clone(), reason: error_kind(&e) })?;
        let status = response.status().as_u16();
        match status {
            200..=299 => response.json().await.map(Some).map_err(|e| ClerkApiError::Body(e.to_string())),
            404 => Ok(None),
            401 | 403 => Err(ClerkApiError::Unauthorized(status)),
            _ => Err(ClerkApiError::Status(status)),
        }
    }
}

/// Profile text as PostgreSQL can store it. Stripped, not refused: a webhook refused is retried
/// by Svix for days, and the rest of the profile is worth keeping.
fn without_nul(text: &str) -> String {
    text.replace('\0', "")
}

/// The local user id an `external_id` names: only the canonical decimal form of a positive id
/// (`42`, not `042`, `+42` or ` 42`), so one local user has exactly one spelling. Anything else
/// is the operator's own identifier for something else, and names no local user.
fn local_user_id(external_id: &str) -> Option<i64> {
    external_id.parse::<i64>().ok().filter(|id| *id > 0 && id.to_string() == external_id)
}

fn usable_id(id: &str) -> bool {
    !id.contains('\0')
}

/// Clerk ids are `user_` and base62, but the id comes from a token: never let it change the path.
fn url_segment(id: &str) -> String {
    id.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').collect()
}

fn error_kind(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "cannot connect".to_owned()
    } else {
        "request failed".to_owned()
    }
}

/// A Clerk webhook event, as far as tokensmith acts on it.
#[derive(Debug, Clone)]
pub enum ClerkEvent {
    /// `user.created`, `user.updated`.
    UserChanged(Box<ClerkUser>),
    /// `user.deleted`.
    UserDeleted { id: String },
    /// `session.ended`, `session.removed`, `session.revoked`.
    SessionEnded { id: String },
    /// `organizationMembership.updated`, `organizationMembership.deleted`: the user's role in
    /// the organization changed, or the user left it.
    MembershipChanged { user_id: String, org_id: String },
    /// Any other type: acknowledged, ignored.
    Ignored(String),
}

impl ClerkEvent {
    /// For logs and the audit trail: the kind and the id, no personal data.
    pub fn describe(&self) -> String {
        match self {
            Self::UserChanged(user) => format!("user {} changed", user.id),
            Self::UserDeleted { id } => format!("user {id} deleted"),
            Self::SessionEnded { id } => format!("session {id} ended"),
            Self::MembershipChanged { user_id, org_id } => format!("membership of user {user_id} in {org_id} changed"),
            Self::Ignored(kind) => format!("{kind} (not acted on)"),
        }
    }

    /// `Err` describes what is wrong with the payload (it never quotes it).
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        #[derive(Deserialize)]
        struct Envelope {
            #[serde(rename = "type")]
            kind: String,
            data: serde_json::Value,
        }
        #[derive(Deserialize)]
        struct Id {
            id: String,
        }
        /// Clerk's OrganizationMembership object, as far as it names who and where.
        #[derive(Deserialize)]
        struct Membership {
            organization: Id,
            public_user_data: PublicUserData,
        }
        #[derive(Deserialize)]
        struct PublicUserData {
            user_id: String,
        }
        let envelope: Envelope = serde_json::from_slice(body).map_err(|e| format!("not a Clerk event: {e}"))?;
        let id = |data: serde_json::Value| -> Result<String, String> {
            serde_json::from_value::<Id>(data).map(|d| d.id).map_err(|e| format!("{}: {e}", envelope.kind))
        };
        let event = match envelope.kind.as_str() {
            "user.created" | "user.updated" => {
                Self::UserChanged(serde_json::from_value(envelope.data).map_err(|e| format!("{}: {e}", envelope.kind))?)
            }
            "user.deleted" => Self::UserDeleted { id: id(envelope.data)? },
            "session.ended" | "session.removed" | "session.revoked" => Self::SessionEnded { id: id(envelope.data)? },
            "organizationMembership.updated" | "organizationMembership.deleted" => {
                let membership = serde_json::from_value::<Membership>(envelope.data)
                    .map_err(|e| format!("{}: {e}", envelope.kind))?;
                Self::MembershipChanged {
                    user_id: membership.public_user_data.user_id,
                    org_id: membership.organization.id,
                }
            }
            // The type reaches the audit trail: as storable text.
            _ => Self::Ignored(without_nul(&envelope.kind)),
        };
        // An id no local record can carry names nothing here (and would not fit in the audit
        // trail): acknowledged, not acted on, as an error would be a delivery Svix retries for days.
        let usable = match &event {
            Self::UserChanged(user) => user.has_usable_id(),
            Self::UserDeleted { id } | Self::SessionEnded { id } => usable_id(id),
            Self::MembershipChanged { user_id, org_id } => usable_id(user_id) && usable_id(org_id),
            Self::Ignored(_) => true,
        };
        Ok(if usable { event } else { Self::Ignored(format!("{} with an unusable id", envelope.kind)) })
    }
}

#[cfg(test)]
mod tests {
    use super::local_user_id;

    #[test]
    fn only_the_canonical_decimal_of_a_positive_id_names_a_local_user() {
        assert_eq!(local_user_id("42"), Some(42));
        assert_eq!(local_user_id("9223372036854775807"), Some(i64::MAX));
        for other in ["", "0", "-1", "042", "+42", " 42", "42 ", "4.2", "4e1", "9223372036854775808", "abc", "user_42"]
        {
            assert_eq!(local_user_id(other), None, "{other:?}");
        }
    }
}
