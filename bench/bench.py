"""Drives tokensmith with wrk and writes BENCHMARKS.md. Run through bench/run.sh."""

import argparse
import base64
import datetime
import hashlib
import http.client
import json
import os
import platform
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "target", "release", "tokensmith")
PRIMITIVES = os.path.join(ROOT, "target", "release", "examples", "bench_primitives")
PASSWORD = "benchmark password 1"
WRONG_PASSWORD = "not the benchmark password"
# Django 5.2's default hasher and cost, for the users moved over from Django.
DJANGO_ITERATIONS = 1_000_000


def django_pbkdf2_sha256(password, salt, iterations=DJANGO_ITERATIONS):
    """What Django 5.2's default hasher (PBKDF2PasswordHasher.encode) writes: the same standard
    library call Django makes (django.utils.crypto.pbkdf2) and the same format, so the bench
    needs no Django. tokensmith's own tests check hashes real Django made."""
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations)
    return f"pbkdf2_sha256${iterations}${salt}${base64.b64encode(digest).decode('ascii').strip()}"

# Every wrk script reports its own summary as one JSON line, so nothing parses wrk's text.
REPORT = """
done = function(summary, latency, requests)
  io.write(string.format('BENCH_JSON {"requests":%d,"duration_us":%d,"non2xx":%d,"errors":%d,"p50_us":%d,"p99_us":%d}\\n',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def machine():
    model = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores, {model}, {platform.system()} {platform.release()}"


class Server:
    """One tokensmith process on its own port and working directory."""

    def __init__(self, workdir, database_url, extra=None):
        self.workdir = workdir
        self.port = free_port()
        self.env = {
            "PATH": os.environ.get("PATH", ""),
            "DATABASE_URL": database_url,
            "LISTEN_ADDR": f"127.0.0.1:{self.port}",
            "RUST_LOG": "warn",
            "ACCESS_TOKEN_LIFETIME": "1h",
            "REFRESH_TOKEN_LIFETIME": "1d",
            **(extra or {}),
        }
        self.process = None

    def cli(self, *args, stdin=None):
        out = subprocess.run([BINARY, *args], env=self.env, cwd=self.workdir, input=stdin,
                             capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"bench: tokensmith {' '.join(args)} failed: {out.stderr.strip()}")
        return out.stdout

    def sql(self, statement):
        """One statement on the server's database, from outside (as the importer would write)."""
        url = self.env["DATABASE_URL"]
        if url.startswith("sqlite:"):
            db = sqlite3.connect(url[len("sqlite://"):].split("?")[0], timeout=30)
            with db:
                db.execute(statement)
            db.close()
        else:
            out = subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", statement],
                                 capture_output=True, text=True)
            if out.returncode != 0:
                sys.exit(f"bench: psql failed: {out.stderr.strip()}")

    def start(self):
        """Starts the server; returns seconds from process start to the first 200 on /healthz."""
        started = time.perf_counter()
        self.process = subprocess.Popen([BINARY, "serve"], env=self.env, cwd=self.workdir,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    return time.perf_counter() - started
            except OSError:
                pass
            if self.process.poll() is not None:
                sys.exit("bench: tokensmith exited at start")
            if time.perf_counter() - started > 30:
                sys.exit("bench: tokensmith did not answer /healthz in 30 s")
            time.sleep(0.001)

    def stop(self):
        if self.process:
            self.process.terminate()
            self.process.wait()
            self.process = None

    def request(self, method, path, body=None, token=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        conn.request(method, path, json.dumps(body) if body is not None else None, headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"null")

    def login(self):
        status, body = self.request("POST", "/api/token/", {"username": "bench", "password": PASSWORD})
        if status != 200:
            sys.exit(f"bench: login failed: {status} {body}")
        return body

    def drain(self):
        """Waits out the hashing jobs still queued from a measurement that ended (wrk leaves its
        last requests in flight): a login queues behind them, so when it returns they are done."""
        self.login()

    def peak_rss_mb(self):
        with open(f"/proc/{self.process.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return float("nan")


def wrk(server, path, script, duration, connections, threads=2, scratch="/tmp"):
    """Runs wrk; returns {rps, p50_ms, p99_ms, non2xx, errors}."""
    path_lua = os.path.join(scratch, f"bench-{abs(hash(script))}.lua")
    with open(path_lua, "w") as f:
        f.write(script + REPORT)
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--timeout", "10s", "-s", path_lua,
         f"http://127.0.0.1:{server.port}{path}"],
        capture_output=True, text=True)
    line = next((l for l in out.stdout.splitlines() if l.startswith("BENCH_JSON ")), None)
    if line is None:
        sys.exit(f"bench: wrk printed no summary:\n{out.stdout}\n{out.stderr}")
    r = json.loads(line[len("BENCH_JSON "):])
    return {"rps": r["requests"] / (r["duration_us"] / 1e6), "p50_ms": r["p50_us"] / 1e3,
            "p99_ms": r["p99_us"] / 1e3, "non2xx": r["non2xx"], "errors": r["errors"]}


def lua_post(body, token=None):
    auth = f'wrk.headers["Authorization"] = "Bearer {token}"\n' if token else ""
    return (f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n{auth}'
            f"wrk.body = {json.dumps(json.dumps(body))}\n")


def lua_get(token=None):
    return f'wrk.headers["Authorization"] = "Bearer {token}"\n' if token else ""


def lua_refresh_chains(tokens):
    """One connection per wrk thread, each rotating its own chain: every request presents the
    refresh token the previous response returned, as a single-page app does."""
    quoted = ",".join(json.dumps(t) for t in tokens)
    return f"""
local tokens = {{{quoted}}}
local next_index = 1
setup = function(thread)
  thread:set("token", tokens[next_index])
  next_index = next_index + 1
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  return wrk.format(nil, nil, nil, '{{"refresh":"' .. token .. '"}}')
end
response = function(status, headers, body)
  local fresh = body:match('"refresh":"([^"]+)"')
  if fresh then token = fresh end
end
"""


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


def verify_during_flood(server, flood_body, access, args, scratch, name):
    """Verify latency while `flood_body` logins saturate the hashing pool."""
    d, c = args.duration, args.connections
    path_lua = os.path.join(scratch, f"{name}.lua")
    with open(path_lua, "w") as f:
        f.write(flood_body)
    flood = subprocess.Popen(["wrk", "-t1", f"-c{c}", f"-d{d + 2}s", "--timeout", "30s", "-s", path_lua,
                              f"http://127.0.0.1:{server.port}/api/token/"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)
    result = wrk(server, "/api/token/verify/", lua_post({"token": access}), d, c, threads=1, scratch=scratch)
    flood.wait()
    return result


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


def median_of(runs, name, key):
    return statistics.median(run[name][key] for run in runs)


# More imported users than first logins at the PBKDF2 bound in any measurement.
DJANGO_USERS = 5000


def bench_backend(label, database_url, args, scratch):
    workdir = tempfile.mkdtemp(prefix="tokensmith-bench-")
    # The throttle is lifted: the wrong-password scenarios measure hashing, not refusals.
    server = Server(workdir, database_url, {"PASSWORD_HASH_CONCURRENCY": str(os.cpu_count()),
                                            "LOGIN_FAILURE_LIMIT": "1000000000",
                                            "LOGIN_ADDRESS_FAILURE_LIMIT": "1000000000"})
    server.cli("migrate")
    server.cli("user", "create", "bench", "--password-stdin", stdin=PASSWORD)
    # Imported Django users: enough that a first-login measurement never runs out of them. They
    # share one hash (each login checks it all the same); Django's salts are 22 characters.
    server.django_hash = django_pbkdf2_sha256(PASSWORD, "benchDjangoSalt0123456")
    names = [f"imported{i}" for i in range(DJANGO_USERS)] + ["imported-wrong"]
    users = ",".join(f"('{name}', '{server.django_hash}', 0)" for name in names)
    server.sql(f"INSERT INTO users (username, password_hash, created_at) VALUES {users}")
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
    lines = [
        f"### {label}: users imported from Django (pbkdf2_sha256, {DJANGO_ITERATIONS:,} iterations)",
        "",
        f"Hashing: {threads} threads × the cost of each check ({pbkdf2_ms:.0f} ms PBKDF2, {argon2_ms:.1f} ms argon2id). "
        "A successful login upgrades the hash, so PBKDF2 is measured on first logins of many distinct "
        f"imported users ({DJANGO_USERS:,} sharing one Django hash, each logged in once) and on wrong passwords "
        "against one imported user (repeatable: a failure never upgrades). The throttle is lifted for these runs.",
        "",
        "| scenario | req/s | p50 ms | p99 ms | bound (hashing) | % of bound | non-2xx |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for key, name in names.items():
        rps = median_of(runs, key, "rps")
        bound, how = bounds.get(key, (None, ""))
        shown = f"{bound:,.1f}/s = {how}" if bound else "—"
        share = f"{rps / bound:.0%}" if bound else "—"
        non2xx = sum(run[key]["non2xx"] + run[key]["errors"] for run in runs)
        lines.append(f"| {name} | {rps:,.1f} | {median_of(runs, key, 'p50_ms'):.2f} | "
                     f"{median_of(runs, key, 'p99_ms'):.2f} | {shown} | {share} | {non2xx} |")
    return lines + [""]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--postgres", help="also measure on this PostgreSQL database (it is used as is)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--out", default=os.path.join(ROOT, "BENCHMARKS.md"))
    args = parser.parse_args()
    scratch = tempfile.mkdtemp(prefix="tokensmith-bench-lua-")

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
