"""Drives the legacy Django + simplejwt site (legacy_site/settings.py) for the importer's tests.

    legacy_site.py setup         migrate; make groups, a user per hasher, and simplejwt tokens;
                                 print what was made (ids, passwords, tokens) as JSON
    legacy_site.py dump FILE     manage.py dumpdata auth.group auth.user token_blacklist > FILE
    legacy_site.py meanwhile     what happens in Django between two imports (prints JSON)
    legacy_site.py refresh USER  a new simplejwt refresh token for USER (a login in Django)
"""

import json
import os
import sys
from datetime import timedelta

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "legacy_site.settings")

import argon2  # noqa: E402
import django  # noqa: E402

django.setup()

from django.contrib.auth.hashers import make_password  # noqa: E402
from django.contrib.auth.models import Group, User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.utils import timezone  # noqa: E402
from rest_framework_simplejwt.token_blacklist.models import OutstandingToken  # noqa: E402
from rest_framework_simplejwt.tokens import RefreshToken, SlidingToken  # noqa: E402

HASHERS = ["pbkdf2_sha256", "pbkdf2_sha1", "argon2", "bcrypt_sha256", "bcrypt", "scrypt", "md5"]


def make_user(username, password, hash, **fields):
    user = User.objects.create(username=username, password=hash, **fields)
    return {"id": user.id, "username": username, "password": password}


def setup():
    call_command("migrate", verbosity=0)
    editors = Group.objects.create(name="editors")
    readers = Group.objects.create(name="readers")
    # Ids with gaps, as a real site has after deletions.
    User.objects.create(username="deleted-long-ago").delete()
    users = []
    for n, hasher in enumerate(HASHERS):
        password = f"pässword-{hasher}-{n}"
        users.append(make_user(f"user_{hasher}", password, make_password(password, hasher=hasher),
                               email=f"{hasher}@example.com", first_name="Über", last_name=hasher))
    # Django before 3.2 made argon2i hashes; Django still verifies them.
    password = "argon2i-password"
    argon2i = "argon2" + argon2.PasswordHasher(type=argon2.Type.I).hash(password)
    users.append(make_user("user_argon2i", password, argon2i))
    staff = User.objects.get(username="user_pbkdf2_sha256")
    staff.is_staff = True
    staff.last_login = timezone.now() - timedelta(days=1)
    staff.save()
    staff.groups.add(editors, readers)
    unusable = User.objects.create(username="no_password")
    unusable.set_unusable_password()
    unusable.save()
    inactive = make_user("gone", "gone-password", make_password("gone-password"), is_active=False)

    live = RefreshToken.for_user(staff)
    blacklisted = RefreshToken.for_user(staff)
    blacklisted.blacklist()
    sliding = SlidingToken.for_user(User.objects.get(username="user_scrypt"))
    expired = RefreshToken.for_user(staff)
    OutstandingToken.objects.filter(jti=expired["jti"]).update(expires_at=timezone.now() - timedelta(hours=1))
    print(json.dumps({
        "users": users,
        "staff": staff.id,
        "unusable": unusable.id,
        "inactive": inactive,
        "refresh": {"live": str(live), "blacklisted": str(blacklisted)},
        "access": str(live.access_token),
        "sliding": str(sliding),
    }))


def meanwhile():
    """Between the first import and the second: a sign-up, a password changed, a logout, a user
    deleted."""
    latecomer = make_user("latecomer", "late-password", make_password("late-password"))
    changed = User.objects.get(username="user_md5")
    changed.password = make_password("changed-in-django")
    changed.email = "md5-new@example.com"
    changed.save()
    logged_out = RefreshToken.for_user(changed)
    logged_out.blacklist()
    User.objects.get(username="user_argon2i").delete()
    print(json.dumps({"latecomer": latecomer, "logged_out": str(logged_out)}))


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "setup":
        setup()
    elif command == "dump":
        call_command("dumpdata", "auth.group", "auth.user", "token_blacklist", output=sys.argv[2], verbosity=0)
    elif command == "meanwhile":
        meanwhile()
    elif command == "refresh":
        print(RefreshToken.for_user(User.objects.get(username=sys.argv[2])))
    else:
        sys.exit(f"unknown command {command}")
