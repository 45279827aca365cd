# shellcheck shell=bash
# shellcheck disable=SC2034 # globals set here are read by the sourcing scripts
# bench/lib.sh: helpers shared by the benchmark scripts that run real
# processes (proxy.sh, reload.sh, policies.sh, observability.sh). Sourced,
# not run: CI's loop over bench/*.sh runs only files ending in .sh, and
# this one, run by mistake, does nothing (it only defines functions).
#
# The sourcing script sets REPO_ROOT, SMOKE, BENCH_PG, BENCH_OUT and
# BENCH_KEEP_TMP first, then calls `trap cleanup EXIT` in its main. State
# kept here (read by cleanup): WORK (the temp dir), DB_NAME, PIDS / NAMES
# (children in start order), DB_CREATED, WRK_PID (the load tool while it
# runs) and HELPER_PIDS (background helpers such as a scraper).
#
# Conventions: every helper that fails calls die, which prints the end of
# every child's log and exits 1; cleanup stops every child and drops the
# benchmark database, on any exit.

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  # CI runs every bench/*.sh with --smoke; this file only defines helpers.
  echo "bench/lib.sh: helpers sourced by the other bench scripts; nothing to run"
  exit 0
fi

# Debian installs nginx and haproxy in /usr/sbin, not on most users' PATH.
PATH=$PATH:/usr/sbin:/sbin
BENCH_NAME=${BENCH_NAME:-$(basename "$0")}

WORK=""
DB_NAME=""
PIDS=()         # children in start order; stopped in reverse
NAMES=()        # their names, for messages
DB_CREATED=0    # set once the control plane may have created the database
WRK_PID=""      # the load tool while it runs
HELPER_PIDS=()  # other background helpers (stopped by cleanup too)
PIN_PROXY=()    # command prefixes set by choose_pinning
PIN_LOAD=()
DATA_PLANE_CMD=() # `$TURNPIKE data-plane` (resolve_turnpike), or resolve_data_plane_bin's
PROXY_CPU=""
H2_STREAMS=${H2_STREAMS:-1}
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
PORT_WAIT=15    # seconds a started proxy gets to open its ports (more under valgrind)
CALLGRIND_CMD=()

# ---------------------------------------------------------------- basics

log() { printf '==> %s\n' "$*" >&2; }
warn() { printf '%s: %s\n' "$BENCH_NAME" "$*" >&2; }

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

# Prints the script's header comment (from line 2 to `set -euo`) for --help.
usage() {
  sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$1"
}

# Stops every child (newest first) with SIGTERM, then SIGKILL after a grace
# period, drops the benchmark database once the control plane is gone, and
# removes the temp dir.
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  [[ -n "$WRK_PID" ]] && kill "$WRK_PID" 2>/dev/null
  local pid
  for pid in "${HELPER_PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  # Grandchildren (nginx's workers) are noted now: a parent killed below
  # would orphan them, and they could no longer be found by parent.
  local grandchildren=()
  if ((${#PIDS[@]})) && command -v pgrep >/dev/null; then
    mapfile -t grandchildren < <(pgrep -P "$(IFS=,; echo "${PIDS[*]}")")
  fi
  local i
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    kill -TERM "${PIDS[i]}" 2>/dev/null
  done
  local deadline=$((SECONDS + 10))
  for pid in "${PIDS[@]}" $WRK_PID "${HELPER_PIDS[@]}" "${grandchildren[@]}"; do
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

# Sets the traps every script's main starts with.
install_traps() {
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# psql as the Postgres superuser on the server's maintenance database.
psql_admin() {
  psql -X -q -v ON_ERROR_STOP=1 "$BENCH_PG/postgres" "$@"
}

require_postgres() {
  psql_admin -c 'SELECT 1' >/dev/null 2>&1 ||
    die "Postgres is not reachable at $BENCH_PG (trust auth expected; set BENCH_PG)"
}

# Installs Debian packages for missing commands; `apt-get update` only when a
# plain install fails (a fresh image has no package lists). RUNLEVEL=1 stops
# the nginx and haproxy packages from starting system services.
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
# colour codes out of the logs. taskset execs its command, so a pinned
# child's pid is the program's own.
start() {
  local name=$1
  shift
  NO_COLOR=1 "$@" </dev/null >"$WORK/$name.log" 2>&1 &
  PIDS+=($!)
  NAMES+=("$name")
}

# The pid of the child started as NAME.
pid_of() {
  local i
  for i in "${!NAMES[@]}"; do
    [[ "${NAMES[i]}" == "$1" ]] && { echo "${PIDS[i]}"; return 0; }
  done
  return 1
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

# "10s", "10" → 10; "1.5s" → 1.5. Minutes and other units are refused.
seconds_of() {
  [[ "$1" =~ ^([0-9]+(\.[0-9]+)?)s?$ ]] || die "durations are in seconds (as 10s), not '$1'"
  echo "${BASH_REMATCH[1]}"
}

# Checks a list of positive numbers (CONCURRENCY and the like).
check_positive_list() { # check_positive_list NAME VALUES
  local v
  [[ -n "$2" ]] || die "$1 is empty"
  for v in $2; do
    [[ "$v" =~ ^[1-9][0-9]*$ ]] || die "$1 must list positive numbers, not '$v'"
  done
}

# utime + stime, in clock ticks, of PID and its children (nginx's workers).
# /proc/<pid>/stat counts every thread of the process (the access-log
# writer, tokio's blocking pool).
proc_cpu_ticks() {
  local total=0 p s f
  for p in "$1" $(pgrep -P "$1" 2>/dev/null); do
    { s=$(<"/proc/$p/stat"); } 2>/dev/null || continue
    s=${s##*) } # fields from the 3rd on; the name (2nd) may hold spaces
    read -r -a f <<<"$s"
    total=$((total + f[11] + f[12]))
  done
  echo "$total"
}

# "write_syscalls context_switches" of PID so far: syscw from
# /proc/<pid>/io, and voluntary + involuntary switches of all its threads.
proc_sys_counts() {
  local w c
  w=$(awk '$1 == "syscw:" { print $2 }' "/proc/$1/io" 2>/dev/null)
  c=$(cat "/proc/$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ { s += $2 } END { print s + 0 }')
  echo "${w:-0} ${c:-0}"
}

# Busy time (user, nice, system, irq, softirq, steal), in clock ticks, of
# CPU $1 from /proc/stat: with the proxy's own time, what else ran there.
cpu_busy_ticks() {
  awk -v cpu="cpu$1" '$1 == cpu { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat
}

# ---------------------------------------------------------------- turnpike

# build_bin NAME: builds the CLI's binary NAME and prints its path. Smoke
# mode builds the debug profile: CI has just built it for the tests, and a
# release build (thin LTO) would cost minutes on a 2-core runner for a
# check that measures nothing.
build_bin() {
  local profile=(--release) dir=release
  if ((SMOKE)); then profile=() dir=debug; fi
  log "building $1 (cargo build ${profile[*]} -p turnpike-cli)"
  (cd "$REPO_ROOT" && cargo build "${profile[@]}" --locked -p turnpike-cli --bin "$1") >&2 ||
    die "cargo build failed"
  echo "$REPO_ROOT/target/$dir/$1"
}

# Uses $TURNPIKE_BIN, else builds the CLI. Sets TURNPIKE, PROFILE_NOTE and
# DATA_PLANE_CMD (`$TURNPIKE data-plane`; resolve_data_plane_bin may change it).
resolve_turnpike() {
  if [[ -n "${TURNPIKE_BIN:-}" ]]; then
    [[ -x "$TURNPIKE_BIN" ]] || die "TURNPIKE_BIN=$TURNPIKE_BIN is not an executable"
    TURNPIKE=$TURNPIKE_BIN
    PROFILE_NOTE="given by TURNPIKE_BIN"
    # Catch the easy mistake of benchmarking an unoptimised binary.
    if [[ "$TURNPIKE" == */debug/* ]]; then
      PROFILE_NOTE="$PROFILE_NOTE; a DEBUG build, so the numbers mean little"
    fi
  else
    TURNPIKE=$(build_bin turnpike)
    PROFILE_NOTE="$(basename "$(dirname "$TURNPIKE")") build"
  fi
  DATA_PLANE_CMD=("$TURNPIKE" data-plane)
}

# The data plane alone (`turnpike-data-plane`, what proxy hosts run):
# $TURNPIKE_DATA_PLANE_BIN, else the one next to $TURNPIKE. A given
# TURNPIKE_BIN without one beside it runs as `$TURNPIKE data-plane` (the
# same build, not a fresh one from this tree). Sets DATA_PLANE_CMD, which
# start_data_plane runs (resolve_turnpike's `$TURNPIKE data-plane` until then).
resolve_data_plane_bin() {
  local bin=${TURNPIKE_DATA_PLANE_BIN:-$(dirname "$TURNPIKE")/turnpike-data-plane}
  if [[ -z "${TURNPIKE_DATA_PLANE_BIN:-}" && ! -x "$bin" ]]; then
    if [[ -n "${TURNPIKE_BIN:-}" ]]; then
      warn "no turnpike-data-plane next to $TURNPIKE_BIN: running \`$TURNPIKE data-plane\`"
      return
    fi
    bin=$(build_bin turnpike-data-plane)
  fi
  [[ -x "$bin" ]] || die "$bin is not an executable"
  DATA_PLANE_CMD=("$bin")
}

# "rss_kb peak_kb" of PID and its children (nginx's workers): VmRSS and
# VmHWM from /proc/<pid>/status, summed (pages the processes share count
# once per process, as `ps` shows them).
proc_memory_kb() {
  local p rss=0 hwm=0 r h
  for p in "$1" $(pgrep -P "$1" 2>/dev/null); do
    read -r r h < <(awk '$1 == "VmRSS:" { r = $2 } $1 == "VmHWM:" { h = $2 } END { print r + 0, h + 0 }' \
      "/proc/$p/status" 2>/dev/null) || continue
    rss=$((rss + r)) hwm=$((hwm + h))
  done
  echo "$rss $hwm"
}

# The commit the binary comes from, for reports: this tree's HEAD (marked
# when the tree has changes), or TURNPIKE_COMMIT for a binary built elsewhere.
commit_note() {
  local commit
  commit=$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
  if [[ "$commit" != unknown ]] && ! git -C "$REPO_ROOT" diff --quiet HEAD -- 2>/dev/null; then
    commit="$commit (with uncommitted changes)"
  fi
  [[ -n "${TURNPIKE_COMMIT:-}" ]] && commit="$TURNPIKE_COMMIT (as given by TURNPIKE_COMMIT)"
  echo "$commit"
}

# "2 CPU(s), <model>, Linux x.y", for reports.
machine_note() {
  local cpu
  cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null)
  echo "$(nproc) CPU(s), ${cpu:-unknown CPU}, $(uname -sr)"
}

# Proxies on one CPU, the load tool and the origin on another, when taskset
# exists and this process may use two CPUs (PIN=auto|1|0). Sets PIN_PROXY /
# PIN_LOAD (command prefixes), PROXY_CPU, LOAD_CPU and PIN_NOTE, and
# THREADS (the load tool's) when unset: 1 when pinned, else 2.
choose_pinning() {
  PIN_PROXY=() PIN_LOAD=() PROXY_CPU=""
  local cpus=()
  read -r -a cpus <<<"$(python3 -c 'import os; print(" ".join(map(str, sorted(os.sched_getaffinity(0)))))')"
  if [[ "${PIN:-auto}" == 0 ]]; then
    PIN_NOTE="not pinned (PIN=0); all processes share ${#cpus[@]} CPU(s)"
  elif ! command -v taskset >/dev/null; then
    [[ "${PIN:-auto}" == 1 ]] && die "PIN=1 but taskset is missing (util-linux)"
    PIN_NOTE="not pinned (no taskset); all processes share ${#cpus[@]} CPU(s)"
  elif ((${#cpus[@]} < 2)); then
    [[ "${PIN:-auto}" == 1 ]] && die "PIN=1 but only ${#cpus[@]} CPU is usable"
    PIN_NOTE="not pinned (one CPU)"
  else
    LOAD_CPU=${cpus[0]} PROXY_CPU=${cpus[1]}
    export PROXY_CPU
    PIN_LOAD=(taskset -c "$LOAD_CPU")
    PIN_PROXY=(taskset -c "$PROXY_CPU")
    PIN_NOTE="each proxy pinned to CPU $PROXY_CPU (\`taskset -c $PROXY_CPU\`), load tool and origin to CPU $LOAD_CPU; control plane and Postgres not pinned (idle during runs)"
  fi
  if [[ -z "${THREADS:-}" ]]; then
    if ((${#PIN_LOAD[@]})); then THREADS=1; else THREADS=2; fi
  fi
}

# Where each named child may run, as the kernel has it, for the report:
# "name cpus, name cpus".
affinity_note() { # affinity_note NAME...
  local name pid list=()
  for name in "$@"; do
    pid=$(pid_of "$name") || continue
    list+=("$name $(taskset -pc "$pid" 2>/dev/null | awk -F': ' '{ print $2 }')")
  done
  local joined
  joined=$(printf '%s, ' "${list[@]}")
  echo "${joined%, }"
}

# A control plane on a fresh database DB_NAME, with ADMIN_TOKEN and
# CLUSTER_TOKEN, admin API on ADMIN_PORT, cluster on CLUSTER_PORT.
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

# start_data_plane NAME PROXY_PORT STATUS_PORT [ARGS...]: a data plane of
# the control plane above, pinned with PIN_PROXY (when set), with ARGS
# added (--worker-threads 1, --proxy-tls-listen, --access-log...).
start_data_plane() {
  local name=$1 proxy_port=$2 status_port=$3
  shift 3
  start "$name" "${PIN_PROXY[@]}" "${DATA_PLANE_CMD[@]}" \
    --control-plane "http://127.0.0.1:$CLUSTER_PORT" \
    --proxy-listen "127.0.0.1:$proxy_port" \
    --status-listen "127.0.0.1:$status_port" \
    --cluster-token "$CLUSTER_TOKEN" \
    "$@"
  wait_until "$name's status port" 15 port_open "$status_port"
  wait_until "$name's proxy port" 15 port_open "$proxy_port"
}

# True when this binary's `data-plane` knows FLAG (a flag being added may
# not be there yet). The help is read whole first: grep -q closing the pipe
# early would fail the pipeline under pipefail.
data_plane_has_flag() {
  local help
  help=$("$TURNPIKE" data-plane --help 2>/dev/null) || return 1
  grep -qE -- "(^|[^-[:alnum:]])$1([^-[:alnum:]]|\$)" <<<"$help"
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

# data_plane_has_version VERSION [STATUS_PORT]: true once the data plane
# reports config_version >= VERSION (STATUS_PORT by default).
data_plane_has_version() {
  local status
  status=$(curl -sf --max-time 2 "http://127.0.0.1:${2:-$STATUS_PORT}/status") || return 1
  python3 -c 'import json, sys; sys.exit(0 if json.loads(sys.argv[1]).get("config_version", 0) >= int(sys.argv[2]) else 1)' \
    "$status" "$1"
}

# ---------------------------------------------------------------- nginx

# nginx's compiled-in temp paths (/var/lib/nginx/...) are created at start
# even when unused; point each one this build has into DIR so the run never
# touches the system nginx's files.
nginx_temp_paths() {
  local dir=$1 build m
  build=$(nginx -V 2>&1)
  echo "  client_body_temp_path $dir/body;"
  echo "  proxy_temp_path $dir/proxy;"
  for m in fastcgi uwsgi scgi; do
    if [[ "$build" == *"--http-$m-temp-path"* && "$build" != *"--without-http_${m}_module"* ]]; then
      echo "  ${m}_temp_path $dir/$m;"
    fi
  done
}

# An nginx config, $WORK/NAME.conf: NAME (its dir under $WORK), then the
# http block's contents on stdin. One worker, no access log; the
# certificate $WORK/tls/{cert,key}.pem when make_certificate made one;
# NGINX_MAIN_EXTRA, when set, is added to the main context (such as
# `master_process off;` for a worker under valgrind).
write_nginx_conf() {
  local name=$1 dir=$WORK/$1
  mkdir -p "$dir"
  {
    # As root, workers would run as `nobody`, who cannot enter the 0700
    # temp dir; as anyone else the directive is ignored, so leave it out.
    if ((EUID == 0)); then echo "user root;"; fi
    cat <<EOF
worker_processes 1;
${NGINX_MAIN_EXTRA:-}
# Each proxied connection takes two descriptors; a 1024 soft limit would cap
# the worker below worker_connections.
worker_rlimit_nofile 8192;
daemon off;
pid $dir/nginx.pid;
error_log $WORK/$name-error.log warn;

events {
  worker_connections 4096;
}

http {
  access_log off;
$(nginx_temp_paths "$dir")
EOF
    if [[ -f "$WORK/tls/cert.pem" ]]; then
      echo "  ssl_certificate $WORK/tls/cert.pem;"
      echo "  ssl_certificate_key $WORK/tls/key.pem;"
    fi
    cat <<EOF
  keepalive_requests 1000000;

EOF
    cat
    echo "}"
  } >"$WORK/$name.conf"
}

# start_nginx NAME PORT PIN...: checks and starts the config of NAME.
start_nginx() {
  local name=$1 port=$2
  shift 2
  nginx -t -q -e "$WORK/$name-error.log" -c "$WORK/$name.conf" -p "$WORK/$name" \
    >"$WORK/$name-test.out" 2>&1 || die "nginx rejected $WORK/$name.conf: $(cat "$WORK/$name-test.out")"
  start "$name" "$@" nginx -e "$WORK/$name-error.log" -c "$WORK/$name.conf" -p "$WORK/$name"
  wait_until "$name on port $port" "$PORT_WAIT" port_open "$port"
}

# ---------------------------------------------------------------- load

# run_load MODE OUTFILE DURATION URL CONCURRENCY [HEADER...]: the load tool
# in the background so that a signal reaches the trap (and stops it) at
# once rather than after the run. wrk for HTTP/1.1 (its --latency
# percentiles); h2load for HTTP/2, with a per-request log (OUTFILE.log) for
# percentiles. Empty HEADERs are skipped. Pinned with PIN_LOAD.
run_load() {
  local mode=$1 out=$2 duration=$3 url=$4 conc=$5
  shift 5
  local threads=$((THREADS < conc ? THREADS : conc)) tool h
  case "$mode" in
    http | https)
      tool=(wrk --latency -t "$threads" -c "$conc" -d "${duration}s")
      ;;
    h2 | h2c)
      local streams=$((H2_STREAMS < conc ? H2_STREAMS : conc))
      local conns=$(((conc + streams - 1) / streams))
      threads=$((THREADS < conns ? THREADS : conns))
      tool=(h2load -D "${duration}s" -c "$conns" -m "$streams" -t "$threads" --log-file="$out.log")
      if [[ "$mode" == h2 ]]; then
        [[ "$url" =~ ^https://localhost:([0-9]+)/ ]] || die "unexpected URL $url"
        tool+=(--connect-to="127.0.0.1:${BASH_REMATCH[1]}")
      fi
      ;;
    *) die "unknown load mode $mode" ;;
  esac
  for h in "$@"; do
    [[ -n "$h" ]] && tool+=(-H "$h")
  done
  "${PIN_LOAD[@]}" "${tool[@]}" "$url" >"$out" 2>&1 &
  WRK_PID=$!
  local rc=0
  wait "$WRK_PID" || rc=$?
  WRK_PID=""
  ((rc == 0)) || die "${tool[0]} against $url failed (exit $rc): $(tail -n 20 "$out")"
}

# Prints "rps p50_us p99_us requests non2xx errors" from wrk --latency
# output; errors are wrk's socket errors (connect, read, write, timeout).
parse_wrk() {
  awk '
    function us(v) {
      if (v ~ /us$/) return v + 0
      if (v ~ /ms$/) return v * 1000
      if (v ~ /m$/)  return v * 60000000
      if (v ~ /s$/)  return v * 1000000
      return v * 1000
    }
    /Latency Distribution/   { dist = 1 }
    dist && $1 == "50%"      { p50 = us($2) }
    dist && $1 == "99%"      { p99 = us($2); dist = 0 }
    / requests in /          { total = $1 }
    /^Requests\/sec:/        { rps = $2 }
    /Non-2xx or 3xx/         { non2xx = $NF }
    /Socket errors:/ {
      gsub(",", "")
      sockerr = $4 + $6 + $8 + $10
    }
    END {
      if (rps == "" || p50 == "" || p99 == "") exit 1
      printf "%s %.1f %.1f %d %d %d\n", rps, p50, p99, total, non2xx, sockerr
    }' "$1"
}

# The same from h2load's summary and its --log-file (columns: start time,
# status, microseconds until the end of the response; -1 = failed stream).
# errors: failed + errored + timed out requests.
parse_h2load() {
  python3 - "$1" "$1.log" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
rps = re.search(r"finished in [\d.]+\w*, ([\d.]+) req/s", text)
req = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                r"(\d+) failed, (\d+) errored, (\d+) timeout", text)
codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
if not (rps and req and codes):
    sys.exit(1)
times = []
non2xx = 0
for line in open(sys.argv[2]):
    cols = line.split("\t")
    if len(cols) < 3:
        continue
    times.append(int(cols[2]))
times.sort()
if not times:
    sys.exit(1)
pct = lambda p: times[min(len(times) - 1, int(p * len(times)))]
non2xx = int(codes[2]) + int(codes[3]) + int(codes[4])
errors = int(req[5]) + int(req[6]) + int(req[7])
print(f"{rps[1]} {pct(0.50):.1f} {pct(0.99):.1f} {req[4]} {non2xx} {errors}")
EOF
}

# measure_run MODE OUTFILE DURATION URL CONCURRENCY PID [HEADER...]: one
# measured run of the load tool against URL, with the CPU time of PID (a
# proxy; "" for none) and of the rest of the proxy's CPU over it. Sets
# MEASURED to "rps p50_us p99_us requests non2xx errors wall_s cpu_s
# other_s" (cpu_s "-" without PID, other_s "-" when not pinned), and
# MEASURED_SYS to "write_syscalls context_switches" of PID over the run
# ("- -" without PID); not printed, so that the load tool runs in this
# shell (a signal stops it, and die exits the script). The raw output goes
# to stderr for the CI log.
measure_run() {
  local mode=$1 out=$2 duration=$3 url=$4 conc=$5 pid=$6
  shift 6
  local before=0 after=0 busy_before=0 busy_after=0 started ended wall cpu=- other=- parsed
  local sys_before="0 0" sys_after="0 0" w0 c0 w1 c1
  [[ -n "$pid" ]] && sys_before=$(proc_sys_counts "$pid")
  [[ -n "$pid" ]] && before=$(proc_cpu_ticks "$pid")
  # The reads around the run are kept tight: the CPU's busy time is
  # compared with the wall time between them.
  [[ -n "$PROXY_CPU" ]] && busy_before=$(cpu_busy_ticks "$PROXY_CPU")
  started=${EPOCHREALTIME/./}
  run_load "$mode" "$out" "$duration" "$url" "$conc" "$@"
  [[ -n "$PROXY_CPU" ]] && busy_after=$(cpu_busy_ticks "$PROXY_CPU")
  ended=${EPOCHREALTIME/./}
  [[ -n "$pid" ]] && after=$(proc_cpu_ticks "$pid")
  [[ -n "$pid" ]] && sys_after=$(proc_sys_counts "$pid")
  read -r w0 c0 <<<"$sys_before"
  read -r w1 c1 <<<"$sys_after"
  MEASURED_SYS="- -"
  [[ -n "$pid" ]] && MEASURED_SYS="$((w1 - w0)) $((c1 - c0))"
  wall=$(python3 -c "print(($ended - $started) / 1e6)")
  [[ -n "$pid" ]] && cpu=$(python3 -c "print(($after - $before) / $CLK_TCK)")
  if [[ -n "$PROXY_CPU" ]]; then
    other=$(python3 -c "print(max(0, ($busy_after - $busy_before) - ($after - $before)) / $CLK_TCK)")
  fi
  case "$mode" in
    http | https) parsed=$(parse_wrk "$out") ;;
    *) parsed=$(parse_h2load "$out") ;;
  esac || die "could not parse the load tool's output for $url ($mode): $(cat "$out")"
  [[ "$BENCH_KEEP_TMP" == 1 ]] || rm -f "$out.log" # h2load's per-request log
  sed 's/^/    /' "$out" >&2
  MEASURED="$parsed $wall $cpu $other"
}

# Rotates a list by ROUND-1: round 1 runs A B C, round 2 B C A, ... so no
# target always runs first or right after the same other one (with two
# targets: A B, B A, A B: drift that is linear in time cancels out).
# Sets ORDER.
rotation() { # rotation ROUND TARGET...
  local round=$1
  shift
  local targets=("$@")
  local k=$(((round - 1) % ${#targets[@]}))
  ORDER=("${targets[@]:k}" "${targets[@]:0:k}")
}

# ---------------------------------------------------------------- callgrind

# start_callgrind_data_plane NAME PROXY_PORT STATUS_PORT [ARGS...]: as
# start_data_plane (DATA_PLANE_CMD), under `valgrind
# --tool=callgrind` (counting from the start; callgrind_batch zeroes before
# each batch). Dumps go to $WORK/callgrind-NAME/.
start_callgrind_data_plane() {
  local name=$1 proxy_port=$2 status_port=$3
  shift 3
  callgrind_prefix "$name"
  start "$name" "${PIN_PROXY[@]}" "${CALLGRIND_CMD[@]}" \
    "${DATA_PLANE_CMD[@]}" \
    --control-plane "http://127.0.0.1:$CLUSTER_PORT" \
    --proxy-listen "127.0.0.1:$proxy_port" \
    --status-listen "127.0.0.1:$status_port" \
    --cluster-token "$CLUSTER_TOKEN" \
    "$@"
  # valgrind starts slowly.
  wait_until "$name's status port (under valgrind)" 120 port_open "$status_port"
  wait_until "$name's proxy port (under valgrind)" 60 port_open "$proxy_port"
}

# callgrind_prefix NAME: sets CALLGRIND_CMD to the valgrind command line
# that runs process NAME under callgrind, its dumps in $WORK/callgrind-NAME/
# (what callgrind_batch and callgrind_dump read).
callgrind_prefix() {
  # CALLGRIND_EXTRA: more callgrind options (proxy.sh --cachesim's caches).
  [[ -v CALLGRIND_EXTRA ]] || CALLGRIND_EXTRA=()
  mkdir -p "$WORK/callgrind-$1"
  # Uncompressed names: each dump is kept alone (callgrind_batch), and a
  # compressed one names functions by ids defined in an earlier dump, which
  # callgrind_annotate then cannot resolve.
  # --trace-children: the data plane starts itself again at once, with
  # glibc's thread cache set (cli/src/malloc.rs); followed, it stays under
  # callgrind.
  CALLGRIND_CMD=(valgrind --tool=callgrind --compress-strings=no --trace-children=yes
    "--callgrind-out-file=$WORK/callgrind-$1/callgrind.out" "${CALLGRIND_EXTRA[@]}")
}

# send_requests URL N BODY [HEADER...]: N sequential GETs on one keep-alive
# connection, each of which must answer 200 (and BODY, unless it is "-").
send_requests() {
  python3 - "$@" <<'EOF' || die "requests to $1 failed"
import http.client, sys, urllib.parse
url, n, want = urllib.parse.urlsplit(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
headers = dict(h.split(": ", 1) for h in sys.argv[4:])
conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
path = url.path + (f"?{url.query}" if url.query else "")
for i in range(n):
    conn.request("GET", path, headers=headers)
    r = conn.getresponse()
    body = r.read()
    if r.status != 200 or (want != "-" and body != want.encode()):
        sys.exit(f"request {i} to {path}: {r.status} {body[:200]!r}")
EOF
}

# callgrind_batch NAME LABEL URL N BODY [HEADER...]: zeroes the counters of
# data plane NAME (under callgrind), sends N requests as send_requests,
# dumps, and sets CG_IR to the instructions (Ir) of the whole process over
# the batch; the dump is kept as $WORK/callgrind-NAME-LABEL.out.
callgrind_batch() {
  local name=$1 label=$2 pid dump before
  shift 2
  pid=$(pid_of "$name")
  callgrind_control -z "$pid" >"$WORK/callgrind-control.out" 2>&1 ||
    die "callgrind_control -z $name failed: $(cat "$WORK/callgrind-control.out")"
  send_requests "$@"
  callgrind_dump "$name" "$label"
  dump=$WORK/callgrind-$name-$label.out
  CG_IR=$(awk '$1 == "totals:" { print $2; exit }' "$dump")
  [[ "$CG_IR" =~ ^[0-9]+$ ]] || die "no instruction count in $dump"
}

# callgrind_dump NAME LABEL: dumps the counters of data plane NAME (under
# callgrind) since the start or the last zeroing, and keeps the dump as
# $WORK/callgrind-NAME-LABEL.out once it is complete.
callgrind_dump() {
  local name=$1 label=$2 pid dump before
  pid=$(pid_of "$name")
  before=$(callgrind_dumps "$name" | wc -l)
  callgrind_control -d "$label" "$pid" >"$WORK/callgrind-control.out" 2>&1 ||
    die "callgrind_control -d $name failed: $(cat "$WORK/callgrind-control.out")"
  wait_until "callgrind's dump of $name ($label)" 30 callgrind_dumps_more "$name" "$before"
  dump=$(callgrind_dumps "$name" | tail -n 1)
  # The totals line is the dump's last.
  wait_until "callgrind's dump of $name ($label) to be complete" 30 grep -q '^totals:' "$dump"
  cp "$dump" "$WORK/callgrind-$name-$label.out"
}

# The dumps of data plane NAME so far, oldest first.
callgrind_dumps() {
  find "$WORK/callgrind-$1" -type f -name 'callgrind.out*' -printf '%T@ %p\n' | sort -n | cut -d' ' -f2-
}
callgrind_dumps_more() { (($(callgrind_dumps "$1" | wc -l) > $2)); }

# Copies the kept dumps to $BENCH_OUT/PREFIX-callgrind-<time>/.
save_callgrind_dumps() {
  local dir
  dir="$BENCH_OUT/$1-callgrind-$(date -u +%Y%m%dT%H%M%SZ)"
  if mkdir -p "$dir" && cp "$WORK"/callgrind-*.out "$dir/"; then
    log "callgrind dumps in $dir (e.g. callgrind_annotate --inclusive=yes <file>)"
  else
    warn "could not copy the callgrind dumps to $dir"
  fi
}

# Keeps a copy of $WORK/report.md under $BENCH_OUT (git-ignored) as
# PREFIX-<time>[-smoke].md, to compare runs over time.
save_report() {
  local name
  name="$1-$(date -u +%Y%m%dT%H%M%SZ)"
  if ((SMOKE)); then name="$name-smoke"; fi
  if mkdir -p "$BENCH_OUT" && cp "$WORK/report.md" "$BENCH_OUT/$name.md"; then
    log "report saved to $BENCH_OUT/$name.md"
  else
    warn "could not write the report to $BENCH_OUT"
  fi
}
