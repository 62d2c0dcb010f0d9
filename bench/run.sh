#!/usr/bin/env bash
# keyward's benchmark: one command, one table. See BENCHMARKS.md.
#   bench/run.sh           the full run (about 3 minutes after the build)
#   bench/run.sh --quick   a smaller, faster run
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v wrk >/dev/null; then
  apt-get update -qq && apt-get install -y -qq wrk
fi
cargo build --release --bin keyward --example bench
# The same server without the `rate-limits` feature, in its own target directory (so the
# two builds do not replace each other): the throughput section compares them.
cargo build --release --bin keyward --no-default-features --target-dir target/no-rate-limits
export NO_RATE_LIMITS_BIN=target/no-rate-limits/release/keyward
ulimit -n 65536 2>/dev/null || true
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r)" >&2
exec target/release/examples/bench "$@"
