#!/usr/bin/env bash
# bench/proxy.sh: proxy throughput, tail latency and CPU cost, side by side.
#
# One origin, a separate nginx answering `return 200 "ok"` (cheap, so the
# proxies are what is measured), is load-tested four ways with the same
# load tool and settings, interleaved round by round so that machine drift
# hits all of them alike:
#   direct    client → origin                       (the ceiling)
#   turnpike  client → turnpike data plane (`turnpike-data-plane
#             --worker-threads 1`) → origin
#   nginx     client → nginx (worker_processes 1, upstream keepalive 256) → origin
#   haproxy   client → HAProxy (nbthread 1) → origin
# With taskset and two or more CPUs, every proxy runs on one CPU and the
# load tool and the origin on another, so the comparison is one core
# against one core (PIN=0 turns this off; the report says which was used).
# Each run records requests/s, p50 and p99, and the proxy's CPU time
# (utime + stime of the process and its children, from /proc/<pid>/stat,
# before and after the run) to give requests per proxy-CPU-second, and
# the busy time of the proxy's CPU that was not the proxy's (other
# programs: a noisy machine shows there).
#
# Connections: the origin's stub_status counts the connections it accepted
# during each run, i.e. the upstream connections each proxy opened, and
# again halfway through it: a run's start may replace connections the
# previous run closed (its load tool disconnecting with requests in flight),
# so churn is what opens in the second half; a proxy whose pool keeps up
# with the concurrency opens none there (the report shows the fewest over
# the rounds, as a pool idle through the other targets' runs may close its
# connections by the next round).
#
# Memory: each proxy's resident set (VmRSS, summed over nginx's master and
# worker) once the config is in and every target answered its first
# requests ("idle"), again after all the runs, and the peak (VmHWM). The
# issue's target is an idle data plane under 10 MB. The report says how
# much of cli/code-order.txt (the release layout, see --code-order) the
# binary has: a layout that does not fit the build leaves more code resident.
#
# Protocols between client and proxy (the proxies speak HTTP/1.1 to the
# origin); the default is plain HTTP/1.1:
#   (default)   HTTP/1.1, wrk
#   --https     HTTP/1.1 over TLS, wrk (self-signed ECDSA P-256 certificate
#               made with openssl; turnpike gets it through the admin API)
#   --h2        HTTP/2 over TLS (ALPN h2), h2load
#   --h2c       HTTP/2 cleartext (prior knowledge), h2load
# Given flags replace the default; MODES="http https h2 h2c" picks several,
# run one after another. Every run checks each target in every protocol
# with one request first, so a broken TLS or h2 setup fails any run.
#
# Balancing (ALGORITHMS, HTTP/1.1 only): turnpike through an upstream with
# two targets (the origin on two ports) per algorithm, one route each
# (/lb/<algorithm>), interleaved with the other targets; every such run
# sends `x-user: bench-user-1` (consistent_hash hashes on it, so all its
# requests go to one target). Reported against round_robin; the target is
# requests per proxy-CPU-second no more than 5% below it.
#
# Usage:
#   bench/proxy.sh            full run (HTTP/1.1, c 1/50/200: about 7 minutes)
#   bench/proxy.sh --smoke    seconds-long run for CI: checks that every stage
#                             still works (also BENCH_SMOKE=1)
#   bench/proxy.sh --https    the same over TLS (see above for --h2, --h2c)
#   bench/proxy.sh --code-order   no load: the data plane under callgrind
#                             (valgrind) through the same start, config
#                             and checks, then REQUESTS=500 requests, then
#                             the functions it ran, hottest first, written
#                             to CODE_ORDER_OUT (default cli/code-order.txt,
#                             the release builds' code layout: cli/build.rs;
#                             smoke mode: the temp dir). Also
#                             bench/code-order.sh. Regenerate after a change
#                             of crate versions, profile or toolchain: the
#                             symbols' hashes change with them.
#   bench/proxy.sh --callgrind    no load: instructions a request instead,
#                             turnpike, nginx and HAProxy each under
#                             callgrind (nginx with master_process off),
#                             through the same start, config and checks;
#                             REQUESTS=2000 sequential keep-alive requests
#                             each after 200 of warm-up, counters zeroed
#                             before and dumped after. Counts, not time:
#                             blind to the kernel (system calls), caches and
#                             the machine's load, so the same on any run.
#                             With --smoke: 20 requests, debug build.
#   bench/proxy.sh --cachesim     no hardware counters needed: each proxy
#                             under callgrind's cache simulation (L1 and
#                             L2 of this EPYC: 32 KB and 512 KB, 8-way),
#                             a CACHESIM_DURATION=10s wrk load at each of
#                             CACHESIM_CONCURRENCY="50 200"; instructions,
#                             L1 and L2 misses a request. A model (no
#                             prefetch, no L3, callgrind's serialised
#                             threads), not the machine: for comparing
#                             proxies and concurrencies, not for cycles.
#   bench/proxy.sh --syscalls     system calls a request instead: per proxy
#                             a warm-up, then a SYSCALL_DURATION=5s load at
#                             c50 (wrk) with `strace -c` attached to the
#                             process that serves (nginx: its worker). The
#                             counts are what the proxy asked of the kernel,
#                             the part of its CPU time callgrind cannot see;
#                             strace slows the proxy, not the counts.
#   bench/proxy.sh --perf         where the CPU time goes instead: the same
#                             runs with `perf record -e cpu-clock -g` (a
#                             software clock: VMs often have no hardware
#                             counters) at PERF_CONCURRENCY=200; per proxy
#                             its CPU time a request, the kernel's share,
#                             the share spent waking the reader of what it
#                             sent (sock_def_readable: over loopback the
#                             receiver's side runs in the sender's system
#                             call), and its hottest functions.
#
# Settings (environment):
#   DURATION=10s   length of each measured run (seconds; "s" optional)
#   CONCURRENCY="1 50 200"   concurrency levels (connections for wrk;
#                  for h2load connections × H2_STREAMS); CONNECTIONS is an
#                  older name for it
#   THREADS        load-tool threads, capped at the connections (default 1
#                  when pinned, as the load tool then has one CPU; else 2)
#   H2_STREAMS=1   concurrent streams per HTTP/2 connection
#   WARMUP=3s      unmeasured run per target and level first (0 = none)
#   ROUNDS=3       measured runs per target and level; the report shows medians
#   ALGORITHMS=""  e.g. "round_robin least_connections consistent_hash"
#   MODES          http, https, h2, h2c (see above)
#   PIN=auto       1 to require pinning, 0 to turn it off
#   TURNPIKE_BIN   turnpike binary to use; otherwise built with cargo
#   TURNPIKE_DATA_PLANE_BIN  turnpike-data-plane binary; otherwise the one
#                  next to the turnpike binary (a TURNPIKE_BIN without one
#                  runs as `turnpike data-plane`), else built with cargo
#   TURNPIKE_COMMIT  the commit that binary was built from, for the report
#                  (default: this tree's HEAD, marked if it has changes)
#   BENCH_PG=postgres://postgres@127.0.0.1:5432   Postgres server (trust auth)
#   BENCH_OUT=bench/out   where the markdown report is also written
#   BENCH_KEEP_TMP=1      keep the temp dir (configs, logs, load-tool output)
#
# Smoke mode: 1 s runs at concurrency 4, one round, no warm-up, every
# target and the three balancing algorithms; HTTP/1.1 unless protocol
# flags or MODES say otherwise.
#
# Exits non-zero when any stage fails: a process that does not come up, a
# config that does not reach the data plane, a target answering anything but
# 200 "ok" before the run (in any protocol), zero requests in a run, or any
# non-2xx answer, failed request or socket error during a run. Missing a
# performance target is reported, not a failure (FAIL_ON_TARGETS=1 makes
# it one).
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Shared helpers: process start/stop and cleanup, Postgres, the control and
# data planes, nginx configs, pinning, the load tool and CPU accounting.
# shellcheck source=bench/lib.sh
source "$REPO_ROOT/bench/lib.sh"
ORIGINAL_ARGS=("$@")

# ---------------------------------------------------------------- settings

SMOKE=${BENCH_SMOKE:-0}
CODE_ORDER=0
CALLGRIND=0
CACHESIM=0
SYSCALLS=0
PERF=0
FLAG_MODES=()
for arg in "$@"; do
  case "$arg" in
    --smoke) SMOKE=1 ;;
    --https) FLAG_MODES+=(https) ;;
    --h2) FLAG_MODES+=(h2) ;;
    --h2c) FLAG_MODES+=(h2c) ;;
    --code-order) CODE_ORDER=1 ;;
    --callgrind) CALLGRIND=1 ;;
    --cachesim) CALLGRIND=1 CACHESIM=1 ;;
    --syscalls) SYSCALLS=1 ;;
    --perf) PERF=1 ;;
    -h | --help)
      usage "${BASH_SOURCE[0]}"
      exit 0
      ;;
    *)
      echo "proxy.sh: unknown argument '$arg' (try --help)" >&2
      exit 2
      ;;
  esac
done
case "$SMOKE" in 0 | "") SMOKE=0 ;; *) SMOKE=1 ;; esac
# This machine's per-core L1 (code and data) and L2, the last level
# callgrind models (L3 is shared and far larger).
((CACHESIM)) && CALLGRIND_EXTRA=(--cache-sim=yes --I1=32768,8,64 --D1=32768,8,64 --LL=524288,8,64)

if ((${#FLAG_MODES[@]})); then
  MODES=${FLAG_MODES[*]}
else
  MODES=${MODES:-http}
fi
if ((SMOKE)); then
  # Small and fixed on purpose: CI only checks that the pipeline still works.
  DURATION=1s CONCURRENCY=4 THREADS=1 WARMUP=0 ROUNDS=1 H2_STREAMS=1
  ALGORITHMS="round_robin least_connections consistent_hash"
else
  DURATION=${DURATION:-10s}
  CONCURRENCY=${CONCURRENCY:-${CONNECTIONS:-1 50 200}}
  WARMUP=${WARMUP:-3s}
  ROUNDS=${ROUNDS:-3}
  H2_STREAMS=${H2_STREAMS:-1}
  ALGORITHMS=${ALGORITHMS:-}
fi
PIN=${PIN:-auto}
FAIL_ON_TARGETS=${FAIL_ON_TARGETS:-0}
BENCH_PG=${BENCH_PG:-postgres://postgres@127.0.0.1:5432}
BENCH_OUT=${BENCH_OUT:-$REPO_ROOT/bench/out}
BENCH_KEEP_TMP=${BENCH_KEEP_TMP:-0}

TARGETS=(direct turnpike nginx haproxy)
# The header consistent_hash hashes on, sent in every balancing run.
HASH_HEADER="x-user: bench-user-1"

# ---------------------------------------------------------------- stages

# A self-signed ECDSA P-256 certificate for "localhost", used by every TLS
# listener (turnpike gets it through the admin API). Clients connect to
# https://localhost:PORT so that they send SNI, which turnpike requires.
make_certificate() {
  mkdir -p "$WORK/tls"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$WORK/tls/key.pem" -out "$WORK/tls/cert.pem" -days 7 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost \
    >"$WORK/openssl.out" 2>&1 || die "openssl could not make a certificate: $(cat "$WORK/openssl.out")"
  cat "$WORK/tls/cert.pem" "$WORK/tls/key.pem" >"$WORK/tls/combined.pem" # HAProxy's form
}

# The origin: its own nginx, one worker, on the load tool's CPU. Two plain
# ports (the balancing runs' two targets), TLS (HTTP/1.1 and h2 by ALPN) and
# cleartext h2, all answering 200 "ok"; and its connection counters
# (stub_status) on a port of their own.
start_origin() {
  write_nginx_conf origin <<EOF
  server {
    listen 127.0.0.1:$ORIGIN_STATUS_PORT;
    location = /status {
      stub_status;
    }
  }

  server {
    listen 127.0.0.1:$ORIGIN_PORT;
    listen 127.0.0.1:$ORIGIN2_PORT;
    listen 127.0.0.1:$ORIGIN_TLS_PORT ssl http2;
    listen 127.0.0.1:$ORIGIN_H2C_PORT http2;
    location / {
      return 200 "ok";
    }
  }
EOF
  start_nginx origin "$ORIGIN_PORT" "${PIN_LOAD[@]}"
}

start_turnpike_data_plane() {
  local how=start_data_plane
  # --code-order: mangled names, as the linker's ordering file needs them.
  ((CODE_ORDER || CALLGRIND)) && how=start_callgrind_data_plane
  ((CODE_ORDER)) && export VALGRIND_OPTS="--demangle=no"
  "$how" data-plane "$PROXY_PORT" "$STATUS_PORT" \
    --proxy-tls-listen "127.0.0.1:$PROXY_TLS_PORT" \
    --worker-threads 1
  wait_until "the data plane's TLS port" 15 port_open "$PROXY_TLS_PORT"
}

# One route to the origin (/), the certificate for "localhost", and per
# balancing algorithm an upstream over the origin's two plain ports with a
# route on /lb/<algorithm>.
configure_turnpike() {
  local version alg body
  admin_post /api/v1/upstreams \
    "{\"name\":\"origin\",\"targets\":[{\"address\":\"127.0.0.1:$ORIGIN_PORT\"}]}" >/dev/null
  admin_post /api/v1/routes '{"name":"all","paths":["/"],"upstream":"origin"}' >/dev/null
  for alg in $ALGORITHMS; do
    body="{\"name\":\"lb-$alg\",\"algorithm\":\"$alg\","
    [[ "$alg" == consistent_hash ]] && body+="\"hash_on\":{\"header\":\"${HASH_HEADER%%:*}\"},"
    body+="\"targets\":[{\"address\":\"127.0.0.1:$ORIGIN_PORT\"},{\"address\":\"127.0.0.1:$ORIGIN2_PORT\"}]}"
    admin_post /api/v1/upstreams "$body" >/dev/null
    admin_post /api/v1/routes "{\"name\":\"lb-$alg\",\"paths\":[\"/lb/$alg\"],\"upstream\":\"lb-$alg\"}" >/dev/null
  done
  body=$(python3 -c 'import json, sys
print(json.dumps({"cert": open(sys.argv[1]).read(), "key": open(sys.argv[2]).read(), "snis": ["localhost"]}))' \
    "$WORK/tls/cert.pem" "$WORK/tls/key.pem")
  version=$(admin_post /api/v1/certificates "$body")
  wait_until "config version $version on the data plane" 30 data_plane_has_version "$version"
  TURNPIKE_CONFIG_VERSION=$version
}

start_nginx_proxy() {
  local prefix=("${PIN_PROXY[@]}")
  if ((CALLGRIND)); then
    # One process: callgrind then counts the worker that serves.
    callgrind_prefix nginx
    prefix+=("${CALLGRIND_CMD[@]}")
  fi
  NGINX_MAIN_EXTRA=$( ((CALLGRIND)) && echo "master_process off;") write_nginx_conf nginx <<EOF
  upstream origin {
    server 127.0.0.1:$ORIGIN_PORT;
    keepalive 256;
    # The default (1000) would close each pooled connection after 1000
    # requests; turnpike keeps its pooled connections, so nginx may too.
    keepalive_requests 1000000;
  }

  server {
    listen 127.0.0.1:$NGINX_PORT;
    listen 127.0.0.1:$NGINX_TLS_PORT ssl http2;
    listen 127.0.0.1:$NGINX_H2C_PORT http2;

    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      # The forwarding headers turnpike adds, so all proxies do the same
      # work. Host is left to nginx's default, the upstream's name, as
      # turnpike sends the target's address (preserve_host is off).
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_set_header X-Forwarded-Host \$http_host;
    }
  }
EOF
  start_nginx nginx "$NGINX_PORT" "${prefix[@]}"
  wait_until "nginx on port $NGINX_TLS_PORT" "$PORT_WAIT" port_open "$NGINX_TLS_PORT"
}

# HAProxy in the foreground (-db: no daemon, no master process), one thread,
# the same forwarding headers; server connections are kept and reused
# (http-reuse safe, the default).
start_haproxy() {
  cat >"$WORK/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn 8192

defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 60s

frontend bench
  bind 127.0.0.1:$HAPROXY_PORT
  bind 127.0.0.1:$HAPROXY_TLS_PORT ssl crt $WORK/tls/combined.pem alpn h2,http/1.1
  bind 127.0.0.1:$HAPROXY_H2C_PORT proto h2
  option forwardfor
  http-request set-header X-Forwarded-Proto https if { ssl_fc }
  http-request set-header X-Forwarded-Proto http if !{ ssl_fc }
  http-request set-header X-Forwarded-Host %[req.hdr(host)]
  default_backend origin

backend origin
  server origin 127.0.0.1:$ORIGIN_PORT
EOF
  haproxy -c -q -f "$WORK/haproxy.cfg" >"$WORK/haproxy-check.out" 2>&1 ||
    die "haproxy rejected $WORK/haproxy.cfg: $(cat "$WORK/haproxy-check.out")"
  local prefix=("${PIN_PROXY[@]}")
  if ((CALLGRIND)); then
    callgrind_prefix haproxy
    prefix+=("${CALLGRIND_CMD[@]}")
  fi
  start haproxy "${prefix[@]}" haproxy -db -f "$WORK/haproxy.cfg"
  wait_until "haproxy on port $HAPROXY_PORT" "$PORT_WAIT" port_open "$HAPROXY_PORT"
  wait_until "haproxy on port $HAPROXY_TLS_PORT" "$PORT_WAIT" port_open "$HAPROXY_TLS_PORT"
}

# record_memory PHASE: "PHASE TARGET rss_kb peak_kb" per proxy into
# $WORK/memory.txt.
record_memory() {
  local t
  for t in turnpike nginx haproxy; do
    echo "$1 $t $(proc_memory_kb "$(proxy_pid "$t")")" >>"$WORK/memory.txt"
  done
}

# Connections the origin has accepted so far (its stub_status), this
# request's own included.
origin_accepts() {
  curl -sf --max-time 5 "http://127.0.0.1:$ORIGIN_STATUS_PORT/status" | awk 'NR == 3 { print $1 }'
}

# The process whose CPU time counts for a target (none for direct).
proxy_pid() {
  case "$1" in
    direct) return 1 ;;
    turnpike | lb-*) pid_of data-plane ;;
    nginx) pid_of nginx ;;
    haproxy) pid_of haproxy ;;
  esac
}

# target_port MODE TARGET
target_port() {
  local mode=$1 target=$2
  case "$target:$mode" in
    direct:http) echo "$ORIGIN_PORT" ;;
    direct:https | direct:h2) echo "$ORIGIN_TLS_PORT" ;;
    direct:h2c) echo "$ORIGIN_H2C_PORT" ;;
    turnpike:http | turnpike:h2c | lb-*:http) echo "$PROXY_PORT" ;;
    turnpike:https | turnpike:h2) echo "$PROXY_TLS_PORT" ;;
    nginx:http) echo "$NGINX_PORT" ;;
    nginx:https | nginx:h2) echo "$NGINX_TLS_PORT" ;;
    nginx:h2c) echo "$NGINX_H2C_PORT" ;;
    haproxy:http) echo "$HAPROXY_PORT" ;;
    haproxy:https | haproxy:h2) echo "$HAPROXY_TLS_PORT" ;;
    haproxy:h2c) echo "$HAPROXY_H2C_PORT" ;;
    *) die "no $mode port for $target" ;;
  esac
}

# target_url MODE TARGET. TLS goes to "localhost" for SNI (clients are told
# to connect to 127.0.0.1, see run_load and check_targets).
target_url() {
  local mode=$1 target=$2 path=/
  [[ "$target" == lb-* ]] && path="/lb/${target#lb-}"
  case "$mode" in
    http | h2c) echo "http://127.0.0.1:$(target_port "$mode" "$target")$path" ;;
    https | h2) echo "https://localhost:$(target_port "$mode" "$target")$path" ;;
  esac
}

# One request through each target in every protocol before any load: it
# must be a 200 "ok" from the origin over the expected HTTP version, so a
# benchmark never measures errors, and a broken TLS or h2 setup fails even
# a run that does not load it.
check_targets() {
  local t mode port out body code version want args
  for t in "${TARGETS[@]}"; do
    for mode in http https h2 h2c; do
      port=$(target_port "$mode" "$t")
      args=(--resolve "localhost:$port:127.0.0.1" --cacert "$WORK/tls/cert.pem")
      case "$mode" in
        http | https) args+=(--http1.1) want=1.1 ;;
        h2) args+=(--http2) want=2 ;;
        h2c) args+=(--http2-prior-knowledge) want=2 ;;
      esac
      out=$(curl -sS --max-time 5 "${args[@]}" -o "$WORK/check-body" \
        -w '%{http_code} %{http_version}' "$(target_url "$mode" "$t")" 2>&1) ||
        die "$t ($mode): request to $(target_url "$mode" "$t") failed: $out"
      read -r code version <<<"$out"
      body=$(cat "$WORK/check-body")
      [[ "$code" == 200 && "$body" == ok ]] || die "$t ($mode): answered $code '$body', not 200 'ok'"
      [[ "$version" == "$want" ]] || die "$t ($mode): answered over HTTP/$version, not HTTP/$want"
    done
  done
  local alg
  for alg in $ALGORITHMS; do
    body=$(curl -sS --fail --max-time 5 -H "$HASH_HEADER" "$(target_url http "lb-$alg")") ||
      die "lb-$alg: request to $(target_url http "lb-$alg") failed"
    [[ "$body" == ok ]] || die "lb-$alg: unexpected answer: $body"
  done
}

# --callgrind: per proxy, warm-up requests, then REQUESTS sequential ones
# between a zeroing and a dump of its counters (callgrind_batch); the
# report gives instructions a request and the ratio to nginx's.
count_instructions() {
  local n=${REQUESTS:-2000} warm=200 t name url
  if ((SMOKE)); then n=20 warm=5; fi
  : >"$WORK/instructions.txt"
  for t in turnpike nginx haproxy; do
    case $t in turnpike) name=data-plane ;; *) name=$t ;; esac
    url=$(target_url http "$t")
    log "callgrind: $t, $warm requests of warm-up, then $n counted"
    send_requests "$url" "$warm" ok
    callgrind_batch "$name" requests "$url" "$n" ok
    echo "$t $CG_IR" >>"$WORK/instructions.txt"
  done
  {
    cat <<EOF
# Proxy instructions a request under callgrind$( ((SMOKE)) && echo " (smoke mode: not a measurement)")

- command: \`$( ((SMOKE)) || echo "REQUESTS=$n ")bench/proxy.sh --callgrind$( ((SMOKE)) && echo " --smoke")\`
- what: each proxy under \`valgrind --tool=callgrind\` ($(valgrind --version)), one worker (turnpike \`--worker-threads 1\`, nginx \`worker_processes 1\` with \`master_process off\`, HAProxy \`nbthread 1\`), the configs of the load runs (the same forwarding headers; the origin nginx outside valgrind); $warm requests of warm-up, then $n sequential GETs on one keep-alive connection (Python's http.client) between a zeroing and a dump of the counters. Instructions (Ir) of the whole process. User space only: system calls, cache misses and the kernel's share of the CPU are not in it
- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); $(machine_note)
- turnpike: commit $(commit_note), \`${DATA_PLANE_CMD[*]}\` ($PROFILE_NOTE); nginx: $(nginx -v 2>&1 | sed 's/^nginx version: //'); haproxy: $(haproxy -v | awk 'NR == 1 { print $3 }')

| proxy | instructions a request | against nginx |
|---|---:|---:|
EOF
    python3 - "$WORK/instructions.txt" "$n" <<'EOF'
import sys
n = int(sys.argv[2])
ir = dict((t, int(v)) for t, v in (line.split() for line in open(sys.argv[1])))
for t in ("turnpike", "nginx", "haproxy"):
    print(f"| {t} | {ir[t] // n:,} | {ir[t] / ir['nginx']:.2f}x |")
EOF
  } >"$WORK/report.md"
  echo
  cat "$WORK/report.md"
  save_report proxy-callgrind
  save_callgrind_dumps proxy
}

# --cachesim: per concurrency and proxy, a warm-up, then a load between a
# zeroing and a dump of the counters of the proxy under callgrind with its
# cache simulation; the report gives instructions and misses a request.
count_cache_misses() {
  local secs=${CACHESIM_DURATION:-10} concs=${CACHESIM_CONCURRENCY:-50 200} conc t name url
  secs=${secs%s}
  if ((SMOKE)); then secs=1 concs=4; fi
  : >"$WORK/cachesim.txt"
  for conc in $concs; do
    for t in turnpike nginx haproxy; do
      case $t in turnpike) name=data-plane ;; *) name=$t ;; esac
      url=$(target_url http "$t")
      log "cachesim: $t, a warm-up, then ${secs}s at c$conc"
      run_load http "$WORK/cachesim-warmup-$t-$conc.txt" 2 "$url" "$conc"
      callgrind_control -z "$(pid_of "$name")" >"$WORK/callgrind-control.out" 2>&1 ||
        die "callgrind_control -z $name failed: $(cat "$WORK/callgrind-control.out")"
      run_load http "$WORK/cachesim-$t-$conc.txt" "$secs" "$url" "$conc"
      callgrind_dump "$name" "c$conc"
      echo "$conc $t $(parse_wrk "$WORK/cachesim-$t-$conc.txt" | awk '{ print $4 }') $WORK/callgrind-$name-c$conc.out" >>"$WORK/cachesim.txt"
    done
  done
  {
    cat <<EOF
# Proxy cache misses a request under callgrind's cache simulation$( ((SMOKE)) && echo " (smoke mode: not a measurement)")

- command: \`$( ((SMOKE)) || echo "CACHESIM_DURATION=${secs}s CACHESIM_CONCURRENCY=\"$concs\" ")bench/proxy.sh --cachesim$( ((SMOKE)) && echo " --smoke")\`
- what: each proxy under \`valgrind --tool=callgrind ${CALLGRIND_EXTRA[*]}\` ($(valgrind --version)), one worker, the configs of the load runs; per concurrency a 2 s warm-up, then ${secs} s of wrk between a zeroing and a dump of the counters. Per request: instructions (Ir), first-level misses (I1 for code, D1 for data: reads and writes) and last-level (here L2) misses. callgrind's model, not the machine: no prefetching, no L3, threads run one at a time
- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); $(machine_note)
- turnpike: commit $(commit_note), \`${DATA_PLANE_CMD[*]}\` ($PROFILE_NOTE); nginx: $(nginx -v 2>&1 | sed 's/^nginx version: //'); haproxy: $(haproxy -v | awk 'NR == 1 { print $3 }')

EOF
    python3 - "$WORK/cachesim.txt" <<'EOF'
import sys
print("| c | proxy | requests | Ir | I1 misses | D1 misses | L2 misses (code) | L2 misses (data) |")
print("|---:|---|---:|---:|---:|---:|---:|---:|")
for line in open(sys.argv[1]):
    conc, target, requests, path = line.split()
    events = totals = None
    for row in open(path):
        if row.startswith("events:"):
            events = row.split()[1:]
        elif row.startswith("totals:"):
            totals = [int(v) for v in row.split()[1:]]
    if not events or not totals or int(requests) == 0:
        sys.exit(f"{target} c{conc}: no counters or no requests in {path}")
    e = dict(zip(events, totals))
    n = int(requests)
    per = lambda *k: sum(e.get(x, 0) for x in k) / n
    print(f"| {conc} | {target} | {n:,} | {per('Ir'):,.0f} | {per('I1mr'):.1f} | "
          f"{per('D1mr', 'D1mw'):.1f} | {per('ILmr'):.1f} | {per('DLmr', 'DLmw'):.1f} |")
EOF
  } >"$WORK/report.md"
  echo
  cat "$WORK/report.md"
  save_report proxy-cachesim
  save_callgrind_dumps proxy
}

# --syscalls: per proxy, a warm-up load, then SYSCALL_DURATION seconds at
# c50 with `strace -c -f` attached to the process that serves; the report
# gives system calls a request (wrk's requests over the run), by call.
count_syscalls() {
  local secs=${SYSCALL_DURATION:-5}
  secs=${secs%s}
  if ((SMOKE)); then secs=1; fi
  traced_runs strace "$secs" 50 >"$WORK/syscalls.txt"
  {
    cat <<EOF
# Proxy system calls a request under strace$( ((SMOKE)) && echo " (smoke mode: not a measurement)")

- command: \`$( ((SMOKE)) || echo "SYSCALL_DURATION=${secs}s ")bench/proxy.sh --syscalls$( ((SMOKE)) && echo " --smoke")\`
- what: per proxy, a 1 s warm-up, then ${secs} s of wrk at 50 connections (keep-alive) with \`strace -c -f\` ($(strace -V | head -n 1)) attached to the process that serves (turnpike's data plane, \`--worker-threads 1\`; nginx's worker; HAProxy, \`nbthread 1\`); calls of all its threads over wrk's requests of that run. The configs of the load runs
- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); $(machine_note)
- turnpike: commit $(commit_note), \`${DATA_PLANE_CMD[*]}\` ($PROFILE_NOTE); nginx: $(nginx -v 2>&1 | sed 's/^nginx version: //'); haproxy: $(haproxy -v | awk 'NR == 1 { print $3 }')

EOF
    python3 - "$WORK/syscalls.txt" <<'EOF'
import sys
rows, names = {}, set()
for line in open(sys.argv[1]):
    target, requests, _ticks, path = line.split()
    calls = {}
    for row in open(path):
        cols = row.split()
        # "% time seconds usecs/call calls [errors] syscall"
        if len(cols) >= 5 and cols[3].isdigit() and cols[-1] != "total":
            calls[cols[-1]] = int(cols[3])
    if int(requests) == 0:
        sys.exit(f"{target}: no requests under strace")
    rows[target] = {k: v / int(requests) for k, v in calls.items()}
    names |= {k for k, v in rows[target].items() if v >= 0.01}
targets = list(rows)
print("| system call | " + " | ".join(targets) + " |")
print("|---|" + "---:|" * len(targets))
for name in sorted(names, key=lambda n: -max(r.get(n, 0) for r in rows.values())):
    print(f"| {name} | " + " | ".join(f"{rows[t].get(name, 0):.2f}" for t in targets) + " |")
print("| **all** | " + " | ".join(f"**{sum(rows[t].values()):.2f}**" for t in targets) + " |")
EOF
  } >"$WORK/report.md"
  echo
  cat "$WORK/report.md"
  save_report proxy-syscalls
}

# traced_runs TOOL SECONDS CONCURRENCY: per proxy, a 1 s warm-up, then a
# load of SECONDS with TOOL (strace or perf) attached to the process that
# serves; prints "target requests cpu_ticks output" a line.
traced_runs() {
  local tool=$1 secs=$2 conc=$3 t pid url tracer out before after
  for t in turnpike nginx haproxy; do
    pid=$(proxy_pid "$t")
    # nginx's master only watches its worker.
    [[ "$t" == nginx ]] && pid=$(pgrep -P "$pid" | head -n 1)
    url=$(target_url http "$t")
    log "$tool: $t (pid $pid), a warm-up, then ${secs}s at c$conc"
    run_load http "$WORK/$tool-warmup-$t.txt" 1 "$url" "$conc"
    out=$WORK/$tool-$t.out
    case $tool in
      strace) strace -c -f -q -o "$out" -p "$pid" 2>"$out.err" & ;;
      perf) perf record -q -F 999 -e cpu-clock -g -o "$out" -p "$pid" 2>"$out.err" & ;;
    esac
    tracer=$!
    HELPER_PIDS+=("$tracer")
    case $tool in
      strace) wait_until "strace attached to $t" 10 traced "$pid" ;;
      perf) wait_until "perf recording $t" 10 test -s "$out" ;;
    esac
    before=$(proc_cpu_ticks "$pid")
    run_load http "$WORK/$tool-$t.txt" "$secs" "$url" "$conc"
    after=$(proc_cpu_ticks "$pid")
    kill -INT "$tracer"
    wait "$tracer" || true # the tracer exits with the signal's status
    echo "$t $(parse_wrk "$WORK/$tool-$t.txt" | awk '{ print $4 }') $((after - before)) $out"
  done
}

# --perf: the runs of traced_runs under perf at PERF_CONCURRENCY (200);
# per proxy its CPU time a request, the kernel's share, the share of
# sock_def_readable (children included) and its hottest functions.
profile_cpu() {
  local secs=${PERF_DURATION:-6} conc=${PERF_CONCURRENCY:-200}
  secs=${secs%s}
  if ((SMOKE)); then secs=1 conc=4; fi
  traced_runs perf "$secs" "$conc" >"$WORK/perf.txt"
  local t requests ticks out
  while read -r t requests ticks out; do
    perf report -i "$out" --no-children --sort dso -g none -q --percent-limit 0 >"$out.dso" 2>/dev/null
    perf report -i "$out" --children --sort sym -g none -q --percent-limit 0 >"$out.children" 2>/dev/null
    perf report -i "$out" --no-children --sort sym -g none -q --percent-limit 0 >"$out.self" 2>/dev/null
  done <"$WORK/perf.txt"
  {
    cat <<EOF
# Proxy CPU profile under perf$( ((SMOKE)) && echo " (smoke mode: not a measurement)")

- command: \`$( ((SMOKE)) || echo "PERF_CONCURRENCY=$conc PERF_DURATION=${secs}s ")bench/proxy.sh --perf$( ((SMOKE)) && echo " --smoke")\`
- what: per proxy, a 1 s warm-up, then ${secs} s of wrk at $conc connections (keep-alive) with \`perf record -F 999 -e cpu-clock -g\` ($(perf version)) attached to the process that serves (turnpike's data plane, \`--worker-threads 1\`; nginx's worker; HAProxy, \`nbthread 1\`), proxies pinned as in the load runs. CPU time: utime + stime of that process over the run (/proc, CLK_TCK $CLK_TCK) over wrk's requests. Shares: of the samples (a software clock: where interrupts are off, samples land where they are turned back on, so a spin-unlock stands for the section it closes). "waking readers": \`sock_def_readable\` with what it calls: over loopback the receiving socket's side of a send runs in the sender's system call, so waking the load tool or the origin is charged to the proxy
- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); $(machine_note)
- turnpike: commit $(commit_note), \`${DATA_PLANE_CMD[*]}\` ($PROFILE_NOTE); nginx: $(nginx -v 2>&1 | sed 's/^nginx version: //'); haproxy: $(haproxy -v | awk 'NR == 1 { print $3 }')

EOF
    python3 - "$WORK/perf.txt" "$CLK_TCK" <<'EOF'
import re, sys
rows = [line.split() for line in open(sys.argv[1])]
tck = int(sys.argv[2])
def pct(path, pattern):
    total = 0.0
    for line in open(path):
        m = re.match(r"\s*([\d.]+)%(?:\s+([\d.]+)%)?\s+(.*)$", line)
        if m and re.search(pattern, m.group(3)):
            total += float(m.group(1))
    return total
print("| proxy | CPU a request | user | kernel | waking readers (sock_def_readable) |")
print("|---|---:|---:|---:|---:|")
tops = {}
for t, requests, ticks, out in rows:
    us = int(ticks) / tck / max(int(requests), 1) * 1e6
    kernel = pct(out + ".dso", r"\[kernel")
    wake = pct(out + ".children", r"\] sock_def_readable$")
    print(f"| {t} | {us:.1f} µs | {us * (100 - kernel) / 100:.1f} µs ({100 - kernel:.0f}%) "
          f"| {us * kernel / 100:.1f} µs ({kernel:.0f}%) | {us * wake / 100:.1f} µs ({wake:.0f}%) |")
    tops[t] = []
    for line in open(out + ".self"):
        m = re.match(r"\s*([\d.]+)%\s+\[(.)\]\s+(.*)$", line)
        if m and len(tops[t]) < 10:
            tops[t].append(f"{m.group(1)}% {'kernel' if m.group(2) == 'k' else 'user'} `{m.group(3)[:90]}`")
for t, top in tops.items():
    print(f"\n{t}, hottest functions (self): " + "; ".join(top))
EOF
  } >"$WORK/report.md"
  echo
  cat "$WORK/report.md"
  save_report proxy-perf
}

# True once a tracer (strace) is attached to process $1.
traced() { awk '$1 == "TracerPid:" { found = $2 > 0 } END { exit !found }' "/proc/$1/status"; }

# How much of cli/code-order.txt the data plane's binary still has, as
# "N of M functions": the order is made for one build (symbol hashes
# change with crate versions, profile and toolchain), and a stale one lets
# the idle RSS grow back; warns below 90%.
code_order_note() {
  local file=$REPO_ROOT/cli/code-order.txt bin=${DATA_PLANE_CMD[0]} total found
  ((SMOKE)) && { echo "not ordered (smoke: debug build)"; return; }
  [[ -f "$file" ]] || { echo "no cli/code-order.txt"; return; }
  command -v nm >/dev/null || { echo "unknown (no nm)"; return; }
  total=$(wc -l <"$file")
  found=$(nm --defined-only "$bin" 2>/dev/null | awk '{ print $NF }' | grep -cxFf - "$file" || true)
  if ((found * 10 < total * 9)); then
    warn "$bin has $found of the $total functions of cli/code-order.txt: the order does not fit this build (stale, or another profile or toolchain; bench/code-order.sh regenerates it), so its idle RSS reads high"
  fi
  echo "$found of $total functions of cli/code-order.txt in the binary"
}

# --code-order: REQUESTS requests through turnpike (after the checks), a
# callgrind dump, and the functions of the dump that the data plane's
# binary defines, by exclusive instructions (hottest first), written to
# CODE_ORDER_OUT.
write_code_order() {
  local out=${CODE_ORDER_OUT:-$REPO_ROOT/cli/code-order.txt} n=${REQUESTS:-500}
  if ((SMOKE)); then out=$WORK/code-order.txt n=20; fi
  # Generic functions instantiated in the `turnpike` binary's own crate
  # carry other symbol hashes than the same ones in `turnpike-data-plane`
  # (the binary measured and shipped): an order made from `turnpike
  # data-plane` fits the latter only in part.
  if ((!SMOKE)) && [[ ${DATA_PLANE_CMD[0]##*/} != turnpike-data-plane ]]; then
    die "--code-order profiles turnpike-data-plane: build it next to $TURNPIKE (cargo build --release -p turnpike-cli --bins) or set TURNPIKE_DATA_PLANE_BIN"
  fi
  log "code order: $n requests through turnpike, then a dump"
  send_requests "$(target_url http turnpike)" "$n" ok
  callgrind_dump data-plane order
  local dump=$WORK/callgrind-data-plane-order.out
  python3 - "$dump" "${DATA_PLANE_CMD[0]}" "$out" <<'EOF' || die "no code order written"
import collections, subprocess, sys
dump, binary, out = sys.argv[1:4]
cost = collections.Counter()
fn, after_calls = None, False
for line in open(dump):
    if line.startswith("fn="):
        fn = line[3:].strip()
        cost[fn] += 0
    elif line.startswith("calls="):
        after_calls = True  # the next cost line is the call's, inclusive
    elif line[:1].isdigit() or line[:1] in "+-*":
        if after_calls:
            after_calls = False
        elif fn is not None:
            cost[fn] += int(line.split()[1])
sizes = {}
nm = subprocess.run(["nm", "-S", "--defined-only", binary], capture_output=True, text=True, check=True)
for row in nm.stdout.splitlines():
    parts = row.split()
    if len(parts) == 4 and parts[2] in "tTwW":
        sizes[parts[3]] = int(parts[1], 16)
names = [n for n, _ in sorted(cost.items(), key=lambda kv: (-kv[1], kv[0])) if n in sizes]
if not names:
    sys.exit(f"no function of {dump} found in {binary}'s symbols")
with open(out, "w") as f:
    f.write("".join(n + "\n" for n in names))
print(f"{len(names)} functions, {sum(sizes[n] for n in names) / 1e6:.2f} MB of code, written to {out}")
EOF
}

# Requests each target of upstream lb-ALG has served so far, "a b" (from
# the data plane's /upstreams), or "- -" when that is not available.
lb_counts() {
  curl -sf --max-time 2 "http://127.0.0.1:$STATUS_PORT/upstreams" 2>/dev/null |
    python3 -c 'import json, sys
try:
    for u in json.load(sys.stdin)["upstreams"]:
        if u["name"] == sys.argv[1]:
            print(" ".join(str(t["requests"]) for t in u["targets"]))
            break
    else:
        print("- -")
except Exception:
    print("- -")' "lb-$1" 2>/dev/null || echo "- -"
}

# Warm-up (connection pools, caches, CPU frequency), then ROUNDS rounds of
# one run per target, per protocol and concurrency level. Each round starts
# with the next target (`rotation`), so none is always the one that runs
# first or right after another's load. Each line of results.txt: mode,
# concurrency, target, round, then measure_run's fields (rps, p50 µs, p99
# µs, requests, non-2xx, errors, seconds the load tool ran, proxy CPU
# seconds (- for direct), CPU seconds of everything else on the proxy's CPU
# (- when not pinned)), then requests per balancing target (- - otherwise),
# then the connections the origin accepted during the run: the load tool's
# for direct, else the ones the proxy opened (after the warm-up, a proxy
# whose pool keeps up opens none).
run_benchmarks() {
  local mode conc t round out k targets header pid split accepted opened ended mid late sampler
  local duration warmup
  duration=$(seconds_of "$DURATION")
  case "$WARMUP" in "" | 0 | 0s) warmup=0 ;; *) warmup=$(seconds_of "$WARMUP") ;; esac
  : >"$WORK/results.txt"
  for mode in $MODES; do
    targets=("${TARGETS[@]}")
    if [[ "$mode" == http ]]; then
      for k in $ALGORITHMS; do targets+=("lb-$k"); done
    fi
    for conc in $CONCURRENCY; do
      if [[ "$warmup" != 0 ]]; then
        for t in "${targets[@]}"; do
          header=""
          [[ "$t" == lb-* ]] && header=$HASH_HEADER
          log "$mode c$conc warm-up: $t (${warmup}s)"
          run_load "$mode" "$WORK/warmup-$mode-$conc-$t.txt" "$warmup" "$(target_url "$mode" "$t")" "$conc" "$header"
        done
      fi
      for ((round = 1; round <= ROUNDS; round++)); do
        rotation "$round" "${targets[@]}"
        for t in "${ORDER[@]}"; do
          log "$mode c$conc round $round/$ROUNDS: $t"
          out="$WORK/run-$mode-$conc-$t-$round.txt"
          header=""
          [[ "$t" == lb-* ]] && header=$HASH_HEADER
          split="- -"
          [[ "$t" == lb-* ]] && split=$(lb_counts "${t#lb-}")
          pid=$(proxy_pid "$t") || pid=""
          accepted=$(origin_accepts) || die "the origin's stub_status does not answer"
          # Counted again halfway through the run: what opens in the second
          # half is churn, not the run's start replacing what the previous
          # run's disconnects closed.
          rm -f "$WORK/accepts-mid"
          (
            sleep "$(python3 -c "print($duration / 2)")"
            origin_accepts >"$WORK/accepts-mid"
          ) &
          sampler=$!
          measure_run "$mode" "$out" "$duration" "$(target_url "$mode" "$t")" "$conc" "$pid" "$header"
          wait "$sampler" || true
          if [[ "$t" == lb-* && "$split" != "- -" ]]; then
            local a1 b1 a2 b2
            read -r a1 b1 <<<"$split"
            read -r a2 b2 <<<"$(lb_counts "${t#lb-}")"
            if [[ "$a2" =~ ^[0-9]+$ && "$b2" =~ ^[0-9]+$ ]]; then
              split="$((a2 - a1)) $((b2 - b1))"
            else
              split="- -"
            fi
          fi
          ended=$(origin_accepts) || die "the origin's stub_status does not answer"
          mid=$(cat "$WORK/accepts-mid" 2>/dev/null) || mid=""
          if [[ "$mid" =~ ^[0-9]+$ ]]; then
            opened=$((ended - accepted - 2)) # less the two later requests' own
            late=$((ended - mid - 1))
          else
            opened=$((ended - accepted - 1))
            late=-
          fi
          echo "$mode $conc $t $round $MEASURED $split $opened $late" >>"$WORK/results.txt"
          check_alive # a proxy that crashed under load fails the run here
        done
      done
    done
  done
}

machine_summary() {
  local cmd="bench/proxy.sh${ORIGINAL_ARGS[*]:+ ${ORIGINAL_ARGS[*]}}"
  ((SMOKE)) || cmd="DURATION=$DURATION CONCURRENCY=\"$CONCURRENCY\" THREADS=$THREADS WARMUP=$WARMUP ROUNDS=$ROUNDS${ALGORITHMS:+ ALGORITHMS=\"$ALGORITHMS\"} $cmd"
  cat <<EOF
# Proxy benchmark: direct vs turnpike vs nginx vs HAProxy$( ((SMOKE)) && echo " (smoke mode: not a measurement)")

- command: \`$cmd\`
- load: protocols $MODES; concurrency $CONCURRENCY; $DURATION per run, warm-up $WARMUP per target and level, $ROUNDS interleaved round(s), medians of the rounds shown; $THREADS load-tool thread(s) (fewer when fewer connections); HTTP/2: $H2_STREAMS stream(s) per connection
- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')
- machine: $(machine_note); load average at start ${LOADAVG_START}, at end $(cut -d' ' -f1-3 /proc/loadavg)
- pinning: $PIN_NOTE; affinity as run: $AFFINITY
- turnpike: commit $(commit_note), \`${DATA_PLANE_CMD[*]}\` ($PROFILE_NOTE), 1 worker thread, config version $TURNPIKE_CONFIG_VERSION; code layout: $CODE_ORDER_NOTE
- nginx: $(nginx -v 2>&1 | sed 's/^nginx version: //'), 1 worker process, upstream keepalive 256 (a second nginx, 1 worker, is the origin)
- haproxy: $(haproxy -v 2>/dev/null | head -n 1 | awk '{ print $3 }'), nbthread 1
- load tools: wrk $(wrk -v 2>&1 | head -n 1 | awk '{ print $2 }')$(command -v h2load >/dev/null && echo ", $(h2load --version 2>/dev/null | awk '{ print $2 }')"); TLS: $(openssl version | awk '{ print $1, $2 }'), ECDSA P-256 certificate
- proxy CPU: utime + stime of the proxy's processes (/proc/<pid>/stat, CLK_TCK $CLK_TCK) over each run; "requests per CPU-second" = requests completed / that time; "proxy CPU (cores)" = that time / the run's wall time; "other load on the proxy's CPU": that CPU's busy time in /proc/stat over the run less the proxy's, per second (anything else that ran there: 0 on a quiet machine; n/a when not pinned)

EOF
}

# Prints the markdown tables (medians per cell) and checks the results:
# exits 1 when a target served nothing or any request failed, or with
# FAIL_ON_TARGETS=1 when a target of the proxy-core issue is missed.
report() {
  python3 - "$WORK/results.txt" "$DURATION" "$FAIL_ON_TARGETS" "$SMOKE" "$WORK/memory.txt" <<'EOF'
import statistics, sys
runs = {}
modes, concs, targets = [], [], []
for line in open(sys.argv[1]):
    mode, conc, target, _round, rps, p50, p99, total, non2xx, errors, wall, cpu, other, sa, sb, opened, late = line.split()
    conc = int(conc)
    for lst, v in ((modes, mode), (concs, conc), (targets, target)):
        if v not in lst:
            lst.append(v)
    runs.setdefault((mode, conc, target), []).append(dict(
        rps=float(rps), p50=float(p50), p99=float(p99), total=int(total),
        non2xx=int(non2xx), errors=int(errors),
        cpu=None if cpu == "-" else float(cpu),
        cores=None if cpu == "-" else float(cpu) / float(wall),
        other=None if other == "-" else float(other) / float(wall),
        per_cpu=None if cpu == "-" or float(cpu) <= 0 else int(total) / float(cpu),
        split=None if sa == "-" else (int(sa), int(sb)), opened=int(opened),
        late=None if late == "-" else int(late)))
fail_on_targets = sys.argv[3] == "1"
smoke = sys.argv[4] == "1"
concs.sort()

def med(key, field):
    vals = [r[field] for r in runs.get(key, []) if r[field] is not None]
    return statistics.median(vals) if vals else None

def lat(us):
    return f"{us:.0f} µs" if us < 1000 else f"{us / 1000:.2f} ms"

def num(v):
    return "n/a" if v is None else f"{v:,.0f}"

def ratio(a, b):
    return "n/a" if a is None or not b else f"{a / b:.2f}x"

titles = {"http": "HTTP/1.1 (wrk)", "https": "HTTP/1.1 over TLS (wrk)",
          "h2": "HTTP/2 over TLS (h2load)", "h2c": "HTTP/2 cleartext (h2load)"}
main_targets = [t for t in ("direct", "turnpike", "nginx", "haproxy") if t in targets]
algs = [t for t in targets if t.startswith("lb-")]
verdicts = []
for mode in modes:
    print(f"## {titles.get(mode, mode)}\n")
    print("| c | target | requests/s | p50 | p99 | proxy CPU (cores) | other load on the proxy's CPU (cores) "
          "| requests per proxy-CPU-second | vs nginx: requests/s | vs nginx: per CPU-second "
          "| origin connections opened (fewest in a round) | of them in the run's second half (fewest) "
          "| non-2xx | errors |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c in concs:
        n_rps, n_cpu = med((mode, c, "nginx"), "rps"), med((mode, c, "nginx"), "per_cpu")
        for t in main_targets:
            key = (mode, c, t)
            if key not in runs:
                continue
            rps, per_cpu = med(key, "rps"), med(key, "per_cpu")
            cores, other = med(key, "cores"), med(key, "other")
            cores = "n/a" if cores is None else f"{cores:.2f}"
            other = "n/a" if other is None else f"{other:.2f}"
            non2xx = sum(r["non2xx"] for r in runs[key])
            errors = sum(r["errors"] for r in runs[key])
            # The fewest: a pool idle through the other targets' runs may
            # have closed its connections by the next round (turnpike after
            # 30 s), so only churn in every run is churn.
            opened = min(r["opened"] for r in runs[key])
            lates = [r["late"] for r in runs[key] if r["late"] is not None]
            late = min(lates) if lates else "n/a"
            print(f"| {c} | {t} | {rps:,.0f} | {lat(med(key, 'p50'))} | {lat(med(key, 'p99'))} | {cores} | {other} "
                  f"| {num(per_cpu)} | {ratio(rps, n_rps)} | {ratio(per_cpu, n_cpu)} | {opened} | {late} "
                  f"| {non2xx} | {errors} |")
    print()
    # The proxy-core issue's targets, for turnpike.
    lines = []
    for c in (50, 200):
        t, n = med((mode, c, "turnpike"), "per_cpu"), med((mode, c, "nginx"), "per_cpu")
        if t is not None and n:
            ok = t >= n
            verdicts.append(ok)
            lines.append(f"- requests per proxy-CPU-second at c{c} ≥ 1.0x nginx: "
                         f"{t / n:.2f}x, {'met' if ok else 'not met'}")
    # Churn: connections opened in the second half of a run (the first
    # half also replaces what the previous run's disconnects closed).
    churned = [(c, min(r["opened"] if r["late"] is None else r["late"]
                       for r in runs[(mode, c, "turnpike")]))
               for c in concs if c > 1 and (mode, c, "turnpike") in runs]
    if churned and mode in ("http", "https") and not smoke:
        ok = all(n == 0 for _, n in churned)
        verdicts.append(ok)
        lines.append("- no upstream connection churn (connections opened in the second half of a run): "
                     + ", ".join(f"c{c} {n}" for c, n in churned) + f", {'met' if ok else 'not met'}")
    p99 = med((mode, 1, "turnpike"), "p99")
    if p99 is not None:
        ok = p99 <= 250
        verdicts.append(ok)
        lines.append(f"- c1 p99 ≤ 250 µs: {lat(p99)}, {'met' if ok else 'not met'}")
    if lines:
        print("Targets (turnpike" + (", smoke mode: meaningless" if smoke else "") + "):\n")
        print("\n".join(lines) + "\n")
    if mode == "http" and algs:
        print("### Balancing algorithms (turnpike, two targets, HTTP/1.1)\n")
        print("| c | algorithm | requests/s | p99 | requests per proxy-CPU-second | vs round_robin: requests/s "
              "| vs round_robin: per CPU-second | per CPU-second within 5% | share of the first target "
              "| non-2xx | errors |")
        print("|---:|---|---:|---:|---:|---:|---:|---|---:|---:|---:|")
        for c in concs:
            base = (mode, c, "lb-round_robin")
            b_rps, b_cpu = med(base, "rps"), med(base, "per_cpu")
            for t in algs:
                key = (mode, c, t)
                if key not in runs:
                    continue
                rps, per_cpu = med(key, "rps"), med(key, "per_cpu")
                within = "n/a"
                # Judged on the cost (requests per CPU-second): requests/s
                # also moves with whatever else shares the proxy's CPU.
                if t != "lb-round_robin" and b_cpu and per_cpu:
                    within = "yes" if per_cpu / b_cpu >= 0.95 else "no"
                splits = [r["split"] for r in runs[key] if r["split"] and sum(r["split"])]
                share = "n/a" if not splits else \
                    f"{100 * sum(s[0] for s in splits) / sum(sum(s) for s in splits):.0f}%"
                non2xx = sum(r["non2xx"] for r in runs[key])
                errors = sum(r["errors"] for r in runs[key])
                print(f"| {c} | {t[3:]} | {rps:,.0f} | {lat(med(key, 'p99'))} | {num(per_cpu)} "
                      f"| {ratio(rps, b_rps)} | {ratio(per_cpu, b_cpu)} | {within} | {share} | {non2xx} | {errors} |")
        print()

memory = {}
for line in open(sys.argv[5]):
    phase, target, rss, peak = line.split()
    memory[(phase, target)] = (int(rss), int(peak))
def mb(kb):
    return f"{kb / 1024:.1f} MB"
print("## Memory (resident set)\n")
print("| proxy | idle (config in, first requests served) | after the runs | peak |")
print("|---|---:|---:|---:|")
for t in ("turnpike", "nginx", "haproxy"):
    if ("idle", t) in memory and ("after", t) in memory:
        print(f"| {t} | {mb(memory[('idle', t)][0])} | {mb(memory[('after', t)][0])} | {mb(memory[('after', t)][1])} |")
print()
if ("idle", "turnpike") in memory:
    idle = memory[("idle", "turnpike")][0]
    ok = idle < 10 * 1024
    verdicts.append(ok)
    print(f"Target (turnpike{', smoke mode: a debug build, meaningless' if smoke else ''}): "
          f"idle RSS under 10 MB: {mb(idle)}, {'met' if ok else 'not met'}\n")

failures = []
for (mode, c, target), rs in runs.items():
    where = f"{target} ({mode}, c{c})"
    if any(r["rps"] <= 0 or r["total"] == 0 for r in rs):
        failures.append(f"{where}: a run completed zero requests")
    non2xx = sum(r["non2xx"] for r in rs)
    errors = sum(r["errors"] for r in rs)
    if non2xx:
        failures.append(f"{where}: {non2xx} non-2xx responses")
    if errors:
        failures.append(f"{where}: {errors} socket errors or failed requests")
if fail_on_targets and not all(verdicts):
    failures.append("a performance target was missed (FAIL_ON_TARGETS=1)")
if failures:
    print("FAILED:\n" + "\n".join(f"- {f}" for f in failures))
    sys.exit(1)
EOF
}

# ---------------------------------------------------------------- main

main() {
  install_traps

  local mode
  for mode in $MODES; do
    case "$mode" in http | https | h2 | h2c) ;; *) die "unknown mode '$mode' in MODES" ;; esac
  done
  [[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive number"
  check_positive_list CONCURRENCY "$CONCURRENCY"
  seconds_of "$DURATION" >/dev/null

  ensure_command python3 python3
  ensure_command curl curl
  ensure_command psql postgresql-client
  ensure_command pgrep procps
  ensure_command openssl openssl
  ensure_command nginx nginx-light nginx
  ensure_command haproxy haproxy
  ensure_command wrk wrk
  if [[ " $MODES " == *" h2"* ]]; then ensure_command h2load nghttp2-client; fi
  if ((CODE_ORDER || CALLGRIND)); then
    ensure_command valgrind valgrind
    ensure_command nm binutils
    PORT_WAIT=120 # valgrind starts slowly
  fi
  ((SYSCALLS)) && ensure_command strace strace
  ((PERF)) && ensure_command perf linux-perf
  resolve_turnpike
  resolve_data_plane_bin
  choose_pinning
  CLK_TCK=$(getconf CLK_TCK)
  LOADAVG_START=$(cut -d' ' -f1-3 /proc/loadavg)

  ADMIN_TOKEN="bench-admin-$(random_hex 16)"
  CLUSTER_TOKEN="bench-cluster-$(random_hex 16)"
  DB_NAME="turnpike_bench_$(random_hex 4)" # fresh per run: no state from earlier runs
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/turnpike-bench.XXXXXX")
  read -r ORIGIN_PORT ORIGIN2_PORT ORIGIN_TLS_PORT ORIGIN_H2C_PORT ORIGIN_STATUS_PORT ADMIN_PORT CLUSTER_PORT \
    PROXY_PORT PROXY_TLS_PORT STATUS_PORT NGINX_PORT NGINX_TLS_PORT NGINX_H2C_PORT \
    HAPROXY_PORT HAPROXY_TLS_PORT HAPROXY_H2C_PORT <<<"$(free_ports 16)"

  require_postgres

  make_certificate
  log "origin (nginx) on :$ORIGIN_PORT and :$ORIGIN2_PORT, TLS :$ORIGIN_TLS_PORT, h2c :$ORIGIN_H2C_PORT"
  start_origin
  log "control plane on :$ADMIN_PORT (admin) and :$CLUSTER_PORT (cluster), database $DB_NAME"
  start_control_plane
  log "data plane on :$PROXY_PORT (proxy), :$PROXY_TLS_PORT (TLS) and :$STATUS_PORT (status)"
  start_turnpike_data_plane
  log "configuring turnpike through the admin API"
  configure_turnpike
  log "nginx on :$NGINX_PORT, TLS :$NGINX_TLS_PORT, h2c :$NGINX_H2C_PORT"
  start_nginx_proxy
  log "haproxy on :$HAPROXY_PORT, TLS :$HAPROXY_TLS_PORT, h2c :$HAPROXY_H2C_PORT"
  start_haproxy
  check_targets
  if ((CACHESIM)); then
    count_cache_misses
    return 0
  elif ((CALLGRIND)); then
    count_instructions
    return 0
  elif ((SYSCALLS)); then
    count_syscalls
    return 0
  elif ((PERF)); then
    profile_cpu
    return 0
  fi
  AFFINITY=$(affinity_note data-plane nginx haproxy origin)
  record_memory idle
  if ((CODE_ORDER)); then
    write_code_order
    return 0
  fi
  CODE_ORDER_NOTE=$(code_order_note)

  run_benchmarks
  record_memory after

  local rc=0
  {
    machine_summary
    report || rc=$?
  } >"$WORK/report.md"
  echo
  cat "$WORK/report.md"
  save_report proxy
  ((rc == 0)) || die "benchmark checks failed (see FAILED above)"
}

main "$@"
