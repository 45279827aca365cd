#!/usr/bin/env bash
# bench/proxy.sh: HTTP/1.1 proxy throughput and tail latency, side by side.
#
# One origin (`turnpike echo`) is load-tested three ways with identical `wrk`
# settings, interleaved round by round so that machine drift hits all three
# alike:
#   direct    wrk → origin                  (the ceiling)
#   turnpike  wrk → turnpike data plane → origin
#   nginx     wrk → nginx (1 worker, upstream keepalive) → origin
# The data plane gets one worker thread and nginx one worker process, so the
# comparison is one core against one core.
#
# Usage:
#   bench/proxy.sh            full run (a few minutes)
#   bench/proxy.sh --smoke    seconds-long run for CI: checks that every stage
#                             still works (also BENCH_SMOKE=1)
#
# Settings (environment):
#   DURATION=10s CONNECTIONS=50 THREADS=2   wrk settings for each measured run
#   WARMUP=3s     unmeasured run per target before the first round (0 = none)
#   ROUNDS=3      measured runs per target; the report shows the median
#   TURNPIKE_BIN  turnpike binary to use; otherwise built with cargo
#   BENCH_PG=postgres://postgres@127.0.0.1:5432   Postgres server (trust auth)
#   BENCH_OUT=bench/out   where the markdown report is also written
#   BENCH_KEEP_TMP=1      keep the temp dir (configs, logs, wrk output)
#
# Exits non-zero when any stage fails: a process that does not come up, a
# config that does not reach the data plane, a target answering anything but
# 200 before the run, zero requests/s, or any non-2xx answer or socket error
# during a run.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Debian installs nginx in /usr/sbin, which is not on most users' PATH.
PATH=$PATH:/usr/sbin:/sbin
ORIGINAL_ARGS=("$@")

# ---------------------------------------------------------------- settings

SMOKE=${BENCH_SMOKE:-0}
for arg in "$@"; do
  case "$arg" in
    --smoke) SMOKE=1 ;;
    -h | --help)
      sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
      exit 0
      ;;
    *)
      echo "proxy.sh: unknown argument '$arg' (try --help)" >&2
      exit 2
      ;;
  esac
done
case "$SMOKE" in 0 | "") SMOKE=0 ;; *) SMOKE=1 ;; esac

if ((SMOKE)); then
  # Small and fixed on purpose: CI only checks that the pipeline still works.
  DURATION=1s CONNECTIONS=4 THREADS=1 WARMUP=0 ROUNDS=1
else
  DURATION=${DURATION:-10s}
  CONNECTIONS=${CONNECTIONS:-50}
  THREADS=${THREADS:-2}
  WARMUP=${WARMUP:-3s}
  ROUNDS=${ROUNDS:-3}
fi
BENCH_PG=${BENCH_PG:-postgres://postgres@127.0.0.1:5432}
BENCH_OUT=${BENCH_OUT:-$REPO_ROOT/bench/out}
BENCH_KEEP_TMP=${BENCH_KEEP_TMP:-0}

TARGETS=(direct turnpike nginx)

# Filled in as things start; read by cleanup.
WORK=""
DB_NAME=""
PIDS=()      # children in start order; stopped in reverse
NAMES=()     # their names, for messages
DB_CREATED=0 # set once the control plane may have created the database
WRK_PID=""

# ---------------------------------------------------------------- helpers

log() { printf '==> %s\n' "$*" >&2; }
warn() { printf 'proxy.sh: %s\n' "$*" >&2; }

# Prints the reason, the end of every child's log, and exits (cleanup runs
# from the EXIT trap).
die() {
  warn "error: $*"
  dump_logs
  exit 1
}

dump_logs() {
  [[ -n "$WORK" && -d "$WORK" ]] || return 0
  local f
  for f in "$WORK"/*.log; do
    [[ -s "$f" ]] || continue
    printf '\n----- last lines of %s -----\n' "$(basename "$f")" >&2
    tail -n 25 "$f" >&2
  done
}

# Stops every child (newest first) with SIGTERM, then SIGKILL after a grace
# period, drops the benchmark database once the control plane is gone, and
# removes the temp dir.
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  [[ -n "$WRK_PID" ]] && kill "$WRK_PID" 2>/dev/null
  # Grandchildren (nginx's worker) are noted now: a parent killed below
  # would orphan them, and they could no longer be found by parent.
  local grandchildren=()
  if ((${#PIDS[@]})) && command -v pgrep >/dev/null; then
    mapfile -t grandchildren < <(pgrep -P "$(IFS=,; echo "${PIDS[*]}")")
  fi
  local i pid
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    kill -TERM "${PIDS[i]}" 2>/dev/null
  done
  local deadline=$((SECONDS + 10))
  for pid in "${PIDS[@]}" $WRK_PID "${grandchildren[@]}"; do
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      warn "pid $pid did not stop on SIGTERM; killing it"
      kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null # reaps children; a no-op for grandchildren
  done
  if ((DB_CREATED)); then
    # FORCE (Postgres 13+) also ends sessions a killed control plane left.
    psql_admin -c "DROP DATABASE IF EXISTS \"$DB_NAME\" WITH (FORCE)" >/dev/null 2>&1 ||
      psql_admin -c "DROP DATABASE IF EXISTS \"$DB_NAME\"" >/dev/null ||
      warn "could not drop database $DB_NAME; drop it by hand"
  fi
  if [[ -n "$WORK" && -d "$WORK" ]]; then
    if [[ "$BENCH_KEEP_TMP" == 1 ]]; then
      warn "kept $WORK"
    else
      rm -rf "$WORK"
    fi
  fi
  exit "$rc"
}

# psql as the Postgres superuser on the server's maintenance database.
psql_admin() {
  psql -X -q -v ON_ERROR_STOP=1 "$BENCH_PG/postgres" "$@"
}

# Installs Debian packages for missing commands; `apt-get update` only when a
# plain install fails (a fresh image has no package lists). RUNLEVEL=1 stops
# the nginx package from starting the system nginx on port 80.
ensure_command() {
  local cmd=$1
  shift
  command -v "$cmd" >/dev/null && return 0
  local sudo=()
  if ((EUID != 0)); then
    command -v sudo >/dev/null || die "'$cmd' is missing: install $1 as root (apt-get install $1)"
    sudo=(sudo)
  fi
  apt_install() {
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -q "$1" >&2
  }
  local pkg
  for pkg in "$@"; do
    log "installing $pkg (for $cmd)"
    if apt_install "$pkg" || { "${sudo[@]}" apt-get update -q >&2 && apt_install "$pkg"; }; then
      command -v "$cmd" >/dev/null && return 0
    fi
  done
  die "'$cmd' is missing and could not be installed (tried: $*)"
}

# Prints N distinct free loopback ports. All sockets stay bound until all
# are chosen, so the N differ; another program could still take one before
# our child binds it, but within the second this takes that is unlikely.
free_ports() {
  python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

random_hex() { python3 -c 'import secrets, sys; print(secrets.token_hex(int(sys.argv[1])))' "$1"; }

# start NAME CMD...: runs CMD in the background with its output in
# $WORK/NAME.log, and records its pid for cleanup. NO_COLOR keeps terminal
# colour codes out of the logs.
start() {
  local name=$1
  shift
  NO_COLOR=1 "$@" </dev/null >"$WORK/$name.log" 2>&1 &
  PIDS+=($!)
  NAMES+=("$name")
}

# Fails (with the logs) if a started child has already exited.
check_alive() {
  local i
  for i in "${!PIDS[@]}"; do
    kill -0 "${PIDS[i]}" 2>/dev/null || die "${NAMES[i]} (pid ${PIDS[i]}) exited early"
  done
}

# wait_until WHAT SECONDS CMD...: polls CMD every 0.1 s until it succeeds,
# failing with WHAT when SECONDS pass or a child dies meanwhile.
wait_until() {
  local what=$1 timeout=$2
  shift 2
  local deadline=$((SECONDS + timeout))
  until "$@"; do
    check_alive
    ((SECONDS < deadline)) || die "timed out after ${timeout}s waiting for $what"
    sleep 0.1
  done
}

port_open() { (: >"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

http_status_is() { # http_status_is CODE URL
  [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$2")" == "$1" ]]
}

# ---------------------------------------------------------------- stages

# Uses $TURNPIKE_BIN, else builds the CLI. Smoke mode builds the debug
# profile: CI has just built it for the tests, and a release build (thin LTO)
# would cost minutes on a 2-core runner for a check that measures nothing.
resolve_turnpike() {
  if [[ -n "${TURNPIKE_BIN:-}" ]]; then
    [[ -x "$TURNPIKE_BIN" ]] || die "TURNPIKE_BIN=$TURNPIKE_BIN is not an executable"
    TURNPIKE=$TURNPIKE_BIN
    PROFILE_NOTE="given by TURNPIKE_BIN"
    # Catch the easy mistake of benchmarking an unoptimised binary.
    if [[ "$TURNPIKE" == */debug/* ]]; then
      PROFILE_NOTE="$PROFILE_NOTE; a DEBUG build, so the numbers mean little"
    fi
    return
  fi
  local profile=(--release) dir=release
  if ((SMOKE)); then profile=() dir=debug; fi
  log "building turnpike (cargo build ${profile[*]} -p turnpike-cli)"
  (cd "$REPO_ROOT" && cargo build "${profile[@]}" --locked -p turnpike-cli) >&2 ||
    die "cargo build failed"
  TURNPIKE=$REPO_ROOT/target/$dir/turnpike
  PROFILE_NOTE="$dir build"
}

start_origin() {
  start origin "$TURNPIKE" echo --listen "127.0.0.1:$ORIGIN_PORT" --name origin
  wait_until "the origin on port $ORIGIN_PORT" 15 port_open "$ORIGIN_PORT"
}

start_control_plane() {
  DB_CREATED=1 # it creates the database; cleanup drops it either way
  start control-plane "$TURNPIKE" control-plane \
    --database-url "$BENCH_PG/$DB_NAME" \
    --admin-listen "127.0.0.1:$ADMIN_PORT" \
    --cluster-listen "127.0.0.1:$CLUSTER_PORT" \
    --admin-token "$ADMIN_TOKEN" \
    --cluster-token "$CLUSTER_TOKEN"
  # Migrations run before the listeners open; a cold first start can be slow.
  wait_until "the control plane's admin API" 60 \
    http_status_is 200 "http://127.0.0.1:$ADMIN_PORT/readyz"
  wait_until "the control plane's cluster port" 10 port_open "$CLUSTER_PORT"
}

start_data_plane() {
  start data-plane "$TURNPIKE" data-plane \
    --control-plane "http://127.0.0.1:$CLUSTER_PORT" \
    --proxy-listen "127.0.0.1:$PROXY_PORT" \
    --status-listen "127.0.0.1:$STATUS_PORT" \
    --cluster-token "$CLUSTER_TOKEN" \
    --worker-threads 1
  wait_until "the data plane's status port" 15 port_open "$STATUS_PORT"
  wait_until "the data plane's proxy port" 15 port_open "$PROXY_PORT"
}

# admin_post PATH JSON: creates an entity; prints the config version the
# write produced (X-Turnpike-Config-Version).
admin_post() {
  local path=$1 body=$2 code version
  code=$(curl -sS --max-time 10 -o "$WORK/admin-body" -D "$WORK/admin-headers" -w '%{http_code}' \
    -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' \
    --data "$body" "http://127.0.0.1:$ADMIN_PORT$path") || die "POST $path: curl failed"
  [[ "$code" == 201 ]] || die "POST $path answered $code, not 201: $(cat "$WORK/admin-body")"
  version=$(tr -d '\r' <"$WORK/admin-headers" |
    awk -F': *' 'tolower($1) == "x-turnpike-config-version" { print $2 }')
  [[ "$version" =~ ^[0-9]+$ ]] || die "POST $path: no X-Turnpike-Config-Version header"
  echo "$version"
}

# True once the data plane reports config_version >= $1.
data_plane_has_version() {
  local status
  status=$(curl -sf --max-time 2 "http://127.0.0.1:$STATUS_PORT/status") || return 1
  python3 -c 'import json, sys; sys.exit(0 if json.loads(sys.argv[1]).get("config_version", 0) >= int(sys.argv[2]) else 1)' \
    "$status" "$1"
}

configure_turnpike() {
  local version
  admin_post /api/v1/upstreams \
    "{\"name\":\"origin\",\"targets\":[{\"address\":\"127.0.0.1:$ORIGIN_PORT\"}]}" >/dev/null
  version=$(admin_post /api/v1/routes '{"name":"all","paths":["/"],"upstream":"origin"}')
  wait_until "config version $version on the data plane" 30 data_plane_has_version "$version"
  TURNPIKE_CONFIG_VERSION=$version
}

# nginx's compiled-in temp paths (/var/lib/nginx/...) are created at start
# even when unused; point each one this build has into the temp dir so the
# run never touches the system nginx's files.
nginx_temp_paths() {
  local build m
  build=$(nginx -V 2>&1)
  echo "  client_body_temp_path $WORK/nginx/body;"
  echo "  proxy_temp_path $WORK/nginx/proxy;"
  for m in fastcgi uwsgi scgi; do
    if [[ "$build" == *"--http-$m-temp-path"* && "$build" != *"--without-http_${m}_module"* ]]; then
      echo "  ${m}_temp_path $WORK/nginx/$m;"
    fi
  done
}

write_nginx_conf() {
  mkdir -p "$WORK/nginx"
  {
    # As root, workers would run as `nobody`, who cannot enter the 0700
    # temp dir; as anyone else the directive is ignored, so leave it out.
    if ((EUID == 0)); then echo "user root;"; fi
    cat <<EOF
worker_processes 1;
# Each proxied connection takes two descriptors; a 1024 soft limit would cap
# the worker below worker_connections.
worker_rlimit_nofile 8192;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx-error.log warn;

events {
  worker_connections 4096;
}

http {
  access_log off;
$(nginx_temp_paths)

  upstream origin {
    server 127.0.0.1:$ORIGIN_PORT;
    keepalive 256;
    # The default (1000) would close each pooled connection after 1000
    # requests; turnpike keeps its pooled connections, so nginx may too.
    keepalive_requests 1000000;
  }

  server {
    listen 127.0.0.1:$NGINX_PORT;
    keepalive_requests 1000000;

    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      # The forwarding headers turnpike adds, so both do the same work and
      # the origin answers both with bodies of about the same size. Host is
      # left to nginx's default, the upstream's name, as turnpike sends the
      # target's address (preserve_host is off).
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_set_header X-Forwarded-Host \$http_host;
    }
  }
}
EOF
  } >"$WORK/nginx.conf"
}

start_nginx() {
  write_nginx_conf
  nginx -t -q -e "$WORK/nginx-error.log" -c "$WORK/nginx.conf" -p "$WORK/nginx" \
    >"$WORK/nginx-test.log" 2>&1 || die "nginx rejected $WORK/nginx.conf: $(cat "$WORK/nginx-test.log")"
  start nginx nginx -e "$WORK/nginx-error.log" -c "$WORK/nginx.conf" -p "$WORK/nginx"
  wait_until "nginx on port $NGINX_PORT" 15 port_open "$NGINX_PORT"
}

target_url() {
  case "$1" in
    direct) echo "http://127.0.0.1:$ORIGIN_PORT/" ;;
    turnpike) echo "http://127.0.0.1:$PROXY_PORT/" ;;
    nginx) echo "http://127.0.0.1:$NGINX_PORT/" ;;
  esac
}

# One request through each target before any load: it must be a 200 from
# the origin (the body names it), so a benchmark never measures 404s.
check_targets() {
  local t body
  for t in "${TARGETS[@]}"; do
    body=$(curl -sS --fail --max-time 5 "$(target_url "$t")") ||
      die "$t: request to $(target_url "$t") failed"
    [[ "$body" == *'"name":"origin"'* ]] || die "$t: unexpected answer: $body"
  done
}

# run_wrk OUTFILE DURATION URL: wrk in the background so that a signal
# reaches the trap (and stops wrk) at once rather than after the run.
run_wrk() {
  local out=$1 duration=$2 url=$3
  wrk --latency -t "$THREADS" -c "$CONNECTIONS" -d "$duration" "$url" >"$out" 2>&1 &
  WRK_PID=$!
  local rc=0
  wait "$WRK_PID" || rc=$?
  WRK_PID=""
  ((rc == 0)) || die "wrk against $url failed (exit $rc): $(cat "$out")"
}

# Prints "rps p99_ms requests non2xx socket_errors" from wrk --latency output.
parse_wrk() {
  awk '
    function ms(v) {
      if (v ~ /us$/) return v * 0.001
      if (v ~ /ms$/) return v + 0
      if (v ~ /m$/)  return v * 60000
      if (v ~ /s$/)  return v * 1000
      return v + 0
    }
    /Latency Distribution/   { dist = 1 }
    dist && $1 == "99%"      { p99 = ms($2); dist = 0 }
    / requests in /          { total = $1 }
    /^Requests\/sec:/        { rps = $2 }
    /Non-2xx or 3xx/         { non2xx = $NF }
    /Socket errors:/ {
      gsub(",", "")
      sockerr = $4 + $6 + $8 + $10
    }
    END {
      if (rps == "" || p99 == "") exit 1
      printf "%s %.3f %d %d %d\n", rps, p99, total, non2xx, sockerr
    }' "$1"
}

# Warm-up (connection pools, caches, CPU frequency), then ROUNDS rounds of
# one run per target. Each round starts with the next target, so none is
# always the one that runs first or right after another's load.
run_benchmarks() {
  local t round out order k
  case "$WARMUP" in
    "" | 0 | 0s) ;;
    *)
      for t in "${TARGETS[@]}"; do
        log "warm-up: $t ($WARMUP)"
        run_wrk "$WORK/warmup-$t.txt" "$WARMUP" "$(target_url "$t")"
      done
      ;;
  esac
  : >"$WORK/results.txt"
  for ((round = 1; round <= ROUNDS; round++)); do
    k=$(((round - 1) % ${#TARGETS[@]}))
    order=("${TARGETS[@]:k}" "${TARGETS[@]:0:k}")
    for t in "${order[@]}"; do
      log "round $round/$ROUNDS: $t"
      out="$WORK/wrk-$t-$round.txt"
      run_wrk "$out" "$DURATION" "$(target_url "$t")"
      local parsed
      parsed=$(parse_wrk "$out") || die "could not parse wrk output for $t: $(cat "$out")"
      echo "$t $round $parsed" >>"$WORK/results.txt"
      # Every run's raw output goes to stderr too, for the CI log.
      sed 's/^/    /' "$out" >&2
      check_alive # a proxy that crashed under load fails the run here
    done
  done
}

machine_summary() {
  local cpu commit
  cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null)
  commit=$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
  if [[ "$commit" != unknown ]] && ! git -C "$REPO_ROOT" diff --quiet HEAD -- 2>/dev/null; then
    commit="$commit (with uncommitted changes)"
  fi
  local cmd="bench/proxy.sh${ORIGINAL_ARGS[*]:+ ${ORIGINAL_ARGS[*]}}"
  ((SMOKE)) || cmd="DURATION=$DURATION CONNECTIONS=$CONNECTIONS THREADS=$THREADS WARMUP=$WARMUP ROUNDS=$ROUNDS $cmd"
  cat <<EOF
# Proxy benchmark: direct vs turnpike vs nginx$( ((SMOKE)) && echo " (smoke mode: not a measurement)")

- command: \`$cmd\`
- wrk: \`wrk --latency -t $THREADS -c $CONNECTIONS -d $DURATION <url>\`, warm-up $WARMUP per target, $ROUNDS interleaved round(s), median of the rounds shown
- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')
- machine: $(nproc) CPU(s), ${cpu:-unknown CPU}, $(uname -sr)
- turnpike: commit $commit, \`$TURNPIKE\` ($PROFILE_NOTE), data plane with 1 worker thread, config version $TURNPIKE_CONFIG_VERSION
- nginx: $(nginx -v 2>&1 | sed 's/^nginx version: //'), 1 worker process, upstream keepalive 256
- wrk: $(wrk -v 2>&1 | head -n 1 | awk '{ print $2 }'); load generator, proxies and origin share the same cores

EOF
}

# Prints the markdown table (medians per target) and checks the results:
# exits 1 when a target served nothing or any request failed.
report() {
  python3 - "$WORK/results.txt" <<'EOF'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    target, _round, rps, p99, total, non2xx, sockerr = line.split()
    runs.setdefault(target, []).append((float(rps), float(p99), int(total), int(non2xx), int(sockerr)))

def med(target, i):
    return statistics.median(r[i] for r in runs[target])

def errors(target):
    return sum(r[3] for r in runs[target]), sum(r[4] for r in runs[target])

nginx_rps = med("nginx", 0)
print("| target | requests/s | p99 | vs nginx (requests/s) | non-2xx | socket errors |")
print("|---|---:|---:|---:|---:|---:|")
for target in ("direct", "turnpike", "nginx"):
    rps, p99 = med(target, 0), med(target, 1)
    ratio = f"{rps / nginx_rps:.2f}x" if nginx_rps else "n/a"
    non2xx, sockerr = errors(target)
    print(f"| {target} | {rps:,.0f} | {p99:.2f} ms | {ratio} | {non2xx} | {sockerr} |")
direct_rps = med("direct", 0)
if direct_rps:
    print(f"\nturnpike / direct (requests/s): {med('turnpike', 0) / direct_rps:.2f}x")

failures = []
for target in runs:
    if any(r[0] <= 0 or r[2] == 0 for r in runs[target]):
        failures.append(f"{target}: a run completed zero requests")
    non2xx, sockerr = errors(target)
    if non2xx:
        failures.append(f"{target}: {non2xx} non-2xx/3xx responses")
    if sockerr:
        failures.append(f"{target}: {sockerr} socket errors (connect/read/write/timeout)")
if failures:
    print("\nFAILED:\n" + "\n".join(f"- {f}" for f in failures))
    sys.exit(1)
EOF
}

# Keeps a copy under $BENCH_OUT (git-ignored) to compare runs over time.
save_report() {
  local name
  name="proxy-$(date -u +%Y%m%dT%H%M%SZ)"
  if ((SMOKE)); then name="$name-smoke"; fi
  if mkdir -p "$BENCH_OUT" && cp "$WORK/report.md" "$BENCH_OUT/$name.md"; then
    log "report saved to $BENCH_OUT/$name.md"
  else
    warn "could not write the report to $BENCH_OUT"
  fi
}

# ---------------------------------------------------------------- main

main() {
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM

  ensure_command python3 python3
  ensure_command curl curl
  ensure_command psql postgresql-client
  ensure_command nginx nginx-light nginx
  ensure_command wrk wrk
  resolve_turnpike

  ADMIN_TOKEN="bench-admin-$(random_hex 16)"
  CLUSTER_TOKEN="bench-cluster-$(random_hex 16)"
  DB_NAME="turnpike_bench_$(random_hex 4)" # fresh per run: no state from earlier runs
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/turnpike-bench.XXXXXX")
  read -r ORIGIN_PORT ADMIN_PORT CLUSTER_PORT PROXY_PORT STATUS_PORT NGINX_PORT <<<"$(free_ports 6)"

  psql_admin -c 'SELECT 1' >/dev/null 2>&1 ||
    die "Postgres is not reachable at $BENCH_PG (trust auth expected; set BENCH_PG)"

  log "origin on :$ORIGIN_PORT"
  start_origin
  log "control plane on :$ADMIN_PORT (admin) and :$CLUSTER_PORT (cluster), database $DB_NAME"
  start_control_plane
  log "data plane on :$PROXY_PORT (proxy) and :$STATUS_PORT (status)"
  start_data_plane
  log "configuring turnpike through the admin API"
  configure_turnpike
  log "nginx on :$NGINX_PORT"
  start_nginx
  check_targets

  run_benchmarks

  local rc=0
  {
    machine_summary
    report || rc=$?
  } >"$WORK/report.md"
  echo
  cat "$WORK/report.md"
  save_report
  ((rc == 0)) || die "benchmark checks failed (see FAILED above)"
}

main "$@"
