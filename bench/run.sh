#!/usr/bin/env bash
# The benchmark: builds release, starts tokensmith, measures every endpoint with wrk, writes
# BENCHMARKS.md. Usage: bench/run.sh [--postgres postgres://user@host:5432/db] [--runs 3] [--duration 10]
#   [--only refresh,growth,exchange,idle] [--growth 1000x1000] [--idle 10000] (bench/bench.py --help: all)
# Needs wrk (apt-get install -y wrk) and python3. Takes well over 10 minutes with the defaults;
# --only picks scenarios.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "bench: wrk is not installed (apt-get install -y wrk)" >&2; exit 1; }
cargo build --release --locked --bin tokensmith --example bench_primitives
# 1,000 concurrent connections, and 10,000 idle ones, need more than the usual 1,024 descriptors.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
python=python3
# The Clerk exchange signs RS256 tokens with `cryptography`: when this Python lacks it, a venv
# (gitignored) holds a pinned copy.
if ! python3 -c 'import cryptography' 2>/dev/null; then
  if [ ! -x bench/.venv/bin/python ]; then
    python3 -m venv bench/.venv
    bench/.venv/bin/pip install --quiet 'cryptography==48.0.0'
  fi
  python=bench/.venv/bin/python
fi
exec "$python" bench/bench.py "$@"
