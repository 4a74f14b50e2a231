"""Users moved over from Django: their hashes, their logins, and the report of both. Django 5.2's
default hash is pbkdf2_sha256 at 1,000,000 iterations; a successful login replaces it with argon2id."""

import base64
import hashlib
import json
import os

from harness import PASSWORD, WRONG_PASSWORD, lua_post, median_of, verify_during_flood, wrk

# Django 5.2's default hasher and cost, for the users moved over from Django.
DJANGO_ITERATIONS = 1_000_000


def django_pbkdf2_sha256(password, salt, iterations=DJANGO_ITERATIONS):
    """What Django 5.2's default hasher (PBKDF2PasswordHasher.encode) writes: the same standard
    library call Django makes (django.utils.crypto.pbkdf2) and the same format, so the bench
    needs no Django. tokensmith's own tests check hashes real Django made."""
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations)
    return f"pbkdf2_sha256${iterations}${salt}${base64.b64encode(digest).decode('ascii').strip()}"


# More imported users than first logins at the PBKDF2 bound in any measurement.
DJANGO_USERS = 5000


def create_imported_users(server):
    """Imported Django users, as the importer writes them: enough that a first-login measurement
    never runs out of them. They share one hash (each login checks it all the same); Django's
    salts are 22 characters."""
    server.django_hash = django_pbkdf2_sha256(PASSWORD, "benchDjangoSalt0123456")
    names = [f"imported{i}" for i in range(DJANGO_USERS)] + ["imported-wrong"]
    users = ",".join(f"('{name}', '{server.django_hash}', 0)" for name in names)
    server.sql(f"INSERT INTO users (username, password_hash, created_at) VALUES {users}")


def lua_distinct_users(prefix, threads, password):
    """Every request logs a different user in (`prefix0`, `prefix1`, …), each once."""
    return f"""
local counter = 0
setup = function(thread)
  thread:set("first", counter)
  counter = counter + 1
end
local n = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  local user = first + n * {threads}
  n = n + 1
  return wrk.format(nil, nil, nil, '{{"username":"{prefix}' .. user .. '","password":{json.dumps(password)}}}')
end
"""


def measure_django(server, args, scratch, access):
    """Logins of users moved over from Django with Django 5.2's default hash (pbkdf2_sha256,
    1,000,000 iterations), next to argon2id users'. A successful login upgrades the hash, so
    PBKDF2 is measured twice: first logins of many distinct imported users, each once (what a
    cut-over costs: the PBKDF2 check, the argon2id rehash and its write), and wrong passwords
    against one imported user, which never upgrade it (what each failed attempt costs, the same
    work repeated), beside wrong passwords against an argon2id user (what an unknown user costs)."""
    d, c = args.duration, args.connections
    results = {}
    server.drain()
    results["login_wrong_argon2"] = wrk(server, "/api/token/", lua_post({"username": "bench", "password": WRONG_PASSWORD}), d, c, scratch=scratch)
    server.drain()
    django_wrong = lua_post({"username": "imported-wrong", "password": WRONG_PASSWORD})
    results["login_wrong_django"] = wrk(server, "/api/token/", django_wrong, d, c, scratch=scratch)
    server.sql(f"UPDATE users SET password_hash = '{server.django_hash}' WHERE username LIKE 'imported%'")
    server.drain()
    first_logins = lua_distinct_users("imported", 2, PASSWORD)
    results["login_first_django"] = wrk(server, "/api/token/", first_logins, d, c, threads=2, scratch=scratch)
    server.drain()
    results["verify_during_django_logins"] = verify_during_flood(server, django_wrong, access, args, scratch, "django-flood")
    server.drain()
    return results


def django_report(label, runs, primitives):
    """The imported users' table of one backend, with the hashing bounds it is held to."""
    threads = os.cpu_count()
    pbkdf2_ms = primitives["django_wrong_password_ms"]["pbkdf2_sha256"]
    argon2_ms = primitives["argon2_hash_ms"]
    bounds = {
        "login_first_django": (threads / ((pbkdf2_ms + argon2_ms) / 1e3), f"{threads} × (PBKDF2 + argon2id)"),
        "login_wrong_django": (threads / (pbkdf2_ms / 1e3), f"{threads} × PBKDF2"),
        "login_wrong_argon2": (threads / (argon2_ms / 1e3), f"{threads} × argon2id"),
        "login": (threads / (argon2_ms / 1e3), f"{threads} × argon2id"),
    }
    names = {
        "login_first_django": "first login of distinct imported users (PBKDF2 check, argon2id rehash, upgrade written)",
        "login_wrong_django": "wrong password, imported PBKDF2 user (never upgrades: 401)",
        "login_wrong_argon2": "wrong password, argon2id user (an unknown user costs the same: 401)",
        "login": "right password, argon2id user (the login row above)",
        "verify_during_django_logins": "verify while wrong-password PBKDF2 logins saturate hashing",
        "verify_during_logins": "verify while argon2id logins saturate hashing (the row above)",
    }
    pbkdf2_all_cores = primitives["pbkdf2_all_cores_per_s"]
    lines = [
        f"### {label}: users imported from Django (pbkdf2_sha256, {DJANGO_ITERATIONS:,} iterations)",
        "",
        f"Hashing: {threads} threads × the cost of each check ({pbkdf2_ms:.0f} ms PBKDF2, {argon2_ms:.1f} ms argon2id). "
        "A successful login upgrades the hash, so PBKDF2 is measured on first logins of many distinct "
        f"imported users ({DJANGO_USERS:,} sharing one Django hash, each logged in once) and on wrong passwords "
        "against one imported user (repeatable: a failure never upgrades). The throttle is lifted for these runs. "
        f"Every core checking PBKDF2 at once, in process, manages {pbkdf2_all_cores:.1f} checks/s.",
        "",
        "| scenario | req/s | p50 ms | p99 ms | bound (hashing) | % of bound | non-2xx |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for key, name in names.items():
        if key not in runs[0]:
            continue
        rps = median_of(runs, key, "rps")
        bound, how = bounds.get(key, (None, ""))
        shown = f"{bound:,.1f}/s = {how}" if bound else "—"
        share = f"{rps / bound:.0%}" if bound else "—"
        non2xx = sum(run[key]["non2xx"] + run[key]["errors"] for run in runs)
        lines.append(f"| {name} | {rps:,.1f} | {median_of(runs, key, 'p50_ms'):.2f} | "
                     f"{median_of(runs, key, 'p99_ms'):.2f} | {shown} | {share} | {non2xx} |")
    return lines + [""]
