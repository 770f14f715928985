#!/usr/bin/env bash
# ./run.sh — start AgentPlatform.
# With a container runtime and the Aspire packages it runs the Aspire AppHost. Otherwise it starts
# Redis and Postgres from local binaries (installing redis-server with apt when root and missing),
# then the Worker and the Api, waits for /health and prints how to use it. Ctrl+C stops everything.
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)
STATE="$ROOT/.run"
PORT="${PORT:-8000}"
mkdir -p "$STATE"

log() { printf '\033[1m==>\033[0m %s\n' "$*"; }
die() { printf 'run.sh: %s\n' "$*" >&2; exit 1; }

if [ "${AGENTPLATFORM_LOCAL:-}" != "1" ] && command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
  if dotnet restore AgentPlatform.AppHost >/dev/null 2>&1; then
    log "Container runtime and Aspire packages found: running the AppHost (dashboard URL below)."
    exec dotnet run --project AgentPlatform.AppHost
  fi
  log "A container runtime is here but the Aspire packages are not restorable; running locally instead."
fi

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() { local p=$1; while ! port_free "$p"; do p=$((p + 1)); done; echo "$p"; }
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# --- Redis -----------------------------------------------------------------------------------
if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "Installing redis-server with apt…"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  else
    die "redis-server is not installed (apt-get install redis-server)."
  fi
fi

# --- Postgres --------------------------------------------------------------------------------
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$PG_BIN" ] && command -v pg_ctl >/dev/null 2>&1; then PG_BIN=$(dirname "$(command -v pg_ctl)"); fi
if [ -z "$PG_BIN" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "Installing postgresql with apt…"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  else
    die "PostgreSQL is not installed."
  fi
fi

PIDS=()
PG_DATA="$STATE/postgres"
cleanup() {
  # Ignore further Ctrl+C while stopping, so a second one cannot leave servers behind.
  trap '' INT TERM
  trap - EXIT
  log "Stopping…"
  for pid in "${PIDS[@]:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; done
  [ -f "$STATE/redis.pid" ] && kill "$(cat "$STATE/redis.pid")" 2>/dev/null || true
  rm -f "$STATE/redis.pid"
  [ -f "$PG_DATA/postmaster.pid" ] && as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast stop >/dev/null 2>&1 || true
  for pid in "${PIDS[@]:-}"; do [ -n "$pid" ] && wait "$pid" 2>/dev/null || true; done
  log "Stopped."
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

PG_PORT=$(free_port "${PG_PORT:-55432}")
REDIS_PORT=$(free_port "${REDIS_PORT:-56379}")
port_free "$PORT" || die "port $PORT is in use; set PORT=…"

if [ ! -f "$PG_DATA/PG_VERSION" ]; then
  log "Creating a Postgres cluster in $PG_DATA"
  mkdir -p "$PG_DATA"
  [ "$(id -u)" = 0 ] && chown postgres "$PG_DATA" && chmod o+x "$STATE"
  as_postgres "$PG_BIN/initdb" -D "$PG_DATA" -A trust -U postgres >/dev/null
fi
rm -f "$PG_DATA/postmaster.pid" 2>/dev/null || true
log "Starting Postgres on 127.0.0.1:$PG_PORT"
as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_DATA/server.log" -w \
  -o "-p $PG_PORT -k $PG_DATA -c listen_addresses=127.0.0.1" start >/dev/null
as_postgres "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='agentdb'" \
  | grep -q 1 || as_postgres "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres agentdb

log "Starting Redis on 127.0.0.1:$REDIS_PORT"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$STATE" \
  --daemonize yes --pidfile "$STATE/redis.pid" --logfile "$STATE/redis.log"

# --- Services --------------------------------------------------------------------------------
[ -f "$STATE/admin-key" ] || (head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 40 | sed 's/^/admin_/' > "$STATE/admin-key")
export Auth__AdminKey
Auth__AdminKey=$(cat "$STATE/admin-key")
export ConnectionStrings__agentdb="Host=127.0.0.1;Port=$PG_PORT;Username=postgres;Database=agentdb"
export ConnectionStrings__redis="127.0.0.1:$REDIS_PORT"
export DOTNET_ENVIRONMENT="${DOTNET_ENVIRONMENT:-Production}" ASPNETCORE_ENVIRONMENT="${ASPNETCORE_ENVIRONMENT:-Production}"

log "Building (Release)…"
dotnet build AgentPlatform.Api -c Release -v quiet -nologo >"$STATE/build.log" 2>&1 || { cat "$STATE/build.log"; die "build failed"; }
dotnet build AgentPlatform.Worker -c Release -v quiet -nologo >>"$STATE/build.log" 2>&1 || { cat "$STATE/build.log"; die "build failed"; }

log "Starting the Worker (log: .run/worker.log)"
(cd AgentPlatform.Worker/bin/Release/net10.0 && exec dotnet AgentPlatform.Worker.dll) >"$STATE/worker.log" 2>&1 &
PIDS+=($!)
log "Starting the Api on http://localhost:$PORT (log: .run/api.log)"
(cd AgentPlatform.Api/bin/Release/net10.0 && exec dotnet AgentPlatform.Api.dll --urls "http://localhost:$PORT") >"$STATE/api.log" 2>&1 &
PIDS+=($!)

URL="http://localhost:$PORT"
for _ in $(seq 1 120); do
  if curl -fsS "$URL/health" >/dev/null 2>&1; then break; fi
  for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null || { tail -n 40 "$STATE/api.log" "$STATE/worker.log"; die "a service exited"; }; done
  sleep 1
done
curl -fsS "$URL/health" >/dev/null 2>&1 || { tail -n 40 "$STATE/api.log"; die "/health did not become healthy"; }

LLM=$(curl -fsS "$URL/health" | sed -n 's/.*"llm":{"status":"[a-z]*","description":"\([^"]*\)".*/\1/p')
cat <<TXT

AgentPlatform is running.
  API:        $URL   (docs: $URL/docs, health: $URL/health, metrics: $URL/metrics)
  Admin key:  $Auth__AdminKey
  LLM:        ${LLM:-see /health}
  Logs:       .run/api.log, .run/worker.log

First steps:
  # create a client key (shown once)
  curl -s -X POST $URL/admin/keys -H "Authorization: Bearer $Auth__AdminKey" \\
       -H 'Content-Type: application/json' -d '{"name":"me","tier":"pro"}'
  # run a task (use the key from above; the admin key works too)
  curl -s -X POST $URL/agent/execute -H "Authorization: Bearer $Auth__AdminKey" \\
       -H 'Content-Type: application/json' -d '{"task":"Explain rate limiting in one sentence"}'

Press Ctrl+C to stop.
TXT
wait -n "${PIDS[@]}" || true
log "A service stopped; see .run/api.log and .run/worker.log"
