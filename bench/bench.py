"""Drives tokensmith with wrk and writes BENCHMARKS.md. Run through bench/run.sh."""

import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

from harness import (PASSWORD, ROOT, Server, lua_get, lua_post, lua_refresh_chains, machine, median_of,
                     verify_during_flood, wrk)
from imported import create_imported_users, django_report, measure_django

PRIMITIVES = os.path.join(ROOT, "target", "release", "examples", "bench_primitives")


def measure(server, args, scratch):
    """One run of every scenario against a running server; returns {name: result}."""
    d, c = args.duration, args.connections
    results = {}
    results["healthz"] = wrk(server, "/healthz", "", d, c, scratch=scratch)
    results["jwks"] = wrk(server, "/.well-known/jwks.json", "", d, c, scratch=scratch)
    access = server.login()["access"]
    results["verify"] = wrk(server, "/api/token/verify/", lua_post({"token": access}), d, c, scratch=scratch)
    results["me"] = wrk(server, "/api/me/", lua_get(access), d, c, scratch=scratch)
    chains = [server.login()["refresh"] for _ in range(c)]
    results["refresh"] = wrk(server, "/api/token/refresh/", lua_refresh_chains(chains), d, c, threads=c, scratch=scratch)
    login_body = lua_post({"username": "bench", "password": PASSWORD})
    results["login"] = wrk(server, "/api/token/", login_body, d, c, scratch=scratch)
    results["verify_during_logins"] = verify_during_flood(server, login_body, access, args, scratch, "flood")
    results.update(measure_django(server, args, scratch, access))
    return results


def bench_backend(label, database_url, args, scratch):
    workdir = tempfile.mkdtemp(prefix="tokensmith-bench-")
    # The throttle is lifted: the wrong-password scenarios measure hashing, not refusals.
    server = Server(workdir, database_url, {"PASSWORD_HASH_CONCURRENCY": str(os.cpu_count()),
                                            "LOGIN_FAILURE_LIMIT": "1000000000",
                                            "LOGIN_ADDRESS_FAILURE_LIMIT": "1000000000"})
    server.cli("migrate")
    server.cli("user", "create", "bench", "--password-stdin", stdin=PASSWORD)
    create_imported_users(server)
    cold = []
    for _ in range(5):
        cold.append(server.start())
        server.stop()
    runs = []
    server.start()
    for i in range(args.runs):
        print(f"bench: {label}: run {i + 1} of {args.runs}", file=sys.stderr)
        runs.append(measure(server, args, scratch))
    server.stop()
    # Peak memory with 1,000 logins in flight at once.
    server.start()
    wrk(server, "/api/token/", lua_post({"username": "bench", "password": PASSWORD}), max(args.duration, 10), 1000, scratch=scratch)
    rss = server.peak_rss_mb()
    server.stop()
    shutil.rmtree(workdir, ignore_errors=True)
    return {"runs": runs, "cold_start_ms": statistics.median(cold) * 1e3, "rss_mb": rss}


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


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--postgres", help="also measure on this PostgreSQL database (it is used as is)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--out", default=os.path.join(ROOT, "BENCHMARKS.md"))
    args = parser.parse_args()
    scratch = tempfile.mkdtemp(prefix="tokensmith-bench-lua-")
    # Anything else running takes CPU from the server and wrk: recorded with the figures.
    load_before = os.getloadavg()[0]

    primitives = json.loads(subprocess.run([PRIMITIVES], capture_output=True, text=True, check=True).stdout)
    argon2_bound = os.cpu_count() / (primitives["argon2_hash_ms"] / 1e3)
    argon2_all_cores = primitives["argon2_all_cores_per_s"]

    sqlite_dir = tempfile.mkdtemp(prefix="tokensmith-bench-db-")
    backends = {"SQLite": bench_backend("SQLite", f"sqlite://{sqlite_dir}/bench.db?mode=rwc", args, scratch)}
    if args.postgres:
        backends["PostgreSQL"] = bench_backend("PostgreSQL", args.postgres, args, scratch)
    hs256 = bench_hs256(args, scratch)

    lines = [
        "# Benchmarks",
        "",
        f"- Machine: {machine()}",
        f"- Date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- Command: `bench/run.sh {' '.join(sys.argv[1:])}`".replace("  ", " "),
        f"- Load average (1 min) of the machine when the run started: {load_before:.1f}; when it ended: "
        f"{os.getloadavg()[0]:.1f} (on {os.cpu_count()} cores; anything above the bench's own load is other work).",
        f"- wrk, {args.connections} connections, {args.duration} s per measurement, median of {args.runs} runs; "
        "wrk runs on the same machine and takes CPU from the server. Ratios compare against `/healthz` "
        "measured in the same run.",
        "",
        "In-process cost of the primitives (this build, this machine):",
        "",
        f"- argon2id hash (m=19456 KiB, t=2, p=1): {primitives['argon2_hash_ms']:.1f} ms → argon2 bound "
        f"{os.cpu_count()} cores ÷ that = **{argon2_bound:.0f} logins/s**; measured with every core hashing at once "
        f"(shared caches and memory bandwidth): {argon2_all_cores:.0f} hashes/s",
        f"- ES256 verify: {primitives['es256_verify_us']:.1f} µs → {1e6 / primitives['es256_verify_us']:.0f}/s per core "
        "(the crypto bound of `/api/token/verify/`)",
        f"- HS256 verify: {primitives['hs256_verify_us']:.2f} µs",
        "- A wrong password against each of Django 5.2's hashers at its default cost (hashes Django made; "
        "what every failed login of an imported user costs, and the first successful one plus an argon2id hash): "
        + ", ".join(f"{hasher} {ms:.1f} ms" for hasher, ms in primitives["django_wrong_password_ms"].items()),
        "",
    ]
    for label, result in backends.items():
        runs = result["runs"]
        floor = median_of(runs, "healthz", "rps")
        lines += [f"## {label}", "", "| endpoint | req/s | p50 ms | p99 ms | vs /healthz | non-2xx |", "|---|---:|---:|---:|---:|---:|"]
        names = {
            "healthz": "`GET /healthz`", "jwks": "`GET /.well-known/jwks.json`", "verify": "`POST /api/token/verify/` (ES256)",
            "me": "`GET /api/me/`", "refresh": "`POST /api/token/refresh/` (rotation, 16 chains)", "login": "`POST /api/token/` (login)",
            "verify_during_logins": "verify while logins saturate hashing",
        }
        for key, name in names.items():
            ratios = [run[key]["rps"] / run["healthz"]["rps"] for run in runs]
            non2xx = sum(run[key]["non2xx"] + run[key]["errors"] for run in runs)
            lines.append(
                f"| {name} | {median_of(runs, key, 'rps'):,.0f} | {median_of(runs, key, 'p50_ms'):.2f} | "
                f"{median_of(runs, key, 'p99_ms'):.2f} | {statistics.median(ratios):.1%} | {non2xx} |")
        login = median_of(runs, "login", "rps")
        lines += [
            "",
            f"- Login: {login:.0f}/s = **{login / argon2_bound:.0%} of the argon2 bound** ({argon2_bound:.0f}/s = cores ÷ one hash), "
            f"{login / argon2_all_cores:.0%} of the all-cores hashing rate ({argon2_all_cores:.0f}/s).",
            f"- Cold start (process start → first 200 on `/healthz`, database migrated): **{result['cold_start_ms']:.0f} ms** (median of 5).",
            f"- Peak RSS with 1,000 concurrent logins: **{result['rss_mb']:.0f} MB**.",
            f"- `/healthz` floor of this build: {floor:,.0f} req/s.",
            "",
        ]
        lines += django_report(label, runs, primitives)
    hs_ratio = statistics.median(run["verify"]["rps"] / run["healthz"]["rps"] for run in hs256)
    hs_rps = statistics.median(run["verify"]["rps"] for run in hs256)
    lines += [
        "## HS256 (SQLite)",
        "",
        f"- `POST /api/token/verify/`: {hs_rps:,.0f} req/s = **{hs_ratio:.0%} of `/healthz`** in the same runs.",
        "",
    ]
    existing = ""
    if os.path.exists(args.out):
        with open(args.out) as f:
            existing = f.read()
    marker = "<!-- history -->"
    history = existing.split(marker, 1)[1] if marker in existing else ""
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n" + marker + history)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
