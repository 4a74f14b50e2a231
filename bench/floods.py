"""Token verification while logins flood the hashing pool: with no flood, with a flood of argon2id
logins, and with a flood of wrong passwords against a user imported from Django (pbkdf2_sha256,
1,000,000 iterations, which never upgrades), measured in turns, round after round, on one server.
Taking turns pairs each flood with the others under the same conditions, so the comparison holds
on a machine whose other load drifts. Prints the table for BENCHMARKS.md.

Usage (after bench/run.sh has built the release binary): python3 bench/floods.py [--rounds 5] [--duration 10]
"""

import argparse
import os
import shutil
import statistics
import tempfile

from harness import PASSWORD, WRONG_PASSWORD, Server, lua_post, verify_during_flood, wrk
from imported import create_imported_users


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="tokensmith-floods-")
    server = Server(workdir, f"sqlite://{workdir}/bench.db?mode=rwc",
                    {"PASSWORD_HASH_CONCURRENCY": str(os.cpu_count()),
                     "LOGIN_FAILURE_LIMIT": "1000000000", "LOGIN_ADDRESS_FAILURE_LIMIT": "1000000000"})
    server.cli("migrate")
    server.cli("user", "create", "bench", "--password-stdin", stdin=PASSWORD)
    create_imported_users(server)
    server.start()
    access = server.login()["access"]
    verify = lua_post({"token": access})
    floods = {
        "no login flood": None,
        "argon2id logins (right password)": lua_post({"username": "bench", "password": PASSWORD}),
        "imported PBKDF2 user, wrong password": lua_post({"username": "imported-wrong", "password": WRONG_PASSWORD}),
    }
    results = {name: [] for name in floods}
    loads = []
    for round_ in range(args.rounds):
        for name, flood in floods.items():
            server.drain()
            if flood is None:
                result = wrk(server, "/api/token/verify/", verify, args.duration, args.connections, threads=1)
            else:
                result = verify_during_flood(server, flood, access, args, workdir, "flood")
            results[name].append(result)
            loads.append(os.getloadavg()[0])
            print(f"round {round_ + 1}: {name}: {result['rps']:,.0f} req/s, p99 {result['p99_ms']:.2f} ms", flush=True)
    server.drain()
    server.stop()
    shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(f"`POST /api/token/verify/` (ES256), {args.connections} connections, {args.duration} s each, "
          f"medians of {args.rounds} rounds taken in turns; load average {min(loads):.1f}–{max(loads):.1f} "
          f"on {os.cpu_count()} cores:")
    print()
    print("| while | req/s | p50 ms | p99 ms |")
    print("|---|---:|---:|---:|")
    for name, runs in results.items():
        median = lambda key: statistics.median(r[key] for r in runs)  # noqa: E731
        print(f"| {name} | {median('rps'):,.0f} | {median('p50_ms'):.2f} | {median('p99_ms'):.2f} |")


if __name__ == "__main__":
    main()
