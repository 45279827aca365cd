#!/usr/bin/env bash
# bench/policies.sh: what policies cost on the request path (issue 7).
#
# One origin (nginx answering `return 200 "ok"`), a control plane on a fresh
# Postgres database and one data plane (--worker-threads 1) with three
# routes to the same upstream, configured through the admin API:
#   plain  /plain  no plugin
#   key    /key    key-auth (header `apikey`) + rate-limit (policy local,
#                  key consumer, 1,000,000,000 per minute: never refuses) +
#                  request-transformer adding one header (x-bench: 1)
#   jwt    /jwt    jwt, RS256 only (a 2048-bit RSA key and a token made here
#                  with openssl; the public key is the consumer's credential)
# One consumer ("bench") holds the key-auth key and the JWT credential.
# wrk loads each route in turn with the same settings, interleaved round by
# round (each round starts with the next route), and every request carries
# both credentials (`apikey` and `Authorization: Bearer`), so the three
# request heads differ only in the path: what differs is the policies' work.
# With taskset and two CPUs the data plane runs on one CPU and wrk and the
# origin on the other, as in proxy.sh; the data plane's CPU time over each
# run gives requests per proxy-CPU-second.
#
# Before any load, each route must enforce what it is configured with, so
# the benchmark cannot measure a misconfigured route: /key answers 401
# without a key and with a wrong key, 200 with the key, the origin seeing
# x-bench: 1 and the consumer, and RateLimit-Limit on the answer; /jwt
# answers 401 without a token, with an altered one and with an expired one,
# 200 with the token, the origin seeing the consumer; /plain answers 200
# without credentials.
#
# Targets (issue 7, judged at c50 on requests/s, the ratio to plain
# printed per CPU-second too): key ≥ 0.85x plain, jwt ≥ 0.70x plain.
#
# Usage:
#   bench/policies.sh          full run (c 1/50/200, 3 rounds of 10 s: ~5 min)
#   bench/policies.sh --smoke  seconds-long run for CI, debug build: checks
#                              that every stage still works (also BENCH_SMOKE=1)
#   bench/policies.sh --callgrind   instructions per request instead of a
#                              load test: the data plane runs under valgrind
#                              (callgrind); per route, CALLGRIND_REQUESTS
#                              sequential keep-alive requests (after 200 of
#                              warm-up) between a zeroing and a dump of its
#                              counters (callgrind_control). Independent of
#                              other load on the machine; the dumps are kept
#                              in $BENCH_OUT/policies-callgrind-<time>/ for
#                              callgrind_annotate. About a minute.
#
# Settings (environment):
#   DURATION=10s  CONCURRENCY="1 50 200"  WARMUP=3s  ROUNDS=3
#   THREADS       wrk threads (default 1 when pinned, else 2)
#   PIN=auto      1 to require pinning, 0 to turn it off
#   FAIL_ON_TARGETS=1  a missed target fails the run (default: reported)
#   CALLGRIND_REQUESTS=2000   requests per route with --callgrind
#   TURNPIKE_BIN  turnpike binary to use; otherwise built with cargo
#   TURNPIKE_COMMIT  the commit that binary was built from, for the report
#   BENCH_PG=postgres://postgres@127.0.0.1:5432   Postgres server (trust auth)
#   BENCH_OUT=bench/out   where the markdown report is also written
#   BENCH_KEEP_TMP=1      keep the temp dir (configs, logs, wrk output)
#
# Exits non-zero when any stage fails: a process that does not come up, a
# config that does not reach the data plane, a route that does not enforce
# its policies as above, zero requests in a run, or any non-2xx answer or
# socket error during a run.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$REPO_ROOT/bench/lib.sh"
ORIGINAL_ARGS=("$@")

# ---------------------------------------------------------------- settings

SMOKE=${BENCH_SMOKE:-0}
CALLGRIND=0
for arg in "$@"; do
  case "$arg" in
    --smoke) SMOKE=1 ;;
    --callgrind) CALLGRIND=1 ;;
    -h | --help)
      usage "${BASH_SOURCE[0]}"
      exit 0
      ;;
    *)
      echo "policies.sh: unknown argument '$arg' (try --help)" >&2
      exit 2
      ;;
  esac
done
case "$SMOKE" in 0 | "") SMOKE=0 ;; *) SMOKE=1 ;; esac

if ((SMOKE)); then
  # Small and fixed on purpose: CI only checks that the pipeline still works.
  DURATION=1s CONCURRENCY=4 THREADS=1 WARMUP=0 ROUNDS=1
else
  DURATION=${DURATION:-10s}
  CONCURRENCY=${CONCURRENCY:-1 50 200}
  WARMUP=${WARMUP:-3s}
  ROUNDS=${ROUNDS:-3}
fi
CALLGRIND_REQUESTS=${CALLGRIND_REQUESTS:-2000}
((SMOKE)) && CALLGRIND_REQUESTS=100
PIN=${PIN:-auto}
FAIL_ON_TARGETS=${FAIL_ON_TARGETS:-0}
BENCH_PG=${BENCH_PG:-postgres://postgres@127.0.0.1:5432}
BENCH_OUT=${BENCH_OUT:-$REPO_ROOT/bench/out}
BENCH_KEEP_TMP=${BENCH_KEEP_TMP:-0}

TARGETS=(plain key jwt)
# Never reached at these rates: GCRA spacing 60 ns, burst the limit.
RATE_LIMIT=1000000000
JWT_ISSUER=bench-issuer

# ---------------------------------------------------------------- stages

# The consumer's key-auth key, a 2048-bit RSA key pair and RS256 tokens
# (good, altered payload, expired) signed with openssl. Sets API_KEY and
# JWT_GOOD, JWT_ALTERED, JWT_EXPIRED; the public key is $WORK/jwt/pub.pem.
make_credentials() {
  mkdir -p "$WORK/jwt"
  API_KEY="bench-key-$(random_hex 16)"
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$WORK/jwt/key.pem" \
    >"$WORK/openssl.out" 2>&1 || die "openssl could not make an RSA key: $(cat "$WORK/openssl.out")"
  openssl pkey -in "$WORK/jwt/key.pem" -pubout -out "$WORK/jwt/pub.pem" \
    >"$WORK/openssl.out" 2>&1 || die "openssl could not write the public key: $(cat "$WORK/openssl.out")"
  python3 - "$WORK/jwt/key.pem" "$JWT_ISSUER" >"$WORK/jwt/tokens" <<'EOF' || die "could not sign the JWTs"
import base64, json, subprocess, sys, time

key, issuer = sys.argv[1], sys.argv[2]

def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

def part(obj):
    return b64(json.dumps(obj, separators=(",", ":")).encode())

def sign(claims):
    head = part({"alg": "RS256", "typ": "JWT"}) + "." + part(claims)
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=head.encode(),
                         capture_output=True, check=True).stdout
    return head + "." + b64(sig)

now = int(time.time())
claims = {"iss": issuer, "sub": "bench", "iat": now, "exp": now + 86400}
good = sign(claims)
h, _, s = good.split(".")
altered = h + "." + part(dict(claims, sub="admin")) + "." + s
expired = sign(dict(claims, iat=now - 7200, exp=now - 3600))
print(good, altered, expired)
EOF
  read -r JWT_GOOD JWT_ALTERED JWT_EXPIRED <"$WORK/jwt/tokens"
}

# The origin, one nginx worker on the load tool's CPU: `return 200 "ok"`.
# Requests whose path ends in /check (sent only by check_routes, never
# under load) also get back what the origin saw of the x-bench header and
# the consumer, so the checks can tell the policies ran.
start_origin() {
  write_nginx_conf origin <<EOF
  server {
    listen 127.0.0.1:$ORIGIN_PORT;
    location ~ /check\$ {
      add_header X-Seen-Bench \$http_x_bench always;
      add_header X-Seen-Consumer \$http_x_consumer_username always;
      return 200 "ok";
    }
    location / {
      return 200 "ok";
    }
  }
EOF
  start_nginx origin "$ORIGIN_PORT" "${PIN_LOAD[@]}"
}

# The three routes, the consumer with its two credentials, and the plugins.
configure_turnpike() {
  local body version
  admin_post /api/v1/upstreams \
    "{\"name\":\"origin\",\"targets\":[{\"address\":\"127.0.0.1:$ORIGIN_PORT\"}]}" >/dev/null
  local t
  for t in "${TARGETS[@]}"; do
    admin_post /api/v1/routes "{\"name\":\"$t\",\"paths\":[\"/$t\"],\"upstream\":\"origin\"}" >/dev/null
  done
  admin_post /api/v1/consumers '{"username":"bench"}' >/dev/null
  admin_post /api/v1/consumers/bench/credentials \
    "{\"type\":\"key-auth\",\"key\":\"$API_KEY\"}" >/dev/null
  body=$(python3 -c 'import json, sys
print(json.dumps({"type": "jwt", "key": sys.argv[1], "algorithm": "RS256",
                  "public_key": open(sys.argv[2]).read()}))' "$JWT_ISSUER" "$WORK/jwt/pub.pem")
  admin_post /api/v1/consumers/bench/credentials "$body" >/dev/null
  admin_post /api/v1/plugins '{"name":"key-auth","route":"key","config":{"key_names":["apikey"]}}' >/dev/null
  admin_post /api/v1/plugins \
    "{\"name\":\"rate-limit\",\"route\":\"key\",\"config\":{\"limit\":$RATE_LIMIT,\"per\":\"minute\",\"key\":\"consumer\",\"policy\":\"local\"}}" >/dev/null
  admin_post /api/v1/plugins \
    '{"name":"request-transformer","route":"key","config":{"add":{"headers":{"x-bench":"1"}}}}' >/dev/null
  version=$(admin_post /api/v1/plugins '{"name":"jwt","route":"jwt","config":{"algorithms":["RS256"]}}')
  wait_until "config version $version on the data plane" 30 data_plane_has_version "$version"
  TURNPIKE_CONFIG_VERSION=$version
}

# expect WHAT CODE PATH [HEADER...]: one request through the data plane;
# fails unless it answers CODE. Leaves the head in $WORK/check-head and the
# body in $WORK/check-body.
expect() {
  local what=$1 want=$2 path=$3
  shift 3
  local args=() h code
  for h in "$@"; do args+=(-H "$h"); done
  code=$(curl -sS --max-time 5 "${args[@]}" -D "$WORK/check-head" -o "$WORK/check-body" \
    -w '%{http_code}' "http://127.0.0.1:$PROXY_PORT$path" 2>&1) ||
    die "$what: request to $path failed: $code"
  [[ "$code" == "$want" ]] ||
    die "$what: $path answered $code, not $want: $(head -c 300 "$WORK/check-body")"
  if [[ "$want" == 200 ]]; then
    [[ "$(cat "$WORK/check-body")" == ok ]] || die "$what: $path answered '$(head -c 300 "$WORK/check-body")', not 'ok'"
  fi
}

# The value of response header NAME in $WORK/check-head ("" when absent).
head_value() {
  tr -d '\r' <"$WORK/check-head" | awk -F': ' -v name="$1" 'tolower($1) == name { print $2; exit }'
}

# Each route enforces what it is configured with (see the top of the file).
check_routes() {
  local key="apikey: $API_KEY" bearer="Authorization: Bearer $JWT_GOOD"
  expect "plain, no credentials" 200 /plain/check
  [[ -z "$(head_value x-seen-consumer)" ]] || die "plain: the origin saw a consumer"

  expect "key, no key" 401 /key/check
  expect "key, a wrong key" 401 /key/check "apikey: bench-key-wrong-$(random_hex 8)"
  expect "key, only a JWT" 401 /key/check "$bearer"
  expect "key, the key" 200 /key/check "$key"
  [[ "$(head_value x-seen-bench)" == 1 ]] || die "key: the origin did not see x-bench: 1 (request-transformer)"
  [[ "$(head_value x-seen-consumer)" == bench ]] || die "key: the origin did not see the consumer (key-auth)"
  [[ "$(head_value ratelimit-limit)" == "$RATE_LIMIT" ]] ||
    die "key: no RateLimit-Limit: $RATE_LIMIT on the answer (rate-limit)"

  expect "jwt, no token" 401 /jwt/check
  expect "jwt, only the API key" 401 /jwt/check "$key"
  expect "jwt, an altered token" 401 /jwt/check "Authorization: Bearer $JWT_ALTERED"
  expect "jwt, an expired token" 401 /jwt/check "Authorization: Bearer $JWT_EXPIRED"
  expect "jwt, the token" 200 /jwt/check "$bearer"
  [[ "$(head_value x-seen-consumer)" == bench ]] || die "jwt: the origin did not see the consumer"
  [[ -z "$(head_value x-seen-bench)" ]] || die "jwt: the origin saw x-bench (the key route's plugin)"

  # Exactly what the load sends, once per route.
  local t
  for t in "${TARGETS[@]}"; do
    expect "$t, as under load" 200 "/$t" "$key" "$bearer"
  done
}

# Warm-up, then ROUNDS rounds of one run per route, per concurrency level,
# each round starting with the next route. Each line of results.txt:
# concurrency, route, round, then measure_run's fields.
run_benchmarks() {
  local conc t round duration warmup pid
  local headers=("apikey: $API_KEY" "Authorization: Bearer $JWT_GOOD")
  duration=$(seconds_of "$DURATION")
  case "$WARMUP" in "" | 0 | 0s) warmup=0 ;; *) warmup=$(seconds_of "$WARMUP") ;; esac
  pid=$(pid_of data-plane)
  : >"$WORK/results.txt"
  for conc in $CONCURRENCY; do
    if [[ "$warmup" != 0 ]]; then
      for t in "${TARGETS[@]}"; do
        log "c$conc warm-up: $t (${warmup}s)"
        run_load http "$WORK/warmup-$conc-$t.txt" "$warmup" "http://127.0.0.1:$PROXY_PORT/$t" "$conc" "${headers[@]}"
      done
    fi
    for ((round = 1; round <= ROUNDS; round++)); do
      rotation "$round" "${TARGETS[@]}"
      for t in "${ORDER[@]}"; do
        log "c$conc round $round/$ROUNDS: $t"
        measure_run http "$WORK/run-$conc-$t-$round.txt" "$duration" \
          "http://127.0.0.1:$PROXY_PORT/$t" "$conc" "$pid" "${headers[@]}"
        echo "$conc $t $round $MEASURED" >>"$WORK/results.txt"
        check_alive # a data plane that crashed under load fails the run here
      done
    done
  done
}

# ---------------------------------------------------------------- --callgrind

# Per route: 200 requests of warm-up, then CALLGRIND_REQUESTS counted;
# each line of results.txt: route, requests, instructions (Ir).
run_callgrind() {
  local t headers=("apikey: $API_KEY" "Authorization: Bearer $JWT_GOOD")
  : >"$WORK/results.txt"
  for t in "${TARGETS[@]}"; do
    log "callgrind: $t, 200 requests of warm-up, then $CALLGRIND_REQUESTS counted"
    send_requests "http://127.0.0.1:$PROXY_PORT/$t" 200 ok "${headers[@]}"
    callgrind_batch data-plane "$t" "http://127.0.0.1:$PROXY_PORT/$t" "$CALLGRIND_REQUESTS" ok "${headers[@]}"
    echo "$t $CALLGRIND_REQUESTS $CG_IR" >>"$WORK/results.txt"
  done
}

callgrind_report() {
  cat <<EOF
# Policies under callgrind: instructions per request$( ((SMOKE)) && echo " (smoke mode)")

- command: \`bench/policies.sh${ORIGINAL_ARGS[*]:+ ${ORIGINAL_ARGS[*]}}\` (CALLGRIND_REQUESTS=$CALLGRIND_REQUESTS)
- what: the data plane (1 worker thread) under \`valgrind --tool=callgrind\` ($(valgrind --version)); per route, 200 requests of warm-up, then the counters zeroed (\`callgrind_control -z\`), $CALLGRIND_REQUESTS sequential requests on one keep-alive connection with the load's headers (\`apikey\` and \`Authorization: Bearer\` on every route), then a dump (\`callgrind_control -d\`); instructions (Ir) of every thread of the process over the batch, divided by the requests. Counts, not time: independent of the machine's load, blind to cache misses and system-call time
- routes: plain (no plugin); key: key-auth + rate-limit (local, key consumer) + request-transformer (add one header); jwt: jwt RS256 (2048-bit RSA key)
- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); machine: $(machine_note)
- turnpike: commit $(commit_note), \`$TURNPIKE\` ($PROFILE_NOTE), config version $TURNPIKE_CONFIG_VERSION

EOF
  python3 - "$WORK/results.txt" <<'EOF'
import sys
rows = [line.split() for line in open(sys.argv[1])]
per = {t: int(ir) / int(n) for t, n, ir in rows}
base = per.get("plain")
print("| route | requests | instructions per request | vs plain | added over plain |")
print("|---|---:|---:|---:|---:|")
for t, n, ir in rows:
    p = per[t]
    print(f"| {t} | {int(n):,} | {p:,.0f} | {p / base:.2f}x | {p - base:+,.0f} |")
print()
EOF
}

machine_summary() {
  local cmd="bench/policies.sh${ORIGINAL_ARGS[*]:+ ${ORIGINAL_ARGS[*]}}"
  ((SMOKE)) || cmd="DURATION=$DURATION CONCURRENCY=\"$CONCURRENCY\" THREADS=$THREADS WARMUP=$WARMUP ROUNDS=$ROUNDS $cmd"
  cat <<EOF
# Policies: plain route vs key-auth + rate-limit + request-transformer vs jwt RS256$( ((SMOKE)) && echo " (smoke mode: not a measurement)")

- command: \`$cmd\`
- load: wrk $(wrk -v 2>&1 | head -n 1 | awk '{ print $2 }'), HTTP/1.1, concurrency $CONCURRENCY; $DURATION per run, warm-up $WARMUP per route and level, $ROUNDS interleaved round(s), medians of the rounds shown; $THREADS wrk thread(s); every request sends \`apikey\` and \`Authorization: Bearer\` (a $(printf %s "$JWT_GOOD" | wc -c)-byte RS256 token) to every route
- routes: plain (no plugin); key: key-auth (header apikey) + rate-limit (local, key consumer, $RATE_LIMIT per minute) + request-transformer (add header x-bench: 1); jwt: jwt (algorithms RS256, 2048-bit RSA key)
- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')
- machine: $(machine_note); load average at start ${LOADAVG_START}, at end $(cut -d' ' -f1-3 /proc/loadavg)
- pinning: $PIN_NOTE; affinity as run: $AFFINITY
- turnpike: commit $(commit_note), \`$TURNPIKE\` ($PROFILE_NOTE), data plane with 1 worker thread, config version $TURNPIKE_CONFIG_VERSION
- origin: nginx $(nginx -v 2>&1 | sed 's/^nginx version: nginx\///'), 1 worker, \`return 200 "ok"\`
- proxy CPU: utime + stime of the data plane (/proc/<pid>/stat, CLK_TCK $CLK_TCK) over each run; "requests per CPU-second" = requests / that time; "CPU per request" its inverse; "other load": the busy time of the data plane's CPU (/proc/stat) less the data plane's, per second of run (n/a when not pinned)

EOF
}

# The tables (medians per cell), the ratios to plain (of the medians, and
# the range of the per-round ratios: each round runs the routes back to
# back), the targets; exits 1 when a run served nothing or had a non-2xx
# answer or socket error, or with FAIL_ON_TARGETS=1 when a target is missed.
report() {
  python3 - "$WORK/results.txt" "$FAIL_ON_TARGETS" "$SMOKE" <<'EOF'
import statistics, sys
runs, concs, targets = {}, [], []
for line in open(sys.argv[1]):
    conc, target, rnd, rps, p50, p99, total, non2xx, errors, wall, cpu, other = line.split()
    conc = int(conc)
    if conc not in concs:
        concs.append(conc)
    if target not in targets:
        targets.append(target)
    runs.setdefault((conc, target), {})[int(rnd)] = dict(
        rps=float(rps), p50=float(p50), p99=float(p99), total=int(total),
        non2xx=int(non2xx), errors=int(errors),
        cores=None if cpu == "-" else float(cpu) / float(wall),
        other=None if other == "-" else float(other) / float(wall),
        per_cpu=None if cpu == "-" or float(cpu) <= 0 else int(total) / float(cpu))
fail_on_targets, smoke = sys.argv[2] == "1", sys.argv[3] == "1"
concs.sort()

def med(key, field):
    vals = [r[field] for r in runs.get(key, {}).values() if r[field] is not None]
    return statistics.median(vals) if vals else None

def lat(us):
    return f"{us:.0f} µs" if us < 1000 else f"{us / 1000:.2f} ms"

def num(v, fmt="{:,.0f}"):
    return "n/a" if v is None else fmt.format(v)

def ratio(a, b):
    return None if a is None or not b else a / b

def paired(c, t, field):
    """Per-round ratios t/plain: each round ran the routes back to back."""
    a, b = runs.get((c, t), {}), runs.get((c, "plain"), {})
    out = [a[k][field] / b[k][field] for k in a if k in b and a[k][field] and b[k][field]]
    return f"{min(out):.2f}–{max(out):.2f}" if len(out) > 1 else "—"

print("| c | route | requests/s | p50 | p99 | proxy CPU (cores) | other load on the proxy's CPU (cores) "
      "| requests per proxy-CPU-second | CPU per request | vs plain: requests/s | vs plain: per CPU-second "
      "| per-round ratios (requests/s; per CPU-second) | non-2xx | errors |")
print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|")
for c in concs:
    base_rps, base_cpu = med((c, "plain"), "rps"), med((c, "plain"), "per_cpu")
    for t in targets:
        key = (c, t)
        if key not in runs:
            continue
        rps, per_cpu = med(key, "rps"), med(key, "per_cpu")
        rr, rc = ratio(rps, base_rps), ratio(per_cpu, base_cpu)
        us = None if not per_cpu else 1e6 / per_cpu
        rounds = "—" if t == "plain" else f"{paired(c, t, 'rps')}; {paired(c, t, 'per_cpu')}"
        non2xx = sum(r["non2xx"] for r in runs[key].values())
        errors = sum(r["errors"] for r in runs[key].values())
        print(f"| {c} | {t} | {rps:,.0f} | {lat(med(key, 'p50'))} | {lat(med(key, 'p99'))} "
              f"| {num(med(key, 'cores'), '{:.2f}')} | {num(med(key, 'other'), '{:.2f}')} | {num(per_cpu)} "
              f"| {num(us, '{:.1f} µs')} | {num(rr, '{:.2f}x')} | {num(rc, '{:.2f}x')} | {rounds} "
              f"| {non2xx} | {errors} |")
print()

# What each policy set adds, in CPU per request, from the medians.
lines = []
for c in concs:
    base = med((c, "plain"), "per_cpu")
    for t in targets:
        cur = med((c, t), "per_cpu")
        if t != "plain" and base and cur:
            lines.append(f"c{c} {t}: {1e6 / cur - 1e6 / base:+.1f} µs")
if lines:
    print("CPU per request added over plain (medians): " + ", ".join(lines) + ".\n")

verdicts = []
goals = {"key": 0.85, "jwt": 0.70}
names = {"key": "key-auth + rate-limit + request-transformer", "jwt": "jwt RS256"}
judged = 50 if 50 in concs else concs[len(concs) // 2]
lines = []
for t, goal in goals.items():
    rr = ratio(med((judged, t), "rps"), med((judged, "plain"), "rps"))
    rc = ratio(med((judged, t), "per_cpu"), med((judged, "plain"), "per_cpu"))
    if rr is None:
        continue
    ok = rr >= goal
    verdicts.append(ok)
    # Three decimals: 0.845 is not 0.85.
    by_cpu = "n/a" if rc is None else f"{rc:.3f}x, {'≥' if rc >= goal else '<'} {goal:.2f}x"
    lines.append(f"- {names[t]} ≥ {goal:.2f}x plain requests/s at c{judged}: {rr:.3f}x, "
                 f"{'met' if ok else 'not met'} (per proxy-CPU-second: {by_cpu})")
if lines:
    print("Targets (issue 7" + (", smoke mode: meaningless" if smoke else "") + "):\n")
    print("\n".join(lines) + "\n")

failures = []
for (c, t), rs in runs.items():
    where = f"{t} (c{c})"
    if any(r["rps"] <= 0 or r["total"] == 0 for r in rs.values()):
        failures.append(f"{where}: a run completed zero requests")
    non2xx = sum(r["non2xx"] for r in rs.values())
    errors = sum(r["errors"] for r in rs.values())
    if non2xx:
        failures.append(f"{where}: {non2xx} non-2xx responses")
    if errors:
        failures.append(f"{where}: {errors} socket errors")
if fail_on_targets and not all(verdicts):
    failures.append("a target of issue 7 was missed (FAIL_ON_TARGETS=1)")
if failures:
    print("FAILED:\n" + "\n".join(f"- {f}" for f in failures))
    sys.exit(1)
EOF
}

# ---------------------------------------------------------------- main

main() {
  install_traps
  [[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive number"
  check_positive_list CONCURRENCY "$CONCURRENCY"
  seconds_of "$DURATION" >/dev/null

  ensure_command python3 python3
  ensure_command curl curl
  ensure_command psql postgresql-client
  ensure_command pgrep procps
  ensure_command openssl openssl
  ensure_command nginx nginx-light nginx
  ensure_command wrk wrk
  if ((CALLGRIND)); then ensure_command valgrind valgrind; fi
  resolve_turnpike
  choose_pinning
  LOADAVG_START=$(cut -d' ' -f1-3 /proc/loadavg)

  ADMIN_TOKEN="bench-admin-$(random_hex 16)"
  CLUSTER_TOKEN="bench-cluster-$(random_hex 16)"
  DB_NAME="turnpike_bench_$(random_hex 4)" # fresh per run: no state from earlier runs
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/turnpike-policies.XXXXXX")
  read -r ORIGIN_PORT ADMIN_PORT CLUSTER_PORT PROXY_PORT STATUS_PORT <<<"$(free_ports 5)"
  require_postgres

  make_credentials
  log "origin (nginx) on :$ORIGIN_PORT"
  start_origin
  log "control plane on :$ADMIN_PORT (admin) and :$CLUSTER_PORT (cluster), database $DB_NAME"
  start_control_plane
  if ((CALLGRIND)); then
    log "data plane under callgrind on :$PROXY_PORT (proxy) and :$STATUS_PORT (status)"
    start_callgrind_data_plane data-plane "$PROXY_PORT" "$STATUS_PORT" --worker-threads 1
  else
    log "data plane on :$PROXY_PORT (proxy) and :$STATUS_PORT (status)"
    start_data_plane data-plane "$PROXY_PORT" "$STATUS_PORT" --worker-threads 1
  fi
  log "configuring turnpike through the admin API"
  configure_turnpike
  log "checking that each route enforces its policies"
  check_routes
  AFFINITY=$(affinity_note data-plane origin)

  if ((CALLGRIND)); then
    run_callgrind
    callgrind_report >"$WORK/report.md"
    echo
    cat "$WORK/report.md"
    save_report policies-callgrind
    save_callgrind_dumps policies
    return 0
  fi

  run_benchmarks

  local rc=0
  {
    machine_summary
    report || rc=$?
  } >"$WORK/report.md"
  echo
  cat "$WORK/report.md"
  save_report policies
  ((rc == 0)) || die "benchmark checks failed (see FAILED above)"
}

# Sourcing the file (for its functions, e.g. to profile one route) runs nothing.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then main "$@"; fi
