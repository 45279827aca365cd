#!/usr/bin/env bash
# bench/reload.sh: traffic through config pushes, without a failed request.
#
# One origin (nginx answering `return 200 "ok"` on two ports, two
# equivalent targets), a control plane on a fresh Postgres database and one
# data plane with one route (/) to an upstream on the first port. wrk loads
# the data plane for the whole run while the admin API pushes PUSHES config
# changes, spread over the run, one kind after another:
#   tags      PATCH the route's upstream's tags
#   add       POST an unrelated route (/extra/N, same upstream)
#   targets   PATCH the route's upstream's targets to the other origin port
#   remove    DELETE that unrelated route
# After each push the script waits until the data plane's /status shows the
# version the write produced, so every push is a separate reload (none is
# coalesced away); then it checks the data plane reached the final version
# and counted one applied config per push (snapshots_applied +
# deltas_applied). A wrk Lua script counts every response that is not 2xx.
# The run fails unless there are zero non-2xx responses and zero socket
# errors (connect, read, write, timeout), all pushes finished while the load
# was still running, and every version was applied.
#
# In a full run a baseline of the same length without pushes comes first,
# for the latency and throughput the pushes cost.
#
# Usage:
#   bench/reload.sh           full run (50 pushes in 30 s, plus a 30 s baseline)
#   bench/reload.sh --smoke   10 pushes over 3.2 s of a 4 s load, debug build,
#                             for CI
#                             (also BENCH_SMOKE=1)
#
# Settings (environment):
#   PUSHES=50 DURATION=30s CONNECTIONS=50 THREADS=2   (wrk)
#   BASELINE=1     0 skips the baseline run
#   WORKER_THREADS  the data plane's --worker-threads (default: one per core)
#   TURNPIKE_BIN   turnpike binary to use; otherwise built with cargo
#   TURNPIKE_COMMIT  the commit that binary was built from, for the report
#                  (default: this tree's HEAD, marked if it has changes)
#   BENCH_PG=postgres://postgres@127.0.0.1:5432   Postgres server (trust auth)
#   BENCH_OUT=bench/out   where the markdown report is also written
#   BENCH_KEEP_TMP=1      keep the temp dir (configs, logs, wrk output)
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Shared helpers: process start/stop and cleanup, Postgres, the control and
# data planes, nginx configs.
# shellcheck source=bench/lib.sh
source "$REPO_ROOT/bench/lib.sh"
ORIGINAL_ARGS=("$@")

# ---------------------------------------------------------------- settings

SMOKE=${BENCH_SMOKE:-0}
for arg in "$@"; do
  case "$arg" in
    --smoke) SMOKE=1 ;;
    -h | --help)
      usage "${BASH_SOURCE[0]}"
      exit 0
      ;;
    *)
      echo "reload.sh: unknown argument '$arg' (try --help)" >&2
      exit 2
      ;;
  esac
done
case "$SMOKE" in 0 | "") SMOKE=0 ;; *) SMOKE=1 ;; esac

if ((SMOKE)); then
  # Small and fixed on purpose: CI only checks that the pipeline still works.
  # 4 s: the last push starts 0.7 s before the load ends, room for its
  # write and apply on a busy 2-core machine (3 s failed there at times).
  PUSHES=10 DURATION=4s CONNECTIONS=4 THREADS=1 BASELINE=0
else
  PUSHES=${PUSHES:-50}
  DURATION=${DURATION:-30s}
  CONNECTIONS=${CONNECTIONS:-50}
  THREADS=${THREADS:-2}
  BASELINE=${BASELINE:-1}
fi
WORKER_THREADS=${WORKER_THREADS:-}
BENCH_PG=${BENCH_PG:-postgres://postgres@127.0.0.1:5432}
BENCH_OUT=${BENCH_OUT:-$REPO_ROOT/bench/out}
BENCH_KEEP_TMP=${BENCH_KEEP_TMP:-0}

# ---------------------------------------------------------------- stages

# The origin: nginx, one worker, answering 200 "ok" on two ports (the two
# equivalent targets the pushes switch between).
start_origin() {
  write_nginx_conf origin <<EOF
  server {
    listen 127.0.0.1:$ORIGIN_PORT;
    listen 127.0.0.1:$ORIGIN2_PORT;
    location / {
      return 200 "ok";
    }
  }
EOF
  start_nginx origin "$ORIGIN_PORT"
  wait_until "the origin on port $ORIGIN2_PORT" 15 port_open "$ORIGIN2_PORT"
}

start_reload_data_plane() {
  local threads=()
  [[ -n "$WORKER_THREADS" ]] && threads=(--worker-threads "$WORKER_THREADS")
  start_data_plane data-plane "$PROXY_PORT" "$STATUS_PORT" "${threads[@]}"
}

# The admin calls (initial config and the pushes) and waiting for versions
# on the data plane, in one Python process: precise timings, no fork per
# poll. Subcommands:
#   setup              upstream "origin" (first port) and route "all" (/)
#   push N SPAN_S AT   N pushes spread evenly over SPAN_S seconds from AT
#                      (wall-clock epoch seconds; the Python start-up falls
#                      before it, not into the schedule)
# Each prints one JSON object on stdout; any failed call exits 1.
admin_tool() {
  python3 - "$@" <<'EOF'
import json, os, statistics, sys, time, urllib.error, urllib.request

ADMIN = f"http://127.0.0.1:{os.environ['ADMIN_PORT']}/api/v1"
STATUS = f"http://127.0.0.1:{os.environ['STATUS_PORT']}/status"
TOKEN = os.environ["ADMIN_TOKEN"]
TARGETS = [f"127.0.0.1:{os.environ['ORIGIN_PORT']}", f"127.0.0.1:{os.environ['ORIGIN2_PORT']}"]

def fail(msg):
    print(f"reload.sh: error: {msg}", file=sys.stderr)
    sys.exit(1)

def admin(method, path, body=None, want=(200, 201, 204)):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(ADMIN + path, data=data, method=method, headers={
        "Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            code, headers, text = resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        code, headers, text = e.code, e.headers, e.read()
    except OSError as e:
        fail(f"{method} {path}: {e}")
    if code not in want:
        fail(f"{method} {path} answered {code}: {text[:500]!r}")
    version = headers.get("X-Turnpike-Config-Version")
    if not (version or "").isdigit():
        fail(f"{method} {path}: no X-Turnpike-Config-Version header")
    return int(version)

def status():
    try:
        with urllib.request.urlopen(STATUS, timeout=2) as resp:
            return json.load(resp)
    except (OSError, ValueError):
        return None

def wait_version(version, timeout):
    deadline = time.monotonic() + timeout
    while True:
        s = status()
        if s and s.get("config_version", 0) >= version:
            return s
        if time.monotonic() > deadline:
            fail(f"the data plane did not reach config version {version} within {timeout} s "
                 f"(it shows {s and s.get('config_version')})")
        time.sleep(0.002)

def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(p * len(values)))]

cmd = sys.argv[1]
if cmd == "setup":
    admin("POST", "/upstreams", {"name": "origin", "targets": [{"address": TARGETS[0]}]})
    v = admin("POST", "/routes", {"name": "all", "paths": ["/"], "upstream": "origin"})
    s = wait_version(v, 30)
    print(json.dumps({"version": v, "applied": s["snapshots_applied"] + s["deltas_applied"]}))
elif cmd == "push":
    n, span = int(sys.argv[2]), float(sys.argv[3])
    start = time.monotonic() + max(0.0, float(sys.argv[4]) - time.time())
    kinds = ["tags", "add", "targets", "remove"]
    write_ms, apply_ms, counts = [], [], {k: 0 for k in kinds}
    target = 0
    extra = None
    before = status()
    for i in range(n):
        # Evenly spaced starts; a push that runs late is followed at once.
        delay = start + i * span / n - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        kind = kinds[i % 4]
        if kind == "remove" and extra is None:
            kind = "tags"
        t0 = time.monotonic()
        if kind == "tags":
            v = admin("PATCH", "/upstreams/origin", {"tags": [f"push-{i}"]})
        elif kind == "add":
            extra = f"extra-{i}"
            v = admin("POST", "/routes",
                      {"name": extra, "paths": [f"/extra/{i}"], "upstream": "origin"})
        elif kind == "targets":
            target = 1 - target
            v = admin("PATCH", "/upstreams/origin", {"targets": [{"address": TARGETS[target]}]})
        else:
            v = admin("DELETE", f"/routes/{extra}")
            extra = None
        t1 = time.monotonic()
        wait_version(v, 30)
        t2 = time.monotonic()
        counts[kind] += 1
        write_ms.append((t1 - t0) * 1000)
        apply_ms.append((t2 - t1) * 1000)
    after = status()
    print(json.dumps({
        "pushes": n, "final_version": v, "kinds": counts,
        "elapsed_s": round(time.monotonic() - start, 3),
        "write_ms": {"p50": round(pct(write_ms, 0.5), 1), "max": round(max(write_ms), 1)},
        "apply_ms": {"p50": round(pct(apply_ms, 0.5), 1), "p99": round(pct(apply_ms, 0.99), 1),
                     "max": round(max(apply_ms), 1)},
        "applied": (after["snapshots_applied"] + after["deltas_applied"])
                   - (before["snapshots_applied"] + before["deltas_applied"]),
        "deltas_applied": after["deltas_applied"] - before["deltas_applied"],
        "status_version": after["config_version"],
    }))
else:
    fail(f"unknown subcommand {cmd}")
EOF
}

# A wrk script that counts every response that is not 2xx (wrk's own
# "Non-2xx or 3xx" line counts only 4xx and 5xx) and prints, at the end,
# one line: "reload-check requests non2xx connect read write timeout codes".
write_wrk_script() {
  cat >"$WORK/count.lua" <<'EOF'
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  non2xx = 0
  counts = {}
  codes = ""
end

-- codes: "502x3,503x1" for this thread, rebuilt only on a non-2xx answer.
function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    counts[status] = (counts[status] or 0) + 1
    local parts = {}
    for code, n in pairs(counts) do
      table.insert(parts, code .. "x" .. n)
    end
    codes = table.concat(parts, ",") .. ";"
  end
end

function done(summary, latency, requests)
  local total, seen = 0, ""
  for _, t in ipairs(threads) do
    total = total + t:get("non2xx")
    seen = seen .. t:get("codes")
  end
  local e = summary.errors
  io.write(string.format("reload-check %d %d %d %d %d %d %s\n", summary.requests, total,
    e.connect, e.read, e.write, e.timeout, seen == "" and "-" or seen))
end
EOF
}

# run_wrk NAME DURATION_S: wrk in the background; sets WRK_PID.
start_wrk() {
  wrk --latency -t "$THREADS" -c "$CONNECTIONS" -d "${2}s" -s "$WORK/count.lua" \
    "http://127.0.0.1:$PROXY_PORT/" >"$WORK/wrk-$1.txt" 2>&1 &
  WRK_PID=$!
}

finish_wrk() {
  local rc=0
  wait "$WRK_PID" || rc=$?
  WRK_PID=""
  ((rc == 0)) || die "wrk failed (exit $rc): $(cat "$WORK/wrk-$1.txt")"
}

# Prints "rps p50_us p99_us max_us requests non2xx connect read write timeout codes".
parse_wrk_counted() {
  awk '
    function us(v) {
      if (v ~ /us$/) return v + 0
      if (v ~ /ms$/) return v * 1000
      if (v ~ /m$/)  return v * 60000000
      if (v ~ /s$/)  return v * 1000000
      return v * 1000
    }
    $1 == "Latency" && NF >= 4 && !max { max = us($4) }
    /Latency Distribution/   { dist = 1 }
    dist && $1 == "50%"      { p50 = us($2) }
    dist && $1 == "99%"      { p99 = us($2); dist = 0 }
    /^Requests\/sec:/        { rps = $2 }
    $1 == "reload-check"     { check = $2 " " $3 " " $4 " " $5 " " $6 " " $7 " " $8 }
    END {
      if (rps == "" || p99 == "" || check == "") exit 1
      printf "%s %.1f %.1f %.1f %s\n", rps, p50, p99, max, check
    }' "$1"
}

machine_summary() {
  local cmd="bench/reload.sh${ORIGINAL_ARGS[*]:+ ${ORIGINAL_ARGS[*]}}"
  ((SMOKE)) || cmd="PUSHES=$PUSHES DURATION=$DURATION CONNECTIONS=$CONNECTIONS THREADS=$THREADS BASELINE=$BASELINE $cmd"
  cat <<EOF
# Reload under load$( ((SMOKE)) && echo " (smoke mode: not a measurement)")

- command: \`$cmd\`
- wrk: \`wrk --latency -t $THREADS -c $CONNECTIONS -d $DURATION -s count.lua <data plane>/\` (the Lua script counts non-2xx answers)
- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')
- machine: $(machine_note); load average at start ${LOADAVG_START}, at end $(cut -d' ' -f1-3 /proc/loadavg); nothing pinned
- turnpike: commit $(commit_note), \`$TURNPIKE\` ($PROFILE_NOTE), data plane with ${WORKER_THREADS:-the default (one per core)} worker thread(s)
- origin: nginx $(nginx -v 2>&1 | sed 's/^nginx version: nginx\///'), 1 worker, \`return 200 "ok"\` on two ports; wrk $(wrk -v 2>&1 | head -n 1 | awk '{ print $2 }')

EOF
}

# ---------------------------------------------------------------- main

main() {
  install_traps

  [[ "$PUSHES" =~ ^[1-9][0-9]*$ ]] || die "PUSHES must be a positive number"
  local duration
  duration=$(seconds_of "$DURATION")

  ensure_command python3 python3
  ensure_command curl curl
  ensure_command psql postgresql-client
  ensure_command pgrep procps
  ensure_command nginx nginx-light nginx
  ensure_command wrk wrk
  resolve_turnpike
  LOADAVG_START=$(cut -d' ' -f1-3 /proc/loadavg)

  ADMIN_TOKEN="bench-admin-$(random_hex 16)"
  CLUSTER_TOKEN="bench-cluster-$(random_hex 16)"
  DB_NAME="turnpike_bench_$(random_hex 4)"
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/turnpike-reload.XXXXXX")
  read -r ORIGIN_PORT ORIGIN2_PORT ADMIN_PORT CLUSTER_PORT PROXY_PORT STATUS_PORT <<<"$(free_ports 6)"
  export ORIGIN_PORT ORIGIN2_PORT ADMIN_PORT STATUS_PORT ADMIN_TOKEN

  require_postgres

  log "origin (nginx) on :$ORIGIN_PORT and :$ORIGIN2_PORT"
  start_origin
  log "control plane on :$ADMIN_PORT (admin) and :$CLUSTER_PORT (cluster), database $DB_NAME"
  start_control_plane
  log "data plane on :$PROXY_PORT (proxy) and :$STATUS_PORT (status)"
  start_reload_data_plane
  log "configuring turnpike through the admin API"
  admin_tool setup >"$WORK/setup.json" || die "the initial configuration failed"
  local body parsed
  body=$(curl -sS --fail --max-time 5 "http://127.0.0.1:$PROXY_PORT/") || die "the route does not answer"
  [[ "$body" == ok ]] || die "unexpected answer through the data plane: $body"
  write_wrk_script

  : >"$WORK/results.txt"
  if [[ "$BASELINE" == 1 ]]; then
    log "baseline: wrk for ${duration}s, no pushes"
    start_wrk baseline "$duration"
    finish_wrk baseline
    parsed=$(parse_wrk_counted "$WORK/wrk-baseline.txt") ||
      die "could not parse wrk's output: $(cat "$WORK/wrk-baseline.txt")"
    echo "baseline $parsed" >>"$WORK/results.txt"
    check_alive
  fi

  # The pushes start after a tenth of the run and end by nine tenths, so
  # traffic flows before the first and after the last.
  local lead span
  lead=$(python3 -c "print(round($duration * 0.1, 3))")
  span=$(python3 -c "print(round($duration * 0.8, 3))")
  log "under load: wrk for ${duration}s, $PUSHES pushes over ${span}s"
  start_wrk pushes "$duration"
  local push_at
  push_at=$(python3 -c "print(${EPOCHREALTIME} + $lead)")
  admin_tool push "$PUSHES" "$span" "$push_at" >"$WORK/push.json" || {
    kill "$WRK_PID" 2>/dev/null
    die "a config push failed"
  }
  kill -0 "$WRK_PID" 2>/dev/null ||
    die "the pushes took longer than the load ($(cat "$WORK/push.json")); raise DURATION"
  finish_wrk pushes
  parsed=$(parse_wrk_counted "$WORK/wrk-pushes.txt") ||
    die "could not parse wrk's output: $(cat "$WORK/wrk-pushes.txt")"
  echo "pushes $parsed" >>"$WORK/results.txt"
  sed 's/^/    /' "$WORK/wrk-pushes.txt" >&2
  check_alive

  local rc=0
  {
    machine_summary
    python3 - "$WORK/results.txt" "$WORK/push.json" "$PUSHES" <<'EOF' || rc=$?
import json, sys
push = json.load(open(sys.argv[2]))
pushes = int(sys.argv[3])
rows = {}
for line in open(sys.argv[1]):
    f = line.split()
    rows[f[0]] = dict(rps=float(f[1]), p50=float(f[2]), p99=float(f[3]), max=float(f[4]),
                      requests=int(f[5]), non2xx=int(f[6]), connect=int(f[7]), read=int(f[8]),
                      write=int(f[9]), timeout=int(f[10]), codes=f[11])

def lat(us):
    return f"{us:.0f} µs" if us < 1000 else f"{us / 1000:.2f} ms"

print("| run | requests | requests/s | p50 | p99 | max | non-2xx | socket errors (connect/read/write/timeout) |")
print("|---|---:|---:|---:|---:|---:|---:|---|")
for name, label in (("baseline", "baseline (no pushes)"), ("pushes", f"{pushes} pushes")):
    if name in rows:
        r = rows[name]
        print(f"| {label} | {r['requests']:,} | {r['rps']:,.0f} | {lat(r['p50'])} | {lat(r['p99'])} "
              f"| {lat(r['max'])} | {r['non2xx']} | {r['connect']}/{r['read']}/{r['write']}/{r['timeout']} |")
k = push["kinds"]
print(f"\nPushes: {push['pushes']} in {push['elapsed_s']} s ({k['tags']} tag changes, {k['add']} routes "
      f"added, {k['remove']} removed, {k['targets']} target-list switches); final version "
      f"{push['final_version']}, data plane at {push['status_version']}; configs applied by the "
      f"data plane: {push['applied']} ({push['deltas_applied']} as deltas). Admin write: p50 "
      f"{push['write_ms']['p50']} ms, max {push['write_ms']['max']} ms; write answered → version "
      f"on the data plane's /status (polled every 2 ms): p50 {push['apply_ms']['p50']} ms, "
      f"p99 {push['apply_ms']['p99']} ms, max {push['apply_ms']['max']} ms.")

failures = []
r = rows["pushes"]
if r["requests"] == 0:
    failures.append("no request completed under load")
if r["non2xx"]:
    failures.append(f"{r['non2xx']} non-2xx responses under pushes (status x count, per wrk thread: {r['codes']})")
errors = r["connect"] + r["read"] + r["write"] + r["timeout"]
if errors:
    failures.append(f"{errors} socket errors under pushes")
if push["status_version"] < push["final_version"]:
    failures.append("the data plane did not reach the final version")
if push["applied"] < pushes:
    failures.append(f"the data plane applied {push['applied']} configs for {pushes} pushes")
b = rows.get("baseline")
if b and (b["non2xx"] or b["connect"] + b["read"] + b["write"] + b["timeout"]):
    failures.append("the baseline run had failed requests")
if failures:
    print("\nFAILED:\n" + "\n".join(f"- {f}" for f in failures))
    sys.exit(1)
print("\nZero non-2xx responses and zero socket errors through all pushes: pass.")
EOF
  } >"$WORK/report.md"
  echo
  cat "$WORK/report.md"
  save_report reload
  ((rc == 0)) || die "reload checks failed (see FAILED above)"
}

main "$@"
