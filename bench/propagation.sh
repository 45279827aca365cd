#!/usr/bin/env bash
# bench/propagation.sh: how fast an admin write reaches the fleet.
#
# One control plane (Postgres on BENCH_PG's server, a fresh database), five
# data planes and one origin, all release builds on loopback. 200 admin
# writes (PATCH of a route), one after another; each is timed from sending
# the write until every data plane has acknowledged its version in the fleet
# view. Reports p50 / p99 / max. Target: p99 under 100 ms.
#
# Usage:
#   bench/propagation.sh          full run (200 writes, 5 data planes)
#   bench/propagation.sh --smoke  10 writes, for CI (also BENCH_SMOKE=1)
#
# Settings (environment): WRITES=200 DATA_PLANES=5, BENCH_OUT=bench/out,
# TURNPIKE_BIN (otherwise built with cargo --release).
set -euo pipefail
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_ROOT"

SMOKE=${BENCH_SMOKE:-0}
for arg in "$@"; do
  case "$arg" in
    --smoke) SMOKE=1 ;;
    -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "propagation.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done
WRITES=${WRITES:-200}
DATA_PLANES=${DATA_PLANES:-5}
PROFILE=release
if [[ "$SMOKE" == 1 ]]; then
  WRITES=10
  # Smoke mode checks that the benchmark still runs; the debug build CI
  # already has is enough for that.
  PROFILE=debug
fi
PROFILE_FLAG=$([[ "$PROFILE" == release ]] && echo --release || true)
cargo build --quiet --locked $PROFILE_FLAG -p turnpike-cli --bin turnpike
cargo build --quiet --locked $PROFILE_FLAG -p turnpike-tests --bin bench-propagation
export TURNPIKE_BIN=${TURNPIKE_BIN:-$REPO_ROOT/target/$PROFILE/turnpike}

result=$("target/$PROFILE/bench-propagation" --writes "$WRITES" --data-planes "$DATA_PLANES")
echo "$result"
OUT=${BENCH_OUT:-bench/out}
mkdir -p "$OUT"
{
  echo "# Config propagation ($(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown))"
  echo
  echo "Command: \`bench/propagation.sh$([[ "$SMOKE" == 1 ]] && echo ' --smoke')\` ($PROFILE build)"
  echo
  echo '```json'
  echo "$result"
  echo '```'
} >"$OUT/propagation.md"
echo "report: $OUT/propagation.md"
