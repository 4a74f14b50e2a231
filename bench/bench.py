"""Drives tokensmith with wrk and writes BENCHMARKS.md. Run through bench/run.sh.

`--only a,b` runs only those scenarios (names in SCENARIOS); the default runs all of them."""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

import db
import report
from exchange import run_exchange
from growth import parse_size, run_growth
from harness import (PASSWORD, ROOT, Server, lua_get, lua_post, lua_refresh_chains, verify_during_flood, wrk)
from idle import run_idle
from imported import create_imported_users, measure_django

PRIMITIVES = os.path.join(ROOT, "target", "release", "examples", "bench_primitives")

# Measured in each run of `measure` (median of --runs).
MEASURED = ("healthz", "jwks", "verify", "me", "refresh", "login", "floods", "django")
# Once per backend: cold start, peak RSS with 1,000 logins, growth under rotation, Clerk exchange.
PER_BACKEND = ("cold", "rss", "growth", "exchange")
# SQLite only: verify under HS256, and idle keep-alive connections.
SQLITE_ONLY = ("hs256", "idle")
SCENARIOS = MEASURED + PER_BACKEND + SQLITE_ONLY

# The throttles are lifted: the wrong-password scenarios measure hashing, not refusals, and
# the growth run logs one user in thousands of times.
UNTHROTTLED = {"PASSWORD_HASH_CONCURRENCY": str(os.cpu_count()), "LOGIN_FAILURE_LIMIT": "1000000000",
               "LOGIN_ADDRESS_FAILURE_LIMIT": "1000000000"}


def measure(server, args, scratch, only):
    """One run of the selected scenarios against a running server; returns {name: result}."""
    d, c = args.duration, args.connections
    results = {}
    if "healthz" in only:
        results["healthz"] = wrk(server, "/healthz", "", d, c, scratch=scratch)
    if "jwks" in only:
        results["jwks"] = wrk(server, "/.well-known/jwks.json", "", d, c, scratch=scratch)
    access = server.login()["access"] if only & {"verify", "me", "floods", "django"} else None
    if "verify" in only:
        results["verify"] = wrk(server, "/api/token/verify/", lua_post({"token": access}), d, c, scratch=scratch)
    if "me" in only:
        results["me"] = wrk(server, "/api/me/", lua_get(access), d, c, scratch=scratch)
    if "refresh" in only:
        chains = [server.login()["refresh"] for _ in range(c)]
        results["refresh"] = wrk(server, "/api/token/refresh/", lua_refresh_chains(chains), d, c, threads=c, scratch=scratch)
    login_body = lua_post({"username": "bench", "password": PASSWORD})
    if "login" in only:
        results["login"] = wrk(server, "/api/token/", login_body, d, c, scratch=scratch)
    if "floods" in only:
        results["verify_during_logins"] = verify_during_flood(server, login_body, access, args, scratch, "flood")
    if "django" in only:
        results.update(measure_django(server, args, scratch, access))
    return results


def bench_standard(label, database_url, args, scratch, only):
    """The scenarios of MEASURED, cold start and peak RSS, on one server and database."""
    result = {}
    workdir = tempfile.mkdtemp(prefix="tokensmith-bench-")
    server = Server(workdir, database_url, UNTHROTTLED)
    server.cli("migrate")
    server.cli("user", "create", "bench", "--password-stdin", stdin=PASSWORD)
    if "django" in only:
        create_imported_users(server)
    if "cold" in only:
        cold = []
        for _ in range(5):
            cold.append(server.start())
            server.stop()
        result["cold_start_ms"] = statistics.median(cold) * 1e3
    if only & set(MEASURED):
        result["runs"] = []
        server.start()
        for i in range(args.runs):
            print(f"bench: {label}: run {i + 1} of {args.runs}", file=sys.stderr)
            result["runs"].append(measure(server, args, scratch, only))
        server.stop()
    if "rss" in only:
        # Peak memory with 1,000 logins in flight at once.
        server.start()
        wrk(server, "/api/token/", lua_post({"username": "bench", "password": PASSWORD}), max(args.duration, 10), 1000,
            scratch=scratch)
        result["rss_mb"] = server.peak_rss_mb()
        server.stop()
    shutil.rmtree(workdir, ignore_errors=True)
    return result


def bench_backend(label, postgres, args, scratch, only, primitives):
    """Every selected per-backend scenario, each on a fresh database (SQLite when `postgres` is
    None, else a new database on that PostgreSQL server)."""
    result = {}
    if only & (set(MEASURED) | {"cold", "rss"}):
        with db.scratch_database(postgres, "bench") as url:
            result.update(bench_standard(label, url, args, scratch, only))
    if "growth" in only:
        with db.scratch_database(postgres, "growth") as url:
            result["growth"] = run_growth(label, url, args, scratch, UNTHROTTLED)
    if "exchange" in only:
        with db.scratch_database(postgres, "exchange") as url:
            result["exchange"] = run_exchange(label, url, args, scratch, primitives, UNTHROTTLED)
    return result


def bench_hs256(args, scratch):
    """Verify under HS256 against /healthz, in the same run, for the ratio."""
    workdir = tempfile.mkdtemp(prefix="tokensmith-bench-hs-")
    server = Server(workdir, f"sqlite://{workdir}/bench.db?mode=rwc",
                    {"JWT_ALGORITHM": "HS256", "JWT_SECRET": "benchmark-secret-0123456789abcdef"})
    server.cli("migrate")
    server.cli("user", "create", "bench", "--password-stdin", stdin=PASSWORD)
    server.start()
    access = server.login()["access"]
    runs = []
    for _ in range(args.runs):
        runs.append({
            "healthz": wrk(server, "/healthz", "", args.duration, args.connections, scratch=scratch),
            "verify": wrk(server, "/api/token/verify/", lua_post({"token": access}), args.duration, args.connections, scratch=scratch),
        })
    server.stop()
    shutil.rmtree(workdir, ignore_errors=True)
    return runs


def parse_only(text):
    if text is None:
        return None
    names = {name.strip() for name in text.split(",") if name.strip()}
    unknown = names - set(SCENARIOS)
    if unknown:
        raise SystemExit(f"bench: unknown scenario(s) {', '.join(sorted(unknown))}; known: {', '.join(SCENARIOS)}")
    return names


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--postgres", help="also measure on this PostgreSQL server: every scenario runs in a new "
                                           "database created through this URL (needs CREATEDB) and dropped after")
    parser.add_argument("--only", help=f"comma-separated scenarios to run (default all): {','.join(SCENARIOS)}")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--growth", type=parse_size, default=(1000, 1000), metavar="SESSIONSxROTATIONS",
                        help="growth run size (default 1000x1000)")
    parser.add_argument("--growth-slices", type=int, default=10,
                        help="the rotations run in this many slices; first and last are compared (default 10)")
    parser.add_argument("--exchange-users", type=int, default=2000, help="distinct Clerk users (default 2000)")
    parser.add_argument("--idle", type=int, default=10000, help="idle keep-alive connections (default 10000)")
    parser.add_argument("--idle-timeout", help="REQUEST_TIMEOUT for the idle run (default: the server's, 30s)")
    parser.add_argument("--no-idle-wait", dest="idle_wait", action="store_false",
                        help="do not wait out REQUEST_TIMEOUT to see the idle connections closed")
    parser.add_argument("--out", default=os.path.join(ROOT, "BENCHMARKS.md"))
    args = parser.parse_args()
    only = parse_only(args.only)
    selected = set(SCENARIOS) if only is None else only
    scratch = tempfile.mkdtemp(prefix="tokensmith-bench-lua-")
    # Anything else running takes CPU from the server and wrk: recorded with the figures.
    load_before = os.getloadavg()[0]
    primitives = json.loads(subprocess.run([PRIMITIVES], capture_output=True, text=True, check=True).stdout)

    backends = {"SQLite": bench_backend("SQLite", None, args, scratch, selected, primitives)}
    if args.postgres:
        backends["PostgreSQL"] = bench_backend("PostgreSQL", args.postgres, args, scratch, selected, primitives)
    hs256 = bench_hs256(args, scratch) if "hs256" in selected else None
    idle = None
    if "idle" in selected:
        with db.scratch_database(None, "idle") as url:
            idle = run_idle(url, args, scratch, UNTHROTTLED)
    report.write(args.out, args, only, primitives, load_before, backends, hs256, idle)
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
