#!/usr/bin/env bash
# bench/router.sh: route lookup cost at 100, 10,000 and 100,000 routes.
#
# Runs the divan benchmark model/benches/router.rs: the data plane's
# matcher (turnpike_model::router) over generated routes (80% exact hosts
# with prefixes, 10% wildcard hosts, 10% any host, five regexes), looked up
# with a fixed mix of 1,024 requests (hits of every kind, some misses; one
# sample = the whole mix). Also times compiling the table. No processes, no
# network. Targets (median lookup): under 0.5 µs at 10,000 routes and under
# 1.5 µs at 100,000; a miss fails the full run.
#
# Usage:
#   bench/router.sh          full run (release build via cargo bench)
#   bench/router.sh --smoke  runs each benchmark once on the debug build, for
#                            CI: checks it builds and its requests still hit
#                            (also BENCH_SMOKE=1)
#
# Settings (environment): BENCH_OUT=bench/out.
set -euo pipefail
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_ROOT"

SMOKE=${BENCH_SMOKE:-0}
for arg in "$@"; do
  case "$arg" in
    --smoke) SMOKE=1 ;;
    -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "router.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done
case "$SMOKE" in 0 | "") SMOKE=0 ;; *) SMOKE=1 ;; esac

if ((SMOKE)); then
  # divan's test mode (what `cargo test` passes) runs each benchmark once,
  # asserts included, without measuring: seconds on the debug build.
  cargo test --quiet --locked -p turnpike-model --bench router
  exit 0
fi

result=$(cargo bench --quiet --locked -p turnpike-model --bench router 2>&1)
echo "$result"

# The median column of `lookup`'s rows, in ns: "├─ 10000  fastest │ slowest │ median │ ...".
median_ns() {
  awk -v n="$1" '
    /lookup/ { in_lookup = 1; next }
    in_lookup && $0 ~ ("─ " n " ") {
      split($0, cols, "│"); split(cols[3], m, " ")
      v = m[1]; u = m[2]
      if (u == "ps") v /= 1000; else if (u == "µs" || u == "us") v *= 1000; else if (u == "ms") v *= 1000000; else if (u == "s") v *= 1000000000
      print v; exit
    }' <<<"$result"
}

status=0
report=""
for target in 10000:500 100000:1500; do
  n=${target%%:*} limit=${target##*:}
  got=$(median_ns "$n")
  if [[ -z "$got" ]]; then
    echo "router.sh: no lookup result for $n routes" >&2
    exit 1
  fi
  verdict=$(awk -v g="$got" -v l="$limit" 'BEGIN { print (g < l) ? "pass" : "FAIL" }')
  [[ "$verdict" == pass ]] || status=1
  report+="| $n | $got ns | < $limit ns | $verdict |"$'\n'
done

OUT=${BENCH_OUT:-bench/out}
mkdir -p "$OUT"
{
  echo "# Route lookup ($(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown))"
  echo
  echo "Command: \`bench/router.sh\` (cargo bench, release profile)"
  echo
  echo "| routes | median lookup | target | |"
  echo "|---:|---:|---:|---|"
  printf '%s' "$report"
  echo
  echo '```'
  echo "$result"
  echo '```'
} >"$OUT/router.md"
printf '\n%s' "$report"
echo "report: $OUT/router.md"
exit $status
