"""A downstream DRF service that trusts tokensmith by its issuer URL alone.

drf-oidc-auth's JSONWebTokenAuthentication is configured with OIDC_ENDPOINT (the issuer URL),
fetches {issuer}/.well-known/openid-configuration, follows its jwks_uri, and checks each
token's signature, `iss` (equal to the discovered issuer), `aud`, `exp` and `iat`.

Usage: oidc_downstream.py ISSUER AUDIENCE ALGORITHM TOKEN...
Prints a JSON list, one {"status", "body"} per token, as the service answered GET /whoami/ with
`Authorization: JWT <token>` (drf-oidc-auth's default prefix).
"""

import json
import logging
import sys

import django
from django.conf import settings
from django.urls import path

issuer, audience, algorithm, *tokens = sys.argv[1:]

settings.configure(
    DEBUG=False,
    SECRET_KEY="downstream service of the tokensmith tests",
    ALLOWED_HOSTS=["testserver"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "rest_framework"],
    DATABASES={},
    REST_FRAMEWORK={
        "DEFAULT_AUTHENTICATION_CLASSES": ["oidc_auth.authentication.JSONWebTokenAuthentication"],
        "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
        "UNAUTHENTICATED_USER": None,
    },
    OIDC_AUTH={
        "OIDC_ENDPOINT": issuer,
        "OIDC_CLAIMS_OPTIONS": {"aud": {"essential": True, "value": audience}},
        "JWT_ALGORITHMS": [algorithm],
        # The service has no user table: the caller is the token's user id.
        "OIDC_RESOLVE_USER_FUNCTION": "oidc_downstream.token_user",
    },
)
django.setup()
# Refusals are the answers this script reports; their tracebacks are noise.
logging.disable(logging.CRITICAL)

from rest_framework.response import Response  # noqa: E402  (needs the settings)
from rest_framework.test import APIClient  # noqa: E402
from rest_framework.views import APIView  # noqa: E402


class TokenUser:
    is_authenticated = True

    def __init__(self, claims):
        self.id = claims["user_id"]


def token_user(request, claims):
    return TokenUser(claims)


class WhoAmI(APIView):
    def get(self, request):
        return Response({"user_id": request.user.id, "iss": request.auth["iss"], "aud": request.auth["aud"]})


urlpatterns = [path("whoami/", WhoAmI.as_view())]

# The module is imported again by name (OIDC_RESOLVE_USER_FUNCTION) while it runs as __main__.
sys.modules.setdefault("oidc_downstream", sys.modules[__name__])

client = APIClient()
answers = []
for token in tokens:
    reply = client.get("/whoami/", HTTP_AUTHORIZATION=f"JWT {token}")
    answers.append({"status": reply.status_code, "body": reply.json()})
print(json.dumps(answers))
