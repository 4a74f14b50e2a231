//! What an access token says about its user besides the id: the attributes `TOKEN_CLAIMS`
//! names, read from the user record each time a token is minted (so a role change shows at the
//! next refresh), over the user's custom claims.

use serde::{Serialize, Serializer, ser::SerializeMap};
use serde_json::{Map, Value};

use crate::{
    config::{TokenCustomisation, UserClaim},
    domain::User,
};

/// The user's claims for an access token: custom claims first, then the configured attributes,
/// so that the record, not a stale custom claim, decides `is_staff` when both name it. A custom
/// claim under a name tokensmith writes itself is dropped here too, not only refused when set:
/// `USER_ID_CLAIM` may have been renamed since, and a token must never hold a name twice (the
/// last one would win in most JSON parsers, and name another user).
pub fn user_claims(user: &User, groups: &[String], settings: &TokenCustomisation) -> Map<String, Value> {
    let mut claims: Map<String, Value> = user
        .custom_claims
        .as_map()
        .iter()
        .filter(|(name, _)| !settings.is_reserved_claim(name))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    for attribute in &settings.claims {
        let value = match attribute {
            UserClaim::Username => Value::from(user.username.as_str()),
            UserClaim::Email => Value::from(user.email.as_str()),
            UserClaim::FirstName => Value::from(user.first_name.as_str()),
            UserClaim::LastName => Value::from(user.last_name.as_str()),
            UserClaim::IsStaff => Value::from(user.is_staff),
            UserClaim::IsSuperuser => Value::from(user.is_superuser),
            UserClaim::Groups => Value::from(groups),
        };
        claims.insert(attribute.name().to_owned(), value);
    }
    claims
}

/// The user id under the claim name `USER_ID_CLAIM` gives, as a string (simplejwt 5.5).
pub(super) struct UserIdClaim<'a> {
    pub name: &'a str,
    pub id: i64,
}

impl Serialize for UserIdClaim<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry(self.name, &self.id.to_string())?;
        map.end()
    }
}
