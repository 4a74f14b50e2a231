#!/usr/bin/env bash
# The benchmark: builds release, starts tokensmith, measures every endpoint with wrk, writes
# BENCHMARKS.md. Usage: bench/run.sh [--postgres postgres://user@host:5432/db] [--runs 3] [--duration 10]
# Needs wrk (apt-get install -y wrk) and python3. Takes about 10 minutes with the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "bench: wrk is not installed (apt-get install -y wrk)" >&2; exit 1; }
cargo build --release --locked --bin tokensmith --example bench_primitives
# 1,000 concurrent connections need more than the usual 1,024 descriptors.
ulimit -n 65536 2>/dev/null || ulimit -n 4096 2>/dev/null || true
exec python3 bench/bench.py "$@"
