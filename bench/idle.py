"""Resident memory with many idle keep-alive connections open, and whether verification keeps its
p99 beside them.

Each idle connection sends one HTTP/1.1 keep-alive `GET /healthz`, reads the answer and then says
nothing. The server closes a connection that sends no complete request headers within
`REQUEST_TIMEOUT` (default 30 s) of its previous response (hyper's header-read timeout, set in
src/http/server.rs), so idle keep-alive connections live at most that long; and it serves at most
`MAX_CONNECTIONS` (default 1,024) at once, so the bench raises that above the idle count (the
rest would wait unaccepted in the kernel's queue, not idle in the server)."""

import resource
import select
import socket
import shutil
import sys
import tempfile
import time

from harness import PASSWORD, Server, lua_post, wrk

REQUEST = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n"


def raise_fd_limit(needed):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def open_idle(port, count, batch=100):
    """`count` connections, each after one answered keep-alive request, opened `batch` at a time
    without blocking: one by one, 10,000 take long enough for the first to near the server's idle
    timeout; in bursts of 500, connections overflow the listen queue and wait out SYN retries
    (1 s). Returns (sockets, failures)."""
    sockets, failed = [], 0
    for start in range(0, count, batch):
        pending = {}
        for _ in range(min(batch, count - start)):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            pending[s.fileno()] = s
        poller = select.poll()
        for fd in pending:
            poller.register(fd, select.POLLOUT)
        sent, deadline = {}, time.monotonic() + 30
        while len(sent) < len(pending) and time.monotonic() < deadline:
            for fd, events in poller.poll(1000):
                poller.unregister(fd)
                s = pending[fd]
                try:
                    if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0 and s.send(REQUEST) == len(REQUEST):
                        sent[fd] = s
                        continue
                except OSError:
                    pass
                sent[fd] = None
        for fd, s in pending.items():
            s.settimeout(30)
            try:
                if sent.get(fd) is not None and s.recv(4096).startswith(b"HTTP/1.1 200"):
                    sockets.append(s)
                    continue
            except OSError:
                pass
            s.close()
            failed += 1
    return sockets, failed


def still_open(sockets):
    """How many the server has not closed (a peer's close shows as POLLRDHUP, even when it sent
    something first, as a 408)."""
    poller = select.poll()
    for s in sockets:
        poller.register(s.fileno(), select.POLLRDHUP)
    gone = select.POLLRDHUP | select.POLLHUP | select.POLLERR
    closed = sum(1 for _, events in poller.poll(0) if events & gone)
    return len(sockets) - closed


def run_idle(database_url, args, scratch, extra_env):
    count = args.idle
    limit = raise_fd_limit(count + 2048)
    if limit < count + 100:
        sys.exit(f"bench: idle: the open-files limit is {limit}, too low for {count:,} connections (ulimit -n)")
    env = {**extra_env, "MAX_CONNECTIONS": str(count + 4 * args.connections + 64)}
    if args.idle_timeout:
        env["REQUEST_TIMEOUT"] = args.idle_timeout
    workdir = tempfile.mkdtemp(prefix="tokensmith-bench-idle-")
    server = Server(workdir, database_url, env)
    server.cli("migrate")
    server.cli("user", "create", "bench", "--password-stdin", stdin=PASSWORD)
    server.start()
    access = server.login()["access"]
    verify = lua_post({"token": access})
    d, c = args.duration, args.connections
    r = {"count": count, "max_connections": env["MAX_CONNECTIONS"], "timeout": env.get("REQUEST_TIMEOUT", "30s (default)")}
    r["verify_before"] = wrk(server, "/api/token/verify/", verify, d, c, scratch=scratch)
    r["rss_before_mb"], r["fds_before"] = server.rss_mb(), server.open_fds()
    print(f"bench: idle: opening {count:,} keep-alive connections", file=sys.stderr)
    started = time.monotonic()
    sockets, r["failed"] = open_idle(server.port, count)
    answered_at = time.monotonic()
    r["open_s"] = answered_at - started
    r["opened"] = len(sockets)
    r["rss_idle_mb"], r["fds_idle"] = server.rss_mb(), server.open_fds()
    r["verify_idle"] = wrk(server, "/api/token/verify/", verify, d, c, scratch=scratch)
    r["rss_after_mb"], r["hwm_mb"] = server.rss_mb(), server.peak_rss_mb()
    r["open_after_s"] = time.monotonic() - started
    r["open_after"] = still_open(sockets)
    r["fds_after"] = server.open_fds()
    # The bound: past REQUEST_TIMEOUT from the last answer, none should be left.
    wait = answered_at + timeout_seconds(r["timeout"]) + 2 - time.monotonic()
    if args.idle_wait and wait > 0:
        print(f"bench: idle: waiting {wait:.0f} s for the server's idle timeout", file=sys.stderr)
        time.sleep(wait)
    if args.idle_wait:
        r["waited_s"] = time.monotonic() - started
        r["open_waited"] = still_open(sockets)
        r["rss_waited_mb"], r["fds_waited"] = server.rss_mb(), server.open_fds()
    for s in sockets:
        s.close()
    server.stop()
    shutil.rmtree(workdir, ignore_errors=True)
    for line in idle_report(r, d, c):
        print(line)
    return r


def timeout_seconds(text):
    text = text.split()[0]
    units = {"ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    for unit in ("ms", "s", "m", "h"):
        if text.endswith(unit):
            return float(text[:-len(unit)]) * units[unit]
    return float(text)


def idle_report(r, d, c):
    before, idle = r["verify_before"], r["verify_idle"]
    per_conn_kb = (r["rss_idle_mb"] - r["rss_before_mb"]) * 1024 / max(r["opened"], 1)
    lines = [
        f"## {r['count']:,} idle keep-alive connections (SQLite)",
        "",
        f"Each connection sends one keep-alive `GET /healthz`, reads the 200 and stays idle; "
        f"`MAX_CONNECTIONS={r['max_connections']}`, `REQUEST_TIMEOUT` {r['timeout']} (an idle keep-alive "
        f"connection is closed that long after its last answer). Opened: {r['opened']:,} in {r['open_s']:.1f} s "
        f"({r['failed']} failed).",
        "",
        f"- Server RSS: {r['rss_before_mb']:.1f} MB before → **{r['rss_idle_mb']:.1f} MB** with them open "
        f"(≈ {per_conn_kb:.1f} KiB per connection) → {r['rss_after_mb']:.1f} MB after verify ran beside them; "
        f"peak {r['hwm_mb']:.1f} MB. Server file descriptors: {r['fds_before']:,} → {r['fds_idle']:,}.",
        "",
        f"| `POST /api/token/verify/`, {c} connections, {d} s | req/s | p50 ms | p99 ms | non-2xx + errors |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, w in (("alone", before), (f"beside {r['opened']:,} idle connections", idle)):
        lines.append(f"| {name} | {w['rps']:,.0f} | {w['p50_ms']:.2f} | {w['p99_ms']:.2f} | {w['non2xx'] + w['errors']} |")
    lines += ["", f"- Still open {r['open_after_s']:.0f} s after the first was opened (after the verify run): "
                  f"**{r['open_after']:,} of {r['opened']:,}** (server descriptors {r['fds_after']:,})."]
    if "open_waited" in r:
        lines.append(f"- {r['waited_s']:.0f} s after the first was opened (past `REQUEST_TIMEOUT` after the last answer): "
                     f"{r['open_waited']:,} still open; RSS {r['rss_waited_mb']:.1f} MB, "
                     f"server descriptors {r['fds_waited']:,}.")
    return lines + [""]
