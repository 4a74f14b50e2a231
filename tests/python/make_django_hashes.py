"""Password hashes as a Django 5.2 site stores them, for tokensmith to verify: Django's own
`make_password` with each hasher named on the command line, at Django's default costs.

Prints a JSON list of {"hasher", "password", "hash"}: for each hasher, a random password, a
non-ASCII one, and one past bcrypt's 72 bytes (for plain `bcrypt`, exactly 72 bytes: pyca/bcrypt
5 refuses longer). Django itself checks each hash before it is printed.
"""

import json
import secrets
import sys

import django
from django.conf import settings

HASHERS = {
    "pbkdf2_sha256": "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "pbkdf2_sha1": "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "argon2": "django.contrib.auth.hashers.Argon2PasswordHasher",
    "bcrypt_sha256": "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
    "bcrypt": "django.contrib.auth.hashers.BCryptPasswordHasher",
    "scrypt": "django.contrib.auth.hashers.ScryptPasswordHasher",
    "md5": "django.contrib.auth.hashers.MD5PasswordHasher",
}

settings.configure(PASSWORD_HASHERS=list(HASHERS.values()))
django.setup()

from django.contrib.auth.hashers import check_password, make_password  # noqa: E402


def passwords(hasher):
    yield secrets.token_urlsafe(12)
    yield "Grüße, Jürgen — пароль 密码 🔑 " + secrets.token_hex(4)
    if hasher == "bcrypt":
        yield "é" * 35 + secrets.token_hex(1)  # 72 bytes
    else:
        yield "long passphrase " * 6 + secrets.token_hex(8)  # 112 bytes


made = []
for hasher in sys.argv[1:]:
    for password in passwords(hasher):
        encoded = make_password(password, hasher=hasher)
        assert encoded.startswith(hasher + "$") and check_password(password, encoded), hasher
        made.append({"hasher": hasher, "password": password, "hash": encoded})
print(json.dumps(made))
