"""What Django 5.2 says of passwords, for tokensmith's password policy to be compared with:
`validate_password(password, user)` with Django's four default validators, the user an unsaved
`User` holding the case's username, email and names.

Reads a JSON list of {"password", "username", "email", "first_name", "last_name"} on stdin and
prints a JSON list with, for each case in order, the list of Django's messages (empty when the
password is accepted). The optional argument is MinimumLengthValidator's min_length (default 8).
"""

import json
import sys

import django
from django.conf import settings

MIN_LENGTH = int(sys.argv[1]) if len(sys.argv) > 1 else 8

settings.configure(
    INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes"],
    # Django's startproject defaults, in their order.
    AUTH_PASSWORD_VALIDATORS=[
        {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
        {
            "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
            "OPTIONS": {"min_length": MIN_LENGTH},
        },
        {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
        {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    ],
)
django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.contrib.auth.password_validation import validate_password  # noqa: E402
from django.core.exceptions import ValidationError  # noqa: E402


def messages(case):
    user = User(
        username=case["username"],
        email=case["email"],
        first_name=case["first_name"],
        last_name=case["last_name"],
    )
    try:
        validate_password(case["password"], user)
    except ValidationError as error:
        return error.messages
    return []


print(json.dumps([messages(case) for case in json.load(sys.stdin)]))
