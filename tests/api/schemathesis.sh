#!/usr/bin/env bash
# Property-based test of the admin API from its own OpenAPI document:
# schemathesis generates valid and invalid requests for every operation and
# checks every answer (no 5xx, answers match the documented schemas, bad
# input refused, good input accepted, stateful sequences through links).
#
# Runs a control plane on a fresh database on free loopback ports, seeds an
# upstream and a route so operations on existing objects have data, runs
# schemathesis, and stops everything. Usage: tests/api/schemathesis.sh
# [--max-examples N]. Needs Postgres on 127.0.0.1:5432 and python3.
set -euo pipefail
cd "$(dirname "$0")/../.."

MAX_EXAMPLES=${MAX_EXAMPLES:-50}
if [[ "${1:-}" == "--max-examples" ]]; then MAX_EXAMPLES=$2; fi
SCHEMATHESIS_VERSION=4.32.5

if ! command -v schemathesis >/dev/null || [[ "$(schemathesis --version 2>/dev/null)" != *"$SCHEMATHESIS_VERSION"* ]]; then
  python3 -m pip install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

BIN=${TURNPIKE_BIN:-}
if [[ -z "$BIN" ]]; then
  cargo build --quiet --locked -p turnpike-cli --bin turnpike
  BIN=target/debug/turnpike
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
ADMIN_PORT=$(free_port)
CLUSTER_PORT=$(free_port)
DB="turnpike_schemathesis_$RANDOM$RANDOM"
TOKEN="schemathesis-admin-$RANDOM$RANDOM$RANDOM"
WORK=$(mktemp -d)
BASE="http://127.0.0.1:$ADMIN_PORT"

cleanup() {
  if [[ -n "${CP_PID:-}" ]]; then kill "$CP_PID" 2>/dev/null || true; wait "$CP_PID" 2>/dev/null || true; fi
  psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

"$BIN" control-plane --database-url "postgres://postgres@127.0.0.1:5432/$DB" \
  --admin-listen "127.0.0.1:$ADMIN_PORT" --cluster-listen "127.0.0.1:$CLUSTER_PORT" \
  --admin-token "$TOKEN" --cluster-token "schemathesis-cluster-$RANDOM$RANDOM" >"$WORK/cp.log" 2>&1 &
CP_PID=$!
for _ in $(seq 1 200); do
  curl -fs "$BASE/readyz" >/dev/null 2>&1 && break
  kill -0 "$CP_PID" 2>/dev/null || { cat "$WORK/cp.log"; echo "control plane exited" >&2; exit 1; }
  sleep 0.1
done
curl -fs "$BASE/readyz" >/dev/null

api() { curl -fsS -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' "$@" >/dev/null; }
api -d '{"name": "users", "targets": [{"address": "127.0.0.1:9001"}], "tags": ["seed"]}' "$BASE/api/v1/upstreams"
api -d '{"name": "users-api", "paths": ["/users"], "upstream": "users", "tags": ["seed"]}' "$BASE/api/v1/routes"
api -d '{"username": "alice", "groups": ["staff"], "tags": ["seed"]}' "$BASE/api/v1/consumers"
api -d '{"type": "key-auth"}' "$BASE/api/v1/consumers/alice/credentials"
api -d '{"name": "cors", "route": "users-api", "enabled": false, "tags": ["seed"]}' "$BASE/api/v1/plugins"

status=0
schemathesis --config-file tests/api/schemathesis.toml --no-color \
  run "$BASE/api/v1/openapi.json" --url "$BASE" \
  --checks all -H "Authorization: Bearer $TOKEN" \
  --max-examples "$MAX_EXAMPLES" --seed 1 || status=$?
if [[ $status -ne 0 ]]; then
  echo "----- control plane log (last 40 lines) -----"
  tail -40 "$WORK/cp.log"
fi
exit $status
