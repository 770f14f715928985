#!/usr/bin/env bash
# bench/gateway.sh — the gateway figures of the README's Performance section, reproduced.
# Starts the platform as a user does (./run.sh: the AppHost, the Api unproxied on PORT) with its LLM pointed at the shared
# harness's nginx mock upstream, creates a key without limits in the way, and runs ../shared/bench/peer-baseline.sh — the
# mock directly, Portkey (npm) and our route, one wrk run each, same load — for /v1/chat/completions and /agent/execute.
# Then one connection: added latency p50 over calling the mock directly. Api RSS after the load, and after IDLE s (20) idle.
# Stops what it started.
# usage: [WARM=15] [IDLE=20] [MEMDETAIL=1] bench/gateway.sh [seconds=10] [connections=64] [rounds=2]
set -euo pipefail
cd "$(dirname "$0")/.."
D=${1:-10}; C=${2:-64}; ROUNDS=${3:-2}
HARNESS=${HARNESS:-../shared/bench/peer-baseline.sh}
PORT=${PORT:-8000}
[ -f "$HARNESS" ] || { echo "the shared harness $HARNESS is missing" >&2; exit 1; }
command -v nginx >/dev/null && command -v wrk >/dev/null || apt-get install -y nginx-light wrk >/dev/null 2>&1

LOG=$(mktemp)
M=$(mktemp -d)
ConnectionStrings__openai="Endpoint=http://127.0.0.1:18080/v1;Key=sk-bench;Model=mock-model" PORT=$PORT ./run.sh >"$LOG" 2>&1 &
RUN=$!
# run.sh's own SIGTERM handler stops the AppHost, DCP's services, Redis and Postgres (signalling its whole group would
# interrupt that clean-up and leave its Redis running).
# (set +e: under set -e the first failing command of a trap ends it.)
trap 'set +e; nginx -c $M/nginx.conf -s stop 2>/dev/null; kill -TERM $RUN 2>/dev/null; wait $RUN 2>/dev/null; rm -rf "$LOG" $M' EXIT
for _ in $(seq 1 300); do grep -q "Press Ctrl" "$LOG" && break; kill -0 $RUN 2>/dev/null || { cat "$LOG"; exit 1; }; sleep 1; done
BASE=http://127.0.0.1:$PORT
ADMIN=$(cat .run/admin-key)
KEY=$(curl -fsS -X POST $BASE/admin/keys -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
  -d '{"name":"gateway-bench","tier":"enterprise","rpm_limit":1000000,"tpm_limit":1000000000,"daily_budget_usd":1000000}' \
  | sed -n 's/.*"key":"\([^"]*\)".*/\1/p')
API_PID=$(pgrep -f "AgentPlatform.Api/bin/Release/net10.0/AgentPlatform.Api$" | head -n 1)
EXEC='{"task":"hello there, summarize the benefits of FastAPI","agent_type":"general"}'
CHAT='{"model":"MODEL","messages":[{"role":"user","content":"hello there, summarize the benefits of FastAPI"}]}'

# The harness's mock upstream, started here for the warm-up and the one-connection part (the harness runs its own).
cat > $M/nginx.conf <<NG
worker_processes 1; pid $M/nginx.pid; error_log $M/error.log;
events { worker_connections 1024; }
http { access_log off; client_body_temp_path $M;
  server { listen 127.0.0.1:18080;
    location /v1/chat/completions { default_type application/json;
      return 200 '{"id":"chatcmpl-x","object":"chat.completion","created":1,"model":"mock-model","choices":[{"index":0,"message":{"role":"assistant","content":"MOCK-REPLY hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12}}'; } } }
NG
mock_start() { nginx -c $M/nginx.conf; }
mock_stop() { nginx -c $M/nginx.conf -s stop 2>/dev/null || true; sleep 0.5; }
lua() { # name body
  printf 'wrk.method="POST"; wrk.body=%s\nwrk.headers["Content-Type"]="application/json"; wrk.headers["Authorization"]="Bearer %s"\n' "'$2'" "$KEY" > $M/$1.lua
}
one() { # name url body: one connection, sequential requests
  lua "$1" "$3"
  wrk -t1 -c1 -d${D}s --latency -s $M/$1.lua "$2" | awk -v n=$1 '/ 50%/{p50=$2} / 99%/{p99=$2} /Requests\/sec/{r=$2} END{printf "%-8s rps=%s p50=%s p99=%s\n", n, r, p50, p99}'
}

# Warm-up: the Api's JIT tiers up (tiered compilation, then dynamic PGO) over its first tens of seconds of load; a
# fresh process would measure the JIT, not the gateway a running deployment is. WARM seconds per route (default 15).
WARM=${WARM:-15}
mock_start
lua warm-exec "$EXEC"; lua warm-v1 "${CHAT/MODEL/general}"
wrk -t2 -c$C -d${WARM}s -s $M/warm-exec.lua $BASE/agent/execute >/dev/null
wrk -t2 -c$C -d${WARM}s -s $M/warm-v1.lua $BASE/v1/chat/completions >/dev/null
mock_stop

echo "# $(date -u +%FT%TZ) $(nproc) cores; wrk ${D}s, $C connections; Api pid $API_PID"
for round in $(seq 1 "$ROUNDS"); do
  echo "## round $round: /v1/chat/completions (model general)"
  BASE_OURS=$BASE KEY_OURS=$KEY MODEL_OURS=general bash "$HARNESS" "$D" "$C"
  echo "## round $round: /agent/execute (agent_type general)"
  BASE_OURS=$BASE KEY_OURS=$KEY PATH_OURS=/agent/execute BODY_OURS="$EXEC" bash "$HARNESS" "$D" "$C"
done
echo "Api RSS after the load: $(( $(ps -o rss= -p "$API_PID") / 1024 )) MB"
# And once it has been idle for a while (what it holds between bursts); MEMDETAIL=1 adds the largest mappings (smaps).
sleep "${IDLE:-20}"
echo "Api RSS after ${IDLE:-20} s idle: $(( $(ps -o rss= -p "$API_PID") / 1024 )) MB"
if [ "${MEMDETAIL:-0}" = 1 ]; then
  awk '/^[0-9a-f]+-[0-9a-f]+ /{name=($6==""?"[anon]":$6)} /^Rss:/{rss[name]+=$2} END{for(n in rss) printf "%8d kB  %s\n", rss[n], n}' \
    /proc/$API_PID/smaps | sort -rn | head -12
fi

echo "## one connection, ${D}s each: added latency"
mock_start
one direct http://127.0.0.1:18080/v1/chat/completions "${CHAT/MODEL/mock-model}"
one v1 $BASE/v1/chat/completions "${CHAT/MODEL/general}"
one execute $BASE/agent/execute "$EXEC"
# The exact cache at the Api: the `code` agent is cacheable (its only tool, calculator, has no side effects). One request
# stores the answer; then hits, and the same request with "cache": false as the uncached baseline.
HIT='{"task":"what is 2 + 2, briefly","agent_type":"code"}'
curl -fsS -o /dev/null -X POST $BASE/agent/execute -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' -d "$HIT"
one hit $BASE/agent/execute "$HIT"
one uncached $BASE/agent/execute "${HIT%\}},\"cache\":false}"
mock_stop
