"""The bench's harness: a tokensmith process on its own port and database, wrk driven through
Lua scripts that report their summary as one JSON line, and the request bodies the scenarios send."""

import http.client
import json
import os
import platform
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# TOKENSMITH_BIN: measure another build (say, the commit before a change) with the same harness.
BINARY = os.environ.get("TOKENSMITH_BIN") or os.path.join(ROOT, "target", "release", "tokensmith")
PASSWORD = "benchmark password 1"
WRONG_PASSWORD = "not the benchmark password"

# Every wrk script reports its own summary as one JSON line, so nothing parses wrk's text. A script
# with its own `done` calls report_summary from it.
REPORT = """
report_summary = function(summary, latency, requests)
  io.write(string.format('BENCH_JSON {"requests":%d,"duration_us":%d,"non2xx":%d,"errors":%d,"p50_us":%d,"p99_us":%d}\\n',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
if done == nil then done = report_summary end
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
            # On stdin: a statement may be longer than one command-line argument may be.
            out = subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", url, "-f", "-"], input=statement,
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
        return self.status_mb("VmHWM")

    def rss_mb(self):
        """Resident memory now (peak_rss_mb is the highest it has been)."""
        return self.status_mb("VmRSS")

    def status_mb(self, field):
        with open(f"/proc/{self.process.pid}/status") as f:
            for line in f:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def open_fds(self):
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))


def wrk(server, path, script, duration, connections, threads=2, scratch="/tmp", until=None):
    """Runs wrk; returns {rps, p50_ms, p99_ms, non2xx, errors}. With `until` (a file the script
    appends one line to as each thread finishes its quota, then stops), wrk is interrupted once
    every thread has finished, so the rate counts only the time the work took."""
    path_lua = os.path.join(scratch, f"bench-{abs(hash(script))}.lua")
    with open(path_lua, "w") as f:
        f.write(script + REPORT)
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--timeout", "10s", "-s", path_lua,
               f"http://127.0.0.1:{server.port}{path}"]
    if until is None:
        out = subprocess.run(command, capture_output=True, text=True)
        stdout, stderr = out.stdout, out.stderr
    else:
        stdout, stderr = _wrk_until(command, until, threads)
    line = next((l for l in stdout.splitlines() if l.startswith("BENCH_JSON ")), None)
    if line is None:
        sys.exit(f"bench: wrk printed no summary:\n{stdout}\n{stderr}")
    r = json.loads(line[len("BENCH_JSON "):])
    return {"rps": r["requests"] / (r["duration_us"] / 1e6), "p50_ms": r["p50_us"] / 1e3,
            "p99_ms": r["p99_us"] / 1e3, "non2xx": r["non2xx"], "errors": r["errors"],
            "requests": r["requests"], "duration_s": r["duration_us"] / 1e6}


def _wrk_until(command, until, threads):
    """wrk sleeps its whole duration even when every thread has stopped; SIGINT ends the sleep
    and wrk reports the time until then."""
    open(until, "w").close()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while process.poll() is None:
        with open(until) as f:
            if sum(1 for _ in f) >= threads:
                process.send_signal(signal.SIGINT)
                break
        time.sleep(0.005)
    return process.communicate()


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


def median_of(runs, name, key):
    return statistics.median(run[name][key] for run in runs)
