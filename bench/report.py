"""BENCHMARKS.md from the results bench.py gathered. Scenarios that were not run (bench/run.sh
--only …) get no rows; the header says which ran."""

import datetime
import os
import statistics
import sys

from exchange import exchange_report
from growth import growth_report
from harness import machine, median_of
from idle import idle_report
from imported import django_report

ENDPOINTS = {
    "healthz": "`GET /healthz`", "jwks": "`GET /.well-known/jwks.json`", "verify": "`POST /api/token/verify/` (ES256)",
    "me": "`GET /api/me/`", "refresh": "`POST /api/token/refresh/` (rotation, 16 chains)", "login": "`POST /api/token/` (login)",
    "verify_during_logins": "verify while logins saturate hashing",
}


def header(args, only, primitives, load_before):
    argon2_bound = os.cpu_count() / (primitives["argon2_hash_ms"] / 1e3)
    ran = "every scenario" if only is None else "only " + ", ".join(sorted(only)) + " (the others were not run)"
    lines = [
        "# Benchmarks",
        "",
        f"- Machine: {machine()}",
        f"- Date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- Command: `bench/run.sh {' '.join(sys.argv[1:])}`".replace("  ", " "),
        f"- Scenarios: {ran}.",
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
        f"(shared caches and memory bandwidth): {primitives['argon2_all_cores_per_s']:.0f} hashes/s",
        f"- ES256 verify: {primitives['es256_verify_us']:.1f} µs → {1e6 / primitives['es256_verify_us']:.0f}/s per core "
        "(the crypto bound of `/api/token/verify/`)",
        f"- HS256 verify: {primitives['hs256_verify_us']:.2f} µs",
        "- A wrong password against each of Django 5.2's hashers at its default cost (hashes Django made; "
        "what every failed login of an imported user costs, and the first successful one plus an argon2id hash): "
        + ", ".join(f"{hasher} {ms:.1f} ms" for hasher, ms in primitives["django_wrong_password_ms"].items()),
        "",
    ]
    return lines


def endpoint_table(label, result, primitives):
    """The per-backend table of the standard scenarios, with what was run of them."""
    runs = result.get("runs") or []
    if not result:
        return []
    lines = [f"## {label}", ""]
    measured = [key for key in ENDPOINTS if runs and key in runs[0]]
    if measured:
        lines += ["| endpoint | req/s | p50 ms | p99 ms | vs /healthz | non-2xx |", "|---|---:|---:|---:|---:|---:|"]
    for key in measured:
        ratio = (f"{statistics.median(run[key]['rps'] / run['healthz']['rps'] for run in runs):.1%}"
                 if "healthz" in runs[0] else "—")
        non2xx = sum(run[key]["non2xx"] + run[key]["errors"] for run in runs)
        lines.append(f"| {ENDPOINTS[key]} | {median_of(runs, key, 'rps'):,.0f} | {median_of(runs, key, 'p50_ms'):.2f} | "
                     f"{median_of(runs, key, 'p99_ms'):.2f} | {ratio} | {non2xx} |")
    if measured:
        lines.append("")
    argon2_bound = os.cpu_count() / (primitives["argon2_hash_ms"] / 1e3)
    argon2_all_cores = primitives["argon2_all_cores_per_s"]
    if "login" in measured:
        login = median_of(runs, "login", "rps")
        lines.append(f"- Login: {login:.0f}/s = **{login / argon2_bound:.0%} of the argon2 bound** ({argon2_bound:.0f}/s "
                     f"= cores ÷ one hash), {login / argon2_all_cores:.0%} of the all-cores hashing rate ({argon2_all_cores:.0f}/s).")
    if "cold_start_ms" in result:
        lines.append(f"- Cold start (process start → first 200 on `/healthz`, database migrated): "
                     f"**{result['cold_start_ms']:.0f} ms** (median of 5).")
    if "rss_mb" in result:
        lines.append(f"- Peak RSS with 1,000 concurrent logins: **{result['rss_mb']:.0f} MB**.")
    if "healthz" in measured:
        lines.append(f"- `/healthz` floor of this build: {median_of(runs, 'healthz', 'rps'):,.0f} req/s.")
    if lines[-1] != "":
        lines.append("")
    if runs and "login_first_django" in runs[0]:
        lines += django_report(label, runs, primitives)
    if "growth" in result:
        lines += growth_report(label, result["growth"])
    if "exchange" in result:
        lines += exchange_report(label, result["exchange"])
    return lines


def hs256_section(hs256):
    hs_ratio = statistics.median(run["verify"]["rps"] / run["healthz"]["rps"] for run in hs256)
    hs_rps = statistics.median(run["verify"]["rps"] for run in hs256)
    return ["## HS256 (SQLite)", "",
            f"- `POST /api/token/verify/`: {hs_rps:,.0f} req/s = **{hs_ratio:.0%} of `/healthz`** in the same runs.", ""]


def write(path, args, only, primitives, load_before, backends, hs256, idle):
    lines = header(args, only, primitives, load_before)
    for label, result in backends.items():
        lines += endpoint_table(label, result, primitives)
    if idle is not None:
        lines += idle_report(idle, args.duration, args.connections)
    if hs256 is not None:
        lines += hs256_section(hs256)
    existing = ""
    if os.path.exists(path):
        with open(path) as f:
            existing = f.read()
    marker = "<!-- history -->"
    history = existing.split(marker, 1)[1] if marker in existing else ""
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n" + marker + history)
    print("\n".join(lines))
