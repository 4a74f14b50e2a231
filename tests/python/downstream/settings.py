"""The README's stateless-downstream recipe, with the values the test chooses taken from the
environment (SIMPLE_JWT_<SETTING>). No database: JWTStatelessUserAuthentication builds the user
from the token alone."""

import os

SECRET_KEY = "downstream-test-only-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
# TokenUser imports django.contrib.auth's models, so the app is installed; nothing is stored.
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth"]
DATABASES = {}
MIDDLEWARE = []
ROOT_URLCONF = "downstream.urls"
USE_TZ = True


def _env(name, default=None):
    return os.environ.get(f"SIMPLE_JWT_{name}") or default


SIMPLE_JWT = {
    "ALGORITHM": _env("ALGORITHM", "ES256"),
    # Asymmetric keys come from tokensmith's JWKS; HS256 verifies with the shared secret.
    "JWK_URL": _env("JWK_URL"),
    "VERIFYING_KEY": None,
    "USER_ID_CLAIM": _env("USER_ID_CLAIM", "user_id"),
    "ISSUER": _env("ISSUER"),
    "AUDIENCE": _env("AUDIENCE"),
    "AUTH_HEADER_TYPES": ("Bearer",),
}
if _env("SIGNING_KEY"):
    SIMPLE_JWT["SIGNING_KEY"] = _env("SIGNING_KEY")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework_simplejwt.authentication.JWTStatelessUserAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
}
