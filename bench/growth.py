"""Growth under rotation: N sessions, each rotated M times, and what that leaves in the database.

Rows and bytes are taken after the logins, after every slice of rotations, and after
`tokensmith tokens flush-expired` (and, on PostgreSQL, after a plain VACUUM). The rotations run
in slices of equal size, each its own wrk run, so the refresh rate and p99 of the first slice
(young tables) can be set beside the last (aged tables)."""

import json
import os
import shutil
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

import db
from harness import PASSWORD, Server, wrk

# What a snapshot says besides rows and bytes that the report shows.
KEPT = ("dead_tuples", "checkpoint_busy")

# Logins in flight at once while the sessions are created (argon2id bounds them anyway).
LOGIN_WORKERS = 8


def parse_size(text):
    """`1000x1000` → (1000, 1000)."""
    try:
        sessions, rotations = (int(part.replace(",", "").replace("_", "")) for part in text.lower().split("x"))
    except ValueError:
        raise SystemExit(f"bench: --growth wants SESSIONSxROTATIONS (e.g. 1000x1000), got {text!r}")
    if sessions < 1 or rotations < 1:
        raise SystemExit("bench: --growth needs at least one session and one rotation")
    return sessions, rotations


def lua_rotate(tokens, threads, rotations, until, out):
    """Each wrk thread (one connection) owns the chains i ≡ its id (mod threads) and rotates them
    in turn, `rotations` times each, presenting the refresh token the previous rotation of that
    chain returned; then it appends a line to `until` and stops. `done` writes every chain's
    last token to `out` (`thread index token` per line) for the next slice."""
    quoted = ",".join(json.dumps(t) for t in tokens)
    return f"""
local tokens = {{{quoted}}}
local threads = {{}}
local counter = 0
setup = function(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end
init = function(args)
  mine = {{}}
  for i = id + 1, #tokens, {threads} do table.insert(mine, tokens[i]) end
  current = 1
  left = #mine * {rotations}
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  return wrk.format(nil, nil, nil, '{{"refresh":"' .. mine[current] .. '"}}')
end
response = function(status, headers, body)
  local fresh = body:match('"refresh":"([^"]+)"')
  if fresh then mine[current] = fresh end
  current = current % #mine + 1
  left = left - 1
  if left == 0 then
    local f = io.open({json.dumps(until)}, "a")
    f:write("done\\n")
    f:close()
    wrk.thread:stop()
  end
end
done = function(summary, latency, requests)
  report_summary(summary, latency, requests)
  local f = io.open({json.dumps(out)}, "w")
  for _, thread in ipairs(threads) do
    local id = thread:get("id")
    for j, token in ipairs(thread:get("mine")) do f:write(id, " ", j, " ", token, "\\n") end
  end
  f:close()
end
"""


def rotate(server, tokens, rotations, threads, scratch):
    """One slice: every chain rotated `rotations` times. Returns (wrk result, the new tokens)."""
    until, out = os.path.join(scratch, "growth-until"), os.path.join(scratch, "growth-tokens")
    script = lua_rotate(tokens, threads, rotations, until, out)
    # The duration is a ceiling only: the run ends when every thread has done its share.
    result = wrk(server, "/api/token/refresh/", script, 24 * 3600, threads, threads=threads, scratch=scratch,
                 until=until)
    fresh = list(tokens)
    with open(out) as f:
        for line in f:
            thread, j, token = line.split()
            fresh[int(thread) + (int(j) - 1) * threads] = token
    return result, fresh


def login_sessions(server, count):
    with ThreadPoolExecutor(LOGIN_WORKERS) as pool:
        return list(pool.map(lambda _: server.login()["refresh"], range(count)))


def slices(rotations, count):
    """`rotations` split into `count` slices as equal as can be."""
    count = max(1, min(count, rotations))
    return [rotations // count + (1 if i < rotations % count else 0) for i in range(count)]


def run_growth(label, database_url, args, scratch, extra_env):
    sessions, rotations = args.growth
    workdir = tempfile.mkdtemp(prefix="tokensmith-bench-growth-")
    server = Server(workdir, database_url, extra_env)
    server.cli("migrate")
    server.cli("user", "create", "bench", "--password-stdin", stdin=PASSWORD)
    server.start()
    print(f"bench: {label}: growth: logging {sessions:,} sessions in", file=sys.stderr)
    tokens = login_sessions(server, sessions)
    points = {"after logins": db.snapshot(database_url)}
    threads = min(args.connections, sessions)
    runs = []
    done = 0
    for i, share in enumerate(slices(rotations, args.growth_slices)):
        result, tokens = rotate(server, tokens, share, threads, scratch)
        done += share
        after = db.snapshot(database_url)
        runs.append({"rotations_per_session": done, "wrk": result, **after})
        print(f"bench: {label}: growth: slice {i + 1}: {done}/{rotations} rotations per session, "
              f"{result['rps']:,.0f} req/s, p99 {result['p99_ms']:.2f} ms, non-2xx {result['non2xx']}, "
              f"errors {result['errors']}, {after['bytes']:,} bytes, rows {after['rows']}", file=sys.stderr)
    points["after rotations"] = runs[-1] if runs else db.snapshot(database_url)
    flushed = server.cli("tokens", "flush-expired").strip()
    points["after flush-expired"] = db.snapshot(database_url)
    if not db.is_sqlite(database_url):
        db.vacuum(database_url)
        points["after flush-expired + VACUUM"] = db.snapshot(database_url)
    server.stop()
    shutil.rmtree(workdir, ignore_errors=True)
    result = {"sessions": sessions, "rotations": rotations, "threads": threads, "slices": runs,
              "points": {k: {"rows": v["rows"], **{n: v[n] for n in v if n.endswith("bytes") or n in KEPT}}
                         for k, v in points.items()},
              "flush_output": flushed}
    for line in growth_report(label, result):
        print(line)
    return result


def _per(value, divisor):
    return "—" if value is None else f"{value / divisor:,.2f}"


def growth_report(label, g):
    """The section of BENCHMARKS.md for one backend's growth run."""
    n, m = g["sessions"], g["rotations"]
    points = g["points"]
    base, rotated = points["after logins"], points["after rotations"]
    total = n * m
    how = ("main file + WAL after `PRAGMA wal_checkpoint(TRUNCATE)`" if "pages_bytes" in base else
           "sum of `pg_total_relation_size` (heap + indexes + TOAST) of the session tables, no VACUUM "
           "unless the row says so; `pg_database_size` beside it")
    lines = [
        f"### {label}: growth, {n:,} sessions × {m:,} rotations",
        "",
        f"{n:,} logins of one user, then every session's refresh token rotated {m:,} times in {len(g['slices'])} "
        f"slices (wrk, {g['threads']} connections, each rotating its own chains in turn). Bytes: {how}.",
        "",
        "| point | bytes | " + " | ".join(f"{t} rows (per session)" for t in db.SESSION_TABLES) + " |",
        "|---|---:|" + "---:|" * len(db.SESSION_TABLES),
    ]
    for name, p in points.items():
        extra = f" (database {p['database_bytes']:,}; dead tuples {p['dead_tuples']:,})" if "database_bytes" in p else ""
        # A checkpoint the server's readers kept from finishing leaves pages in the WAL (counted).
        extra += " (WAL checkpoint incomplete)" if p.get("checkpoint_busy") else ""
        cells = " | ".join("not in schema" if p["rows"][t] is None else f"{p['rows'][t]:,} ({_per(p['rows'][t], n)})"
                           for t in db.SESSION_TABLES)
        lines.append(f"| {name} | {p['bytes']:,}{extra} | {cells} |")
    grown = rotated["bytes"] - base["bytes"]
    per_row = ", ".join(f"{t} {_per(None if rotated['rows'][t] is None else rotated['rows'][t] - base['rows'][t], total)}"
                        for t in db.SESSION_TABLES)
    lines += ["", f"- Per rotation: **{grown / total:,.1f} bytes** ((after rotations − after logins) ÷ {total:,}); "
                  f"rows per rotation: {per_row}.",
              f"- `tokensmith tokens flush-expired` said: {g['flush_output'] or '(nothing)'}"]
    first, last = g["slices"][0], g["slices"][-1]
    lines += ["", "| slice | rotations per session so far | req/s | p50 ms | p99 ms | non-2xx + errors | bytes |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for i, s in enumerate(g["slices"]):
        w = s["wrk"]
        lines.append(f"| {i + 1} | {s['rotations_per_session']:,} | {w['rps']:,.0f} | {w['p50_ms']:.2f} | "
                     f"{w['p99_ms']:.2f} | {w['non2xx'] + w['errors']} | {s['bytes']:,} |")
    if len(g["slices"]) > 1:
        lines += ["", f"- First slice → last slice: {first['wrk']['rps']:,.0f} → {last['wrk']['rps']:,.0f} req/s, "
                      f"p99 {first['wrk']['p99_ms']:.2f} → {last['wrk']['p99_ms']:.2f} ms."]
    return lines + [""]
