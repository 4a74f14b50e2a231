"""Clerk exchange throughput with the keys cached: `POST /api/token/clerk/` with RS256 session
tokens signed here, against a JWKS served by a small HTTP server in this process.

Each exchange is an RS256 verify, the user's upsert and a new session. Two measurements: the
first exchange of each of many distinct Clerk users (the local user is created), then exchanges
of those users again (the common case: a returning user, a new session each time). The tokens
live an hour instead of Clerk's 60 s so that the pool signed before the run stays valid; the
server checks nothing that depends on the lifetime."""

import base64
import http.server
import json
import os
import statistics
import shutil
import sys
import tempfile
import threading
import time

import db
from harness import Server, median_of, wrk

try:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
except ImportError:  # run.sh makes bench/.venv with it when the system Python lacks it
    rsa = None

KID = "bench_clerk_key_1"
AZP = "https://app.example.com"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class FakeClerk:
    """An RSA key, the JWKS that publishes it on 127.0.0.1, and Clerk-shaped session tokens."""

    def __init__(self):
        if rsa is None:
            sys.exit("bench: the exchange scenario needs Python's `cryptography` (bench/run.sh puts it in bench/.venv)")
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        numbers = self.key.public_key().public_numbers()
        jwk = {"kty": "RSA", "kid": KID, "use": "sig", "alg": "RS256",
               "n": b64url(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
               "e": b64url(numbers.e.to_bytes(3, "big"))}
        body = json.dumps({"keys": [jwk]}).encode()
        fetches = self.fetches = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                fetches.append(self.path)
                found = self.path == "/.well-known/jwks.json"
                self.send_response(200 if found else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body) if found else 0))
                self.end_headers()
                if found:
                    self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        self.issuer = f"http://127.0.0.1:{self.http.server_address[1]}"

    def settings(self):
        # No CLERK_SECRET_KEY: the profile comes from the token, no Backend API call.
        return {"CLERK_ISSUER": self.issuer, "CLERK_AUTHORIZED_PARTIES": AZP}

    def session_token(self, number):
        now = int(time.time())
        header = {"alg": "RS256", "typ": "JWT", "kid": KID}
        claims = {"azp": AZP, "exp": now + 3600, "iat": now - 1, "nbf": now - 5, "iss": self.issuer,
                  "sid": f"sess_bench{number}", "sub": f"user_bench{number}"}
        signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
        signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{b64url(signature)}"

    def verify_us(self, token, rounds=2000):
        """One RS256 verify here (OpenSSL through `cryptography`), µs: an estimate of the server's
        (aws-lc) when bench_primitives does not measure RS256 itself."""
        signing_input, signature = token.rsplit(".", 1)
        signature = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
        public, data = self.key.public_key(), signing_input.encode()
        started = time.perf_counter()
        for _ in range(rounds):
            public.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        return (time.perf_counter() - started) / rounds * 1e6

    def close(self):
        self.http.shutdown()


def lua_tokens(tokens, threads=None, until=None):
    """Cycles through `tokens` (thread t starts at its own offset). With `threads` and `until`:
    thread t sends tokens t, t+threads, … once each, then appends a line to `until` and stops."""
    quoted = ",".join(json.dumps(t) for t in tokens)
    once = "" if until is None else f"""
response = function(status, headers, body)
  if sent > #tokens and not finished then
    finished = true
    local f = io.open({json.dumps(until)}, "a")
    f:write("done\\n")
    f:close()
    wrk.thread:stop()
  end
end"""
    step = threads or 1
    return f"""
local tokens = {{{quoted}}}
local counter = 0
setup = function(thread)
  thread:set("id", counter)
  counter = counter + 1
end
init = function(args)
  sent = id + 1
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  local token = tokens[(sent - 1) % #tokens + 1]
  sent = sent + {step}
  return wrk.format(nil, nil, nil, '{{"token":"' .. token .. '"}}')
end
{once}
"""


def run_exchange(label, database_url, args, scratch, primitives, extra_env):
    clerk = FakeClerk()
    workdir = tempfile.mkdtemp(prefix="tokensmith-bench-exchange-")
    server = Server(workdir, database_url, {**extra_env, **clerk.settings()})
    server.cli("migrate")
    print(f"bench: {label}: exchange: signing {args.exchange_users:,} Clerk session tokens", file=sys.stderr)
    tokens = [clerk.session_token(i) for i in range(args.exchange_users)]
    server.start()
    d, c = args.duration, args.connections
    threads = min(2, c)
    # The first exchange of every user: each token once, split between the threads.
    until = os.path.join(scratch, "exchange-until")
    first = wrk(server, "/api/token/clerk/", lua_tokens(tokens, threads, until), 3600, c, threads=threads,
                scratch=scratch, until=until)
    runs = [wrk(server, "/api/token/clerk/", lua_tokens(tokens), d, c, threads=threads, scratch=scratch)
            for _ in range(args.runs)]
    users = int(server_rows(server, "users"))
    server.stop()
    shutil.rmtree(workdir, ignore_errors=True)
    clerk.close()
    verify_us = primitives.get("rs256_verify_us")
    source = "bench_primitives (aws-lc, as the server)"
    if verify_us is None:
        verify_us = clerk.verify_us(tokens[0])
        source = "OpenSSL via Python `cryptography`, not the server's aws-lc: an estimate"
    result = {"first": first, "runs": runs, "jwks_fetches": len(clerk.fetches), "users": users,
              "tokens": len(tokens), "verify_us": verify_us, "verify_source": source, "connections": c,
              "duration": d}
    for line in exchange_report(label, result):
        print(line)
    return result


def server_rows(server, table):
    return db.query(server.env["DATABASE_URL"], f"SELECT count(*) FROM {table}")[0][0]


def exchange_report(label, r):
    bound = os.cpu_count() * 1e6 / r["verify_us"]
    runs = [{"x": run} for run in r["runs"]]
    first = r["first"]
    lines = [
        f"### {label}: Clerk exchange (`POST /api/token/clerk/`, keys cached)",
        "",
        f"RS256 session tokens of {r['tokens']:,} distinct Clerk users, signed before the run; the JWKS was "
        f"fetched {r['jwks_fetches']} time(s) in all ({r['users']:,} local users at the end). wrk, "
        f"{r['connections']} connections. RS256 verify: {r['verify_us']:.1f} µs ({r['verify_source']}) → "
        f"bound {os.cpu_count()} cores ÷ that = {bound:,.0f}/s.",
        "",
        "| scenario | req/s | p50 ms | p99 ms | % of RS256 bound | non-2xx + errors |",
        "|---|---:|---:|---:|---:|---:|",
        f"| first exchange of each user (user created, new session), {first['requests']:,} requests | "
        f"{first['rps']:,.0f} | {first['p50_ms']:.2f} | {first['p99_ms']:.2f} | {first['rps'] / bound:.0%} | "
        f"{first['non2xx'] + first['errors']} |",
    ]
    if runs:
        rps = median_of(runs, "x", "rps")
        bad = sum(run["x"]["non2xx"] + run["x"]["errors"] for run in runs)
        lines.append(f"| returning users (user updated, new session), {r['duration']} s, median of {len(runs)} | "
                     f"{rps:,.0f} | {median_of(runs, 'x', 'p50_ms'):.2f} | {median_of(runs, 'x', 'p99_ms'):.2f} | "
                     f"{rps / bound:.0%} | {bad} |")
    return lines + [""]


if __name__ == "__main__":
    clerk = FakeClerk()
    token = clerk.session_token(1)
    print(token)
    print(f"{statistics.median(clerk.verify_us(token, 500) for _ in range(3)):.1f} µs per RS256 verify")
    clerk.close()
