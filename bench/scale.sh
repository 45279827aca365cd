#!/usr/bin/env bash
# bench/scale.sh: config distribution at scale.
#
# Each run is a fresh cluster on loopback: one control plane (a fresh
# database on 127.0.0.1:5432), one data plane, one origin. A generated
# document goes in as one import; measured: the import, the control plane's
# snapshot build time and encoded size, the data plane's apply time, message
# size and RSS before and after; then a one-route PATCH (delta size and apply
# time). A few requests through the proxy check that routing works.
#   run 1: 10,000 routes + 10,000 consumers (one key-auth credential each)
#   run 2: 100,000 routes, no consumers (it must work)
# Targets at 10,000 routes: apply under 500 ms, one-route delta under
# 10 KB, data-plane RSS under 200 MB. The report marks each pass or fail.
#
# Usage:
#   bench/scale.sh          full run (release build, a few minutes)
#   bench/scale.sh --smoke  500 routes + 500 consumers, then 2,000 routes,
#                           debug build, for CI (also BENCH_SMOKE=1)
#
# Settings (environment): RUNS="10000:10000 100000:0" (routes:consumers
# per run), BENCH_OUT=bench/out, TURNPIKE_BIN (otherwise built with cargo).
set -euo pipefail
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_ROOT"

SMOKE=${BENCH_SMOKE:-0}
for arg in "$@"; do
  case "$arg" in
    --smoke) SMOKE=1 ;;
    -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "scale.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done
case "$SMOKE" in 0 | "") SMOKE=0 ;; *) SMOKE=1 ;; esac
PROFILE=release
RUNS=${RUNS:-10000:10000 100000:0}
if ((SMOKE)); then
  # Checks that the benchmark still works, in seconds, on the debug build
  # CI already has; the sizes still go through import, snapshot and delta.
  PROFILE=debug
  RUNS="500:500 2000:0"
fi
PROFILE_FLAG=$([[ "$PROFILE" == release ]] && echo --release || true)
cargo build --quiet --locked $PROFILE_FLAG -p turnpike-cli --bin turnpike
cargo build --quiet --locked $PROFILE_FLAG -p turnpike-tests --bin bench-scale
export TURNPIKE_BIN=${TURNPIKE_BIN:-$REPO_ROOT/target/$PROFILE/turnpike}

results=()
for run in $RUNS; do
  routes=${run%%:*} consumers=${run##*:}
  echo "-- $routes routes, $consumers consumers" >&2
  result=$("target/$PROFILE/bench-scale" --routes "$routes" --consumers "$consumers")
  echo "$result"
  results+=("$result")
done

# One table row per run (jq when present; the JSON below has everything).
table() {
  command -v jq >/dev/null || return 0
  echo '| routes | consumers | import | CP build: import / one-route write | snapshot | DP apply | one-route delta | delta apply | DP RSS: before / after import / after delta (peak) | targets: apply / delta / RSS |'
  echo '|---:|---:|---:|---:|---:|---:|---:|---:|---|---|'
  # The targets are stated for 10,000 routes; other sizes show n/a.
  local row='def ms: "\(. * 10 | round / 10) ms"; def kb: "\(. / 100 | round / 10) KB";
    def pass: if . then "pass" else "FAIL" end;
    "| \(.routes) | \(.consumers) | \(.full.import_ms | ms)"
    + " | \(.full.control_plane.build_ms | ms) / \(.one_route_delta.control_plane.build_ms | ms)"
    + " | \(.full.control_plane.snapshot_bytes | kb) | \(.full.apply_ms | ms) (\(.full.kind))"
    + " | \(.one_route_delta.wire_bytes) B | \(.one_route_delta.apply_ms | ms)"
    + " | \(.data_plane_rss_mb | "\(.before) / \(.after_full) / \(.after_delta) MB (\(.peak))")"
    + " | \(if .routes == 10000 then .targets
           | "\(.apply_under_500_ms | pass) / \(.delta_under_10_kb | pass) / \(.rss_under_200_mb | pass)"
         else "n/a" end) |"'
  for r in "${results[@]}"; do
    jq -r "$row" <<<"$r"
  done
}

OUT=${BENCH_OUT:-bench/out}
mkdir -p "$OUT"
{
  echo "# Config distribution at scale ($(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown))"
  echo
  echo "Command: \`bench/scale.sh$([[ "$SMOKE" == 1 ]] && echo ' --smoke')\` ($PROFILE build, $(nproc) CPUs)"
  echo
  table
  echo
  echo '```json'
  printf '%s\n' "${results[@]}"
  echo '```'
} >"$OUT/scale.md"
echo "report: $OUT/scale.md"
