#!/usr/bin/env bash
# bench/observability.sh: what the access log and metrics cost (issue 8).
#
# One origin (nginx answering `return 200 "ok"`), a control plane on a fresh
# Postgres database and two data planes of it (--worker-threads 1 each),
# both with one route (/) to the origin, differing only in observability:
#   off  no --access-log, and --no-metrics (when this binary has the flag:
#        it is being added; without it, "off" keeps the per-route counters
#        that are always on, and the report says so)
#   on   --access-log <file> (a file in the temp dir, one JSON line per
#        request), metrics on, and /metrics scraped once a second during
#        each of its runs (by a Python scraper on the load tool's CPU)
# wrk loads one, then the other, with the same settings, interleaved: each
# round starts with the other one (off on, on off, off on, ...), so drift
# that is linear in time cancels. With taskset and two CPUs both data
# planes run on one CPU (the idle one costs nothing there) and wrk, the
# origin and the scraper on the other, as in proxy.sh; each data plane's
# CPU time over its runs (all its threads: the access-log writer included)
# gives requests per proxy-CPU-second.
#
# Checked before any load: both answer 200 "ok"; "on" writes an access-log
# line for a request and its /metrics counts the route's answers. Checked
# per "on" run: every scrape answered 200 and the route's 2xx counter grew
# between the first and the last scrape; the access log's lines over the
# run are counted against wrk's requests (the writer drops lines when it
# falls behind: a log that keeps only some lines would cost less than a
# real one, so the ratio is reported and a run that logged nothing fails).
#
# Target (issue 8): "on" within 10% of "off": on/off ≥ 0.90 in requests/s,
# at every concurrency level (per proxy-CPU-second shown beside it).
#
# Usage:
#   bench/observability.sh          full run (c 1/50/200, 5 rounds of 10 s: ~6 min)
#   bench/observability.sh --smoke  seconds-long run for CI, debug build
#                                   (also BENCH_SMOKE=1)
#   bench/observability.sh --callgrind   instructions instead of a load
#                                   test: both data planes under valgrind
#                                   (callgrind); CALLGRIND_REQUESTS sequential
#                                   keep-alive requests each (after 200 of
#                                   warm-up), and 20 scrapes of "on"'s
#                                   /metrics, each batch between a zeroing and
#                                   a dump of the counters. Independent of
#                                   other load on the machine. About a minute.
#
# Settings (environment):
#   DURATION=10s  CONCURRENCY="1 50 200"  WARMUP=3s  ROUNDS=5
#   SCRAPE_EVERY=1   seconds between scrapes of "on"'s /metrics
#   CALLGRIND_REQUESTS=2000   requests per data plane with --callgrind
#   THREADS       wrk threads (default 1 when pinned, else 2)
#   PIN=auto      1 to require pinning, 0 to turn it off
#   FAIL_ON_TARGETS=1  a missed target fails the run (default: reported)
#   TURNPIKE_BIN  turnpike binary to use; otherwise built with cargo
#   TURNPIKE_COMMIT  the commit that binary was built from, for the report
#   BENCH_PG=postgres://postgres@127.0.0.1:5432   Postgres server (trust auth)
#   BENCH_OUT=bench/out   where the markdown report is also written
#   BENCH_KEEP_TMP=1      keep the temp dir (configs, logs, wrk output)
#
# Exits non-zero when any stage fails: a process that does not come up, a
# config that does not reach the data planes, a failed check above, zero
# requests in a run, or any non-2xx answer or socket error during a run.
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
      echo "observability.sh: unknown argument '$arg' (try --help)" >&2
      exit 2
      ;;
  esac
done
case "$SMOKE" in 0 | "") SMOKE=0 ;; *) SMOKE=1 ;; esac

if ((SMOKE)); then
  # Small and fixed on purpose: CI only checks that the pipeline still
  # works; 2 s runs so that "on" is scraped twice.
  DURATION=2s CONCURRENCY=4 THREADS=1 WARMUP=0 ROUNDS=1
else
  DURATION=${DURATION:-10s}
  CONCURRENCY=${CONCURRENCY:-1 50 200}
  WARMUP=${WARMUP:-3s}
  ROUNDS=${ROUNDS:-5}
fi
SCRAPE_EVERY=${SCRAPE_EVERY:-1}
CALLGRIND_REQUESTS=${CALLGRIND_REQUESTS:-2000}
((SMOKE)) && CALLGRIND_REQUESTS=100
PIN=${PIN:-auto}
FAIL_ON_TARGETS=${FAIL_ON_TARGETS:-0}
BENCH_PG=${BENCH_PG:-postgres://postgres@127.0.0.1:5432}
BENCH_OUT=${BENCH_OUT:-$REPO_ROOT/bench/out}
BENCH_KEEP_TMP=${BENCH_KEEP_TMP:-0}

TARGETS=(off on)

# ---------------------------------------------------------------- stages

start_origin() {
  write_nginx_conf origin <<EOF
  server {
    listen 127.0.0.1:$ORIGIN_PORT;
    location / {
      return 200 "ok";
    }
  }
EOF
  start_nginx origin "$ORIGIN_PORT" "${PIN_LOAD[@]}"
}

# The two data planes; NO_METRICS tells whether "off" got --no-metrics.
start_data_planes() {
  local off_args=(--worker-threads 1)
  if data_plane_has_flag --no-metrics; then
    NO_METRICS=1
    off_args+=(--no-metrics)
  else
    NO_METRICS=0
    warn "this turnpike has no 'data-plane --no-metrics' (yet): \"off\" runs without the access log, metrics still on (not scraped)"
  fi
  ACCESS_LOG=$WORK/access.log
  local on_args=(--worker-threads 1 --access-log "$ACCESS_LOG") how=start_data_plane
  ((CALLGRIND)) && how=start_callgrind_data_plane
  log "data plane \"off\" on :$OFF_PORT (proxy) and :$OFF_STATUS_PORT (status): ${off_args[*]}"
  "$how" dp-off "$OFF_PORT" "$OFF_STATUS_PORT" "${off_args[@]}"
  log "data plane \"on\" on :$ON_PORT (proxy) and :$ON_STATUS_PORT (status): ${on_args[*]}"
  "$how" dp-on "$ON_PORT" "$ON_STATUS_PORT" "${on_args[@]}"
}

configure_turnpike() {
  local version
  admin_post /api/v1/upstreams \
    "{\"name\":\"origin\",\"targets\":[{\"address\":\"127.0.0.1:$ORIGIN_PORT\"}]}" >/dev/null
  version=$(admin_post /api/v1/routes '{"name":"all","paths":["/"],"upstream":"origin"}')
  wait_until "config version $version on data plane off" 30 data_plane_has_version "$version" "$OFF_STATUS_PORT"
  wait_until "config version $version on data plane on" 30 data_plane_has_version "$version" "$ON_STATUS_PORT"
  TURNPIKE_CONFIG_VERSION=$version
}

target_port() { case "$1" in off) echo "$OFF_PORT" ;; on) echo "$ON_PORT" ;; esac; }

# Lines in the access log, once the writer thread has caught up (the count
# is the same twice, 0.2 s apart; at most 5 s).
access_log_lines() {
  local n m deadline=$((SECONDS + 5))
  n=$(wc -l <"$ACCESS_LOG")
  while ((SECONDS < deadline)); do
    sleep 0.2
    m=$(wc -l <"$ACCESS_LOG")
    ((m == n)) && break
    n=$m
  done
  echo "$n"
}

# The scraper: GETs URL every EVERY seconds for DURATION seconds (the first
# at EVERY/2), and prints one line: "scrapes failed avg_bytes avg_ms
# first_2xx last_2xx" (the route's 2xx counter in the first and last good
# scrape; - when absent). Run with PIN_LOAD in the background.
write_scraper() {
  cat >"$WORK/scrape.py" <<'EOF'
import re, sys, time, urllib.request
url, every, duration = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
series = re.compile(r'^turnpike_requests_total\{[^}]*route="all"[^}]*status="2xx"[^}]*\} (\d+)', re.M)
start = time.monotonic()
n = failed = size = 0
ms, counts = [], []
t = every / 2
while t < duration:
    delay = start + t - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    n += 1
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            body = resp.read().decode()
            if resp.status != 200:
                raise OSError(resp.status)
    except Exception:
        failed += 1
    else:
        ms.append((time.monotonic() - t0) * 1000)
        size += len(body)
        m = series.search(body)
        counts.append(m.group(1) if m else "-")
    t += every
ok = n - failed
print(n, failed, size // ok if ok else 0, f"{sum(ms) / len(ms):.2f}" if ms else "-",
      counts[0] if counts else "-", counts[-1] if counts else "-")
EOF
}

access_log_has_more_than() {
  local n
  n=$(wc -l <"$ACCESS_LOG" 2>/dev/null) || return 1
  ((n > $1))
}

# One GET of a data plane's /metrics: "code route_2xx" (route_2xx "-" when
# the route's series is absent).
metrics_probe() {
  local code
  code=$(curl -s -o "$WORK/metrics-probe" -w '%{http_code}' --max-time 10 "http://127.0.0.1:$1/metrics") || code=000
  local count
  count=$(sed -n 's/^turnpike_requests_total{[^}]*route="all"[^}]*status="2xx"[^}]*} \([0-9]*\)$/\1/p' \
    "$WORK/metrics-probe" 2>/dev/null | head -n 1)
  echo "$code ${count:--}"
}

# Both answer; "on" logs the request and counts it in /metrics. Notes what
# "off"'s /metrics shows (OFF_METRICS_NOTE) for the report.
check_targets() {
  local t body before after code count
  before=$(wc -l <"$ACCESS_LOG" 2>/dev/null || echo 0)
  for t in "${TARGETS[@]}"; do
    body=$(curl -sS --fail --max-time 5 "http://127.0.0.1:$(target_port "$t")/") ||
      die "data plane $t does not answer through its route"
    [[ "$body" == ok ]] || die "data plane $t answered '$body', not 'ok'"
  done
  wait_until "an access-log line for the check request" 5 access_log_has_more_than "$before"
  after=$(tail -n 1 "$ACCESS_LOG")
  python3 -c 'import json, sys; e = json.loads(sys.argv[1]); sys.exit(0 if e.get("status") == 200 and e.get("route") == "all" else 1)' \
    "$after" || die "the access log's line is not the request's: $after"
  read -r code count <<<"$(metrics_probe "$ON_STATUS_PORT")"
  [[ "$code" == 200 && "$count" =~ ^[0-9]+$ && "$count" -ge 1 ]] ||
    die "data plane on: /metrics answered $code without the route's 2xx count ($count)"
  # With --no-metrics the check request above must not have been counted.
  read -r code count <<<"$(metrics_probe "$OFF_STATUS_PORT")"
  OFF_METRICS_NOTE="after one request \"off\"'s /metrics answered $code"
  if [[ "$count" == - ]]; then
    OFF_METRICS_NOTE+=" without the route's series"
  else
    OFF_METRICS_NOTE+=" with the route's 2xx count at $count"
  fi
  if ((NO_METRICS)) && [[ "$count" =~ ^[1-9] ]]; then
    die "data plane off runs with --no-metrics but counted the request in /metrics (2xx: $count)"
  fi
  : >"$ACCESS_LOG"
}

# Warm-up, then ROUNDS rounds of off and on, per concurrency level, each
# round starting with the other one. Each line of results.txt: concurrency,
# variant, round, measure_run's fields, then for "on" the scraper's line
# and the access log's lines over the run (- for "off"), then the data
# plane's write system calls and context switches over the run.
run_benchmarks() {
  local conc t round duration warmup pid scraper extra lines
  duration=$(seconds_of "$DURATION")
  case "$WARMUP" in "" | 0 | 0s) warmup=0 ;; *) warmup=$(seconds_of "$WARMUP") ;; esac
  : >"$WORK/results.txt"
  for conc in $CONCURRENCY; do
    if [[ "$warmup" != 0 ]]; then
      for t in "${TARGETS[@]}"; do
        log "c$conc warm-up: $t (${warmup}s)"
        run_load http "$WORK/warmup-$conc-$t.txt" "$warmup" "http://127.0.0.1:$(target_port "$t")/" "$conc"
      done
    fi
    for ((round = 1; round <= ROUNDS; round++)); do
      rotation "$round" "${TARGETS[@]}"
      for t in "${ORDER[@]}"; do
        log "c$conc round $round/$ROUNDS: $t"
        pid=$(pid_of "dp-$t")
        : >"$ACCESS_LOG" # warm-ups and checks are not counted
        scraper=""
        if [[ "$t" == on ]]; then
          "${PIN_LOAD[@]}" python3 "$WORK/scrape.py" "http://127.0.0.1:$ON_STATUS_PORT/metrics" \
            "$SCRAPE_EVERY" "$duration" >"$WORK/scrape-$conc-$round.txt" 2>&1 &
          scraper=$!
          HELPER_PIDS+=("$scraper")
        fi
        measure_run http "$WORK/run-$conc-$t-$round.txt" "$duration" \
          "http://127.0.0.1:$(target_port "$t")/" "$conc" "$pid"
        extra="- - - - - - -"
        if [[ -n "$scraper" ]]; then
          wait "$scraper" || die "the scraper failed: $(cat "$WORK/scrape-$conc-$round.txt")"
          HELPER_PIDS=()
          lines=$(access_log_lines)
          extra="$(cat "$WORK/scrape-$conc-$round.txt") $lines"
          : >"$ACCESS_LOG"
        fi
        echo "$conc $t $round $MEASURED $extra $MEASURED_SYS" >>"$WORK/results.txt"
        check_alive
      done
    done
  done
}

# ---------------------------------------------------------------- --callgrind

# Per data plane: 200 requests of warm-up, then CALLGRIND_REQUESTS counted;
# then 20 scrapes of "on"'s /metrics. Each line of results.txt: what,
# requests, instructions (Ir), access-log lines over the batch (- for off).
run_callgrind() {
  local t lines
  : >"$WORK/results.txt"
  for t in "${TARGETS[@]}"; do
    log "callgrind: $t, 200 requests of warm-up, then $CALLGRIND_REQUESTS counted"
    send_requests "http://127.0.0.1:$(target_port "$t")/" 200 ok
    : >"$ACCESS_LOG"
    callgrind_batch "dp-$t" requests "http://127.0.0.1:$(target_port "$t")/" "$CALLGRIND_REQUESTS" ok
    lines=-
    [[ "$t" == on ]] && lines=$(access_log_lines)
    echo "$t $CALLGRIND_REQUESTS $CG_IR $lines" >>"$WORK/results.txt"
  done
  log "callgrind: 20 scrapes of on's /metrics"
  callgrind_batch dp-on scrapes "http://127.0.0.1:$ON_STATUS_PORT/metrics" 20 -
  echo "scrape 20 $CG_IR -" >>"$WORK/results.txt"
}

callgrind_report() {
  local off="no --access-log, --no-metrics"
  ((NO_METRICS)) || off="no --access-log; **this binary has no --no-metrics**, so route metrics stay on"
  cat <<EOF
# Observability overhead under callgrind: instructions per request$( ((SMOKE)) && echo " (smoke mode)")

- command: \`bench/observability.sh${ORIGINAL_ARGS[*]:+ ${ORIGINAL_ARGS[*]}}\` (CALLGRIND_REQUESTS=$CALLGRIND_REQUESTS)
- what: each data plane (1 worker thread) under \`valgrind --tool=callgrind\` ($(valgrind --version)); 200 requests of warm-up, then the counters zeroed (\`callgrind_control -z\`), $CALLGRIND_REQUESTS sequential requests on one keep-alive connection, then a dump (\`callgrind_control -d\`); then 20 scrapes of "on"'s /metrics the same way. Instructions (Ir) of every thread of the process (the access-log writer included). Counts, not time: independent of the machine's load, blind to cache misses, system calls and the disk; valgrind runs one thread at a time, so the writer thread's spinning and waking cost less here than on a real CPU
- off: $off; on: \`--access-log <file>\`, metrics on
- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); machine: $(machine_note)
- turnpike: commit $(commit_note), \`$TURNPIKE\` ($PROFILE_NOTE), config version $TURNPIKE_CONFIG_VERSION

EOF
  python3 - "$WORK/results.txt" <<'EOF'
import sys
rows = {f[0]: f[1:] for f in (line.split() for line in open(sys.argv[1]))}
per = {t: int(rows[t][1]) / int(rows[t][0]) for t in rows}
print("| data plane | requests | instructions per request | vs off | added over off | access-log lines |")
print("|---|---:|---:|---:|---:|---:|")
for t in ("off", "on"):
    n, ir, lines = rows[t]
    print(f"| {t} | {int(n):,} | {per[t]:,.0f} | {per[t] / per['off']:.2f}x | {per[t] - per['off']:+,.0f} | {lines} |")
scrape = per["scrape"]
print(f"\nOne scrape of /metrics: {scrape:,.0f} instructions; at one scrape a second that is "
      f"{scrape / 10000:,.1f} instructions per request at 10,000 requests/s.\n")
EOF
}

machine_summary() {
  local cmd="bench/observability.sh${ORIGINAL_ARGS[*]:+ ${ORIGINAL_ARGS[*]}}"
  ((SMOKE)) || cmd="DURATION=$DURATION CONCURRENCY=\"$CONCURRENCY\" THREADS=$THREADS WARMUP=$WARMUP ROUNDS=$ROUNDS $cmd"
  local off="no --access-log, --no-metrics"
  ((NO_METRICS)) || off="no --access-log; **this binary has no --no-metrics**, so metrics stay on (not scraped): \"off\" vs \"on\" measures the access log and the scrapes only"
  cat <<EOF
# Observability overhead: access log + metrics on vs off$( ((SMOKE)) && echo " (smoke mode: not a measurement)")

- command: \`$cmd\`
- load: wrk $(wrk -v 2>&1 | head -n 1 | awk '{ print $2 }'), HTTP/1.1, concurrency $CONCURRENCY; $DURATION per run, warm-up $WARMUP per data plane and level, $ROUNDS interleaved round(s) (off on, on off, ...), medians of the rounds shown; $THREADS wrk thread(s)
- off: $off (check before the runs: $OFF_METRICS_NOTE)
- on: \`--access-log <file>\` (in $(df -P "$WORK" | awk 'NR == 2 { print $1 }'), truncated between runs), metrics on, /metrics scraped every ${SCRAPE_EVERY}s during each run
- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')
- machine: $(machine_note); load average at start ${LOADAVG_START}, at end $(cut -d' ' -f1-3 /proc/loadavg)
- pinning: $PIN_NOTE (both data planes on that CPU; the scraper with the load tool); affinity as run: $AFFINITY
- turnpike: commit $(commit_note), \`$TURNPIKE\` ($PROFILE_NOTE), each data plane with 1 worker thread, config version $TURNPIKE_CONFIG_VERSION
- origin: nginx $(nginx -v 2>&1 | sed 's/^nginx version: nginx\///'), 1 worker, \`return 200 "ok"\`
- proxy CPU: utime + stime of the data plane under load, all its threads (/proc/<pid>/stat, CLK_TCK $CLK_TCK), over each run; "other load": the busy time of that CPU (/proc/stat) less the data plane's, per second of run (n/a when not pinned); write system calls (\`syscw\` of /proc/<pid>/io) and context switches (voluntary + involuntary, all threads, /proc/<pid>/task/*/status) over the run, per request

EOF
}

report() {
  python3 - "$WORK/results.txt" "$FAIL_ON_TARGETS" "$SMOKE" <<'EOF'
import statistics, sys
runs, concs = {}, []
for line in open(sys.argv[1]):
    f = line.split()
    conc, target, rnd = int(f[0]), f[1], int(f[2])
    rps, p50, p99, total, non2xx, errors, wall, cpu, other = f[3:12]
    scrapes, sfailed, sbytes, sms, first, last, lines = f[12:19]
    writes, switches = f[19:21]
    if conc not in concs:
        concs.append(conc)
    runs.setdefault((conc, target), {})[rnd] = dict(
        rps=float(rps), p50=float(p50), p99=float(p99), total=int(total),
        non2xx=int(non2xx), errors=int(errors),
        cores=None if cpu == "-" else float(cpu) / float(wall),
        other=None if other == "-" else float(other) / float(wall),
        per_cpu=None if cpu == "-" or float(cpu) <= 0 else int(total) / float(cpu),
        scrapes=None if scrapes == "-" else int(scrapes),
        sfailed=None if sfailed == "-" else int(sfailed),
        sbytes=None if sbytes == "-" else int(sbytes),
        sms=None if sms == "-" else float(sms),
        grew=None if scrapes == "-" else (first != "-" and last != "-" and int(last) > int(first)),
        lines=None if lines == "-" else int(lines),
        writes=None if writes == "-" else int(writes) / max(1, int(total)),
        switches=None if switches == "-" else int(switches) / max(1, int(total)))
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

def paired(c, field):
    a, b = runs.get((c, "on"), {}), runs.get((c, "off"), {})
    out = [a[k][field] / b[k][field] for k in a if k in b and a[k][field] and b[k][field]]
    return f"{min(out):.2f}–{max(out):.2f}" if len(out) > 1 else "—"

print("| c | variant | requests/s | p50 | p99 | proxy CPU (cores) | other load on the proxy's CPU (cores) "
      "| requests per proxy-CPU-second | CPU per request | on vs off: requests/s | on vs off: per CPU-second "
      "| per-round ratios (requests/s; per CPU-second) | write syscalls per request | context switches per request "
      "| scrapes ok | access-log lines / requests | non-2xx | errors |")
print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|")
for c in concs:
    b_rps, b_cpu = med((c, "off"), "rps"), med((c, "off"), "per_cpu")
    for t in ("off", "on"):
        key = (c, t)
        if key not in runs:
            continue
        rs = runs[key].values()
        rps, per_cpu = med(key, "rps"), med(key, "per_cpu")
        us = None if not per_cpu else 1e6 / per_cpu
        if t == "on":
            rr, rc = num(ratio(rps, b_rps), "{:.2f}x"), num(ratio(per_cpu, b_cpu), "{:.2f}x")
            rounds = f"{paired(c, 'rps')}; {paired(c, 'per_cpu')}"
            scr = f"{sum(r['scrapes'] - r['sfailed'] for r in rs)}/{sum(r['scrapes'] for r in rs)}"
            logged = sum(r["lines"] for r in rs) / max(1, sum(r["total"] for r in rs))
            logged = f"{100 * logged:.1f}%"
        else:
            rr = rc = rounds = scr = logged = "—"
        non2xx = sum(r["non2xx"] for r in rs)
        errors = sum(r["errors"] for r in rs)
        print(f"| {c} | {t} | {rps:,.0f} | {lat(med(key, 'p50'))} | {lat(med(key, 'p99'))} "
              f"| {num(med(key, 'cores'), '{:.2f}')} | {num(med(key, 'other'), '{:.2f}')} | {num(per_cpu)} "
              f"| {num(us, '{:.1f} µs')} | {rr} | {rc} | {rounds} | {num(med(key, 'writes'), '{:.2f}')} "
              f"| {num(med(key, 'switches'), '{:.2f}')} | {scr} | {logged} | {non2xx} | {errors} |")
print()

lines = []
for c in concs:
    a, b = med((c, "on"), "per_cpu"), med((c, "off"), "per_cpu")
    if a and b:
        lines.append(f"c{c} {1e6 / a - 1e6 / b:+.1f} µs")
sizes = [r["sbytes"] for (c, t), rs in runs.items() if t == "on" for r in rs.values() if r["sbytes"]]
times = [r["sms"] for (c, t), rs in runs.items() if t == "on" for r in rs.values() if r["sms"] is not None]
if lines:
    print("CPU per request added by \"on\" (medians): " + ", ".join(lines) + "."
          + (f" A scrape: {statistics.median(sizes):,.0f} bytes, {statistics.median(times):.1f} ms "
             "as the scraper saw it (medians)." if sizes and times else "") + "\n")

verdicts, out = [], []
for c in concs:
    rr = ratio(med((c, "on"), "rps"), med((c, "off"), "rps"))
    rc = ratio(med((c, "on"), "per_cpu"), med((c, "off"), "per_cpu"))
    if rr is None:
        continue
    ok = rr >= 0.90
    verdicts.append(ok)
    # Three decimals: 0.895 is not 0.90.
    by_cpu = "n/a" if rc is None else f"{rc:.3f}x, {'≥' if rc >= 0.90 else '<'} 0.90x"
    out.append(f"- c{c}: on/off requests/s {rr:.3f}x, {'met' if ok else 'not met'} "
               f"(per proxy-CPU-second: {by_cpu})")
if out:
    print("Target (issue 8: \"on\" within 10% of \"off\", on/off ≥ 0.90x"
          + (", smoke mode: meaningless" if smoke else "") + "):\n")
    print("\n".join(out) + "\n")

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
    if t == "on":
        for k, r in sorted(rs.items()):
            if r["scrapes"] == 0 or r["sfailed"]:
                failures.append(f"{where} round {k}: {r['sfailed']} of {r['scrapes']} scrapes of /metrics failed")
            elif r["scrapes"] > 1 and not r["grew"]:
                failures.append(f"{where} round {k}: the route's 2xx counter did not grow between scrapes")
            if not r["lines"]:
                failures.append(f"{where} round {k}: the access log got no line")
if fail_on_targets and not all(verdicts):
    failures.append("the target of issue 8 was missed (FAIL_ON_TARGETS=1)")
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
  seconds_of "$SCRAPE_EVERY" >/dev/null

  ensure_command python3 python3
  ensure_command curl curl
  ensure_command psql postgresql-client
  ensure_command pgrep procps
  ensure_command nginx nginx-light nginx
  ensure_command wrk wrk
  if ((CALLGRIND)); then ensure_command valgrind valgrind; fi
  resolve_turnpike
  choose_pinning
  LOADAVG_START=$(cut -d' ' -f1-3 /proc/loadavg)

  ADMIN_TOKEN="bench-admin-$(random_hex 16)"
  CLUSTER_TOKEN="bench-cluster-$(random_hex 16)"
  DB_NAME="turnpike_bench_$(random_hex 4)" # fresh per run: no state from earlier runs
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/turnpike-observability.XXXXXX")
  read -r ORIGIN_PORT ADMIN_PORT CLUSTER_PORT OFF_PORT OFF_STATUS_PORT ON_PORT ON_STATUS_PORT \
    <<<"$(free_ports 7)"
  require_postgres

  log "origin (nginx) on :$ORIGIN_PORT"
  start_origin
  log "control plane on :$ADMIN_PORT (admin) and :$CLUSTER_PORT (cluster), database $DB_NAME"
  start_control_plane
  start_data_planes
  log "configuring turnpike through the admin API"
  configure_turnpike
  check_targets
  write_scraper
  AFFINITY=$(affinity_note dp-off dp-on origin)

  if ((CALLGRIND)); then
    run_callgrind
    callgrind_report >"$WORK/report.md"
    echo
    cat "$WORK/report.md"
    save_report observability-callgrind
    save_callgrind_dumps observability
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
  save_report observability
  ((rc == 0)) || die "benchmark checks failed (see FAILED above)"
}

# Sourcing the file (for its functions, e.g. to profile one route) runs nothing.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then main "$@"; fi
