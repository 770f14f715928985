#!/usr/bin/env bash
# ./run.sh — start AgentPlatform through its Aspire AppHost (`dotnet run` on AgentPlatform.AppHost):
# DCP runs the Api and the Worker, the Aspire dashboard shows their traces, metrics and logs.
# Where no container runtime answers, Redis and Postgres are started here from local binaries
# (redis-server is installed with apt when running as root) and handed to the AppHost as existing
# servers. Settings in the environment (Auth__AdminKey, ConnectionStrings__*, PORT, …) win over
# generated ones. Ctrl+C (or SIGTERM) stops everything this script started. State lives in .run/.
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)
STATE="$ROOT/.run"
PORT="${PORT:-8000}"
DASHBOARD_PORT=15000 # the AppHost's "http" launch profile: dashboard 15000, OTLP 19000, resource service 20000
mkdir -p "$STATE"

log() { printf '\033[1m==>\033[0m %s\n' "$*"; }
die() { printf 'run.sh: %s\n' "$*" >&2; exit 1; }
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() { local p=$1; while ! port_free "$p"; do p=$((p + 1)); done; echo "$p"; }
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
apt_install() {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "Installing $* with apt…"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    die "$* is not installed (apt-get install $*)."
  fi
}

for p in "$PORT" "$DASHBOARD_PORT" 19000 20000; do port_free "$p" || die "port $p is in use (PORT=… moves the Api; the dashboard needs 15000, 19000 and 20000)."; done

CONTAINERS=no
if [ "${AGENTPLATFORM_LOCAL:-}" != "1" ]; then
  runtime="${ASPIRE_CONTAINER_RUNTIME:-docker}"
  if command -v "$runtime" >/dev/null 2>&1 && timeout 10 "$runtime" info >/dev/null 2>&1; then CONTAINERS=yes; fi
fi

REDIS_PID_FILE="$STATE/redis.pid"
PG_DATA="$STATE/postgres"
PG_BIN=""
STARTED_PG=no
APPHOST_PID=""
APPHOST_GROUP=""
WATCH_PID=""
cleanup() {
  # Ignore further Ctrl+C while stopping, so a second one cannot leave processes behind.
  trap '' INT TERM
  trap - EXIT
  log "Stopping…"
  [ -n "$WATCH_PID" ] && kill "$WATCH_PID" 2>/dev/null || true
  # DCP and what it started (the Api, the Worker, the dashboard) run in sessions of their own; DCP watches the AppHost
  # ("--monitor <pid>") and stops them once the AppHost has gone. Note them now, to wait for that below.
  local sessions=""
  if [ -n "$APPHOST_GROUP" ]; then
    for member in $(pgrep -g "$APPHOST_GROUP" 2>/dev/null || true); do
      for server in $(pgrep -f -- "dcp start-apiserver --monitor $member " 2>/dev/null || true); do
        sessions="$sessions $server $(pgrep -f -- "--monitor $server " 2>/dev/null | tr '\n' ' ' || true)"
      done
    done
  fi
  if [ -n "$APPHOST_PID" ] && kill -0 "$APPHOST_PID" 2>/dev/null; then
    # The AppHost stops the Api, the Worker, the dashboard and DCP itself when asked to.
    # SIGTERM, not SIGINT: a script started in the background ignores SIGINT, and so would its children.
    kill -TERM -- "-$APPHOST_PID" 2>/dev/null || kill -TERM "$APPHOST_PID" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$APPHOST_PID" 2>/dev/null || break; sleep 1; done
  fi
  if [ -n "$APPHOST_GROUP" ]; then
    # Anything of its process group still there after 30 s (DCP, a stuck service) is ended.
    kill -KILL -- "-$APPHOST_GROUP" 2>/dev/null || true
    wait "$APPHOST_GROUP" 2>/dev/null || true
  fi
  for session in $sessions; do
    for _ in $(seq 1 20); do pgrep -s "$session" >/dev/null 2>&1 || break; sleep 1; done
    pkill -KILL -s "$session" 2>/dev/null || true
  done
  [ -f "$REDIS_PID_FILE" ] && kill "$(cat "$REDIS_PID_FILE")" 2>/dev/null || true
  rm -f "$REDIS_PID_FILE"
  if [ "$STARTED_PG" = yes ]; then as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast stop >/dev/null 2>&1 || true; fi
  log "Stopped."
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ "$CONTAINERS" = yes ]; then
  log "A container runtime answers: Aspire runs Redis, Postgres and Qdrant as containers."
else
  # --- Redis ---------------------------------------------------------------------------------
  if [ -z "${ConnectionStrings__redis:-}" ]; then
    command -v redis-server >/dev/null 2>&1 || apt_install redis-server
    REDIS_PORT=$(free_port "${REDIS_PORT:-56379}")
    log "Starting Redis on 127.0.0.1:$REDIS_PORT"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$STATE" \
      --daemonize yes --pidfile "$REDIS_PID_FILE" --logfile "$STATE/redis.log"
    export ConnectionStrings__redis="127.0.0.1:$REDIS_PORT"
  fi

  # --- Postgres ------------------------------------------------------------------------------
  if [ -z "${ConnectionStrings__agentdb:-}" ]; then
    PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -z "$PG_BIN" ] && command -v pg_ctl >/dev/null 2>&1; then PG_BIN=$(dirname "$(command -v pg_ctl)"); fi
    if [ -z "$PG_BIN" ]; then apt_install postgresql; PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1); fi
    PG_PORT=$(free_port "${PG_PORT:-55432}")
    if [ ! -f "$PG_DATA/PG_VERSION" ]; then
      log "Creating a Postgres cluster in $PG_DATA"
      mkdir -p "$PG_DATA"
      if [ "$(id -u)" = 0 ]; then chown postgres "$PG_DATA"; chmod o+x "$STATE"; fi
      as_postgres "$PG_BIN/initdb" -D "$PG_DATA" -A trust -U postgres >/dev/null
    fi
    rm -f "$PG_DATA/postmaster.pid" 2>/dev/null || true
    log "Starting Postgres on 127.0.0.1:$PG_PORT"
    as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_DATA/server.log" -w \
      -o "-p $PG_PORT -k $PG_DATA -c listen_addresses=127.0.0.1" start >/dev/null
    STARTED_PG=yes
    as_postgres "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='agentdb'" \
      | grep -q 1 || as_postgres "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres agentdb
    export ConnectionStrings__agentdb="Host=127.0.0.1;Port=$PG_PORT;Username=postgres;Database=agentdb"
  fi
  [ -n "${ConnectionStrings__qdrant:-}" ] || log "No container runtime and no ConnectionStrings__qdrant: Qdrant is left out (embedded vector store)."
fi

# --- The admin key: the environment's, else the one kept in .run/ -------------------------------
if [ -z "${Auth__AdminKey:-}" ]; then
  [ -s "$STATE/admin-key" ] || (umask 077; head -c 64 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 40 | sed 's/^/admin_/' > "$STATE/admin-key")
  Auth__AdminKey=$(cat "$STATE/admin-key")
fi
export Auth__AdminKey PORT

# --- The AppHost --------------------------------------------------------------------------------
log "Building (Release)…"
dotnet build AgentPlatform.AppHost -c Release -v quiet -nologo >"$STATE/build.log" 2>&1 || { cat "$STATE/build.log"; die "build failed"; }

log "Starting the AppHost (log: .run/apphost.log)"
# Its own process group, so stopping reaches DCP and everything it started.
setsid dotnet run --project AgentPlatform.AppHost -c Release --no-build --launch-profile http >"$STATE/apphost.log" 2>&1 &
APPHOST_PID=$!
APPHOST_GROUP=$APPHOST_PID

URL="http://localhost:$PORT"
DASHBOARD=""
for _ in $(seq 1 180); do
  kill -0 "$APPHOST_PID" 2>/dev/null || { tail -n 40 "$STATE/apphost.log"; die "the AppHost exited"; }
  [ -n "$DASHBOARD" ] || DASHBOARD=$(grep -o 'Login to the dashboard at [^ ]*' "$STATE/apphost.log" | head -n 1 | sed 's/.* at //' || true)
  if [ -n "$DASHBOARD" ] && curl -fsS "$URL/health" >/dev/null 2>&1; then break; fi
  sleep 1
done
curl -fsS "$URL/health" >/dev/null 2>&1 || { tail -n 40 "$STATE/apphost.log"; die "/health did not answer; open the dashboard: ${DASHBOARD:-http://localhost:$DASHBOARD_PORT}"; }

LLM=$(curl -fsS -H "Authorization: Bearer $Auth__AdminKey" "$URL/health" | sed -n 's/.*"llm":{"status":"[a-z]*","description":"\([^"]*\)".*/\1/p')
cat <<TXT

AgentPlatform is running (Aspire AppHost).
  API:        $URL   (docs: $URL/docs, health: $URL/health, metrics: $URL/metrics)
  Dashboard:  $DASHBOARD
              (traces, metrics and the Api's and Worker's console logs; the link logs you in)
  Admin key:  $Auth__AdminKey
  LLM:        ${LLM:-see /health}
  Log:        .run/apphost.log

First steps:
  # create a client key (shown once)
  curl -s -X POST $URL/admin/keys -H "Authorization: Bearer $Auth__AdminKey" \\
       -H 'Content-Type: application/json' -d '{"name":"me","tier":"pro"}'
  # run a task (use the key from above; the admin key works too)
  curl -s -X POST $URL/agent/execute -H "Authorization: Bearer $Auth__AdminKey" \\
       -H 'Content-Type: application/json' -d '{"task":"Explain rate limiting in one sentence"}'

Press Ctrl+C to stop.
TXT

# Report a service that stops answering or a dependency that goes down; the dashboard shows the service as
# Exited or Unhealthy, and its Restart command brings it back.
(
  last="healthy"
  while sleep 5; do
    body=$(curl -s --max-time 4 "$URL/health" 2>/dev/null || true)
    now=$(printf '%s' "$body" | sed -n 's/^{"status":"\([a-z]*\)".*/\1/p')
    failing=$(printf '%s' "$body" | sed -n 's/.*"checks":{\([^}]*\)}.*/\1/p' | grep -o '"[a-z]*":"\(degraded\|unhealthy\)"' | tr -d '"' | tr '\n' ' ' || true)
    now="${now:-not answering}${failing:+ ($failing)}"
    if [ "$now" != "$last" ]; then
      printf '\033[1m==>\033[0m Api /health: %s (details in the dashboard: %s)\n' "$now" "${DASHBOARD%%/login*}"
      last=$now
    fi
  done
) &
WATCH_PID=$!

wait "$APPHOST_PID" || true
APPHOST_PID=""
log "The AppHost stopped; see .run/apphost.log"
