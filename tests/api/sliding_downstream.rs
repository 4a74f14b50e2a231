//! simplejwt's own `SlidingToken` class, in a real Django + DRF + simplejwt, takes tokensmith's
//! sliding tokens: what a downstream service migrating from simplejwt's sliding views runs.

use serde_json::json;

use crate::{
    db_test,
    helpers::*,
    sliding::{alice_sliding, refreshed},
};

db_test!(simplejwts_own_sliding_token_class_authenticates_with_it);

/// A downstream Django service authenticating with simplejwt's own `SlidingToken` class under
/// `JWTStatelessUserAuthentication`, keys from the JWKS: it takes tokensmith's sliding tokens.
const DOWNSTREAM: &str = r#"
import json, sys
import django
from django.conf import settings
settings.configure(
    SECRET_KEY="unused", USE_TZ=True, DATABASES={},
    INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "rest_framework", "rest_framework_simplejwt"],
    SIMPLE_JWT={
        "ALGORITHM": "ES256", "JWK_URL": sys.argv[1], "VERIFYING_KEY": None,
        "AUTH_TOKEN_CLASSES": ("rest_framework_simplejwt.tokens.SlidingToken",),
    },
)
django.setup()
from rest_framework_simplejwt.authentication import JWTStatelessUserAuthentication
auth = JWTStatelessUserAuthentication()
token = auth.get_validated_token(sys.argv[2].encode())
user = auth.get_user(token)
print(json.dumps({"class": type(token).__name__, "id": user.id, "username": user.username,
                  "is_staff": user.is_staff, "refresh_exp": token["refresh_exp"]}))
"#;

async fn simplejwts_own_sliding_token_class_authenticates_with_it(backend: Backend) {
    let app = spawn_app_with(backend, &[("TOKEN_CLAIMS", "username,is_staff")]).await;
    let token = alice_sliding(&app).await;
    let token = refreshed(&app, &token).await;
    let jwks = app.url("/.well-known/jwks.json");
    let seen = crate::python::run_inline(DOWNSTREAM, &[&jwks, &token], &[]).await.json();
    assert_eq!(
        seen,
        json!({"class": "SlidingToken", "id": "1", "username": "alice", "is_staff": false,
               "refresh_exp": claims(&token)["refresh_exp"]})
    );
}
