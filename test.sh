#!/usr/bin/env bash
# ./test.sh — every test that can run on this machine, from a clean clone: the unit and integration
# tests (AgentPlatform.Tests), then the Aspire AppHost tests (AgentPlatform.AppHost.Tests), which start
# the real AppHost with DCP and the dashboard from NuGet, in existing-server mode.
# The test fixtures start their own throwaway Redis and Postgres (free ports, temp dirs) and stop
# them; this script only makes sure the binaries are installed.
set -euo pipefail
cd "$(dirname "$0")"

need_apt() {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    [ -n "${APT_UPDATED:-}" ] || { apt-get update -qq; APT_UPDATED=1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    echo "test.sh: please install: $*" >&2; exit 1
  fi
}
command -v redis-server >/dev/null 2>&1 || { echo "Installing redis-server…"; need_apt redis-server; }
ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1 || { echo "Installing postgresql…"; need_apt postgresql; }

CONFIGURATION="${CONFIGURATION:-Release}"
RESULTS="$(pwd)/TestResults"
rm -rf "$RESULTS"

dotnet build AgentPlatform.slnx -c "$CONFIGURATION" -nologo -v quiet

# One project after the other: the machine has two cores, and each suite starts its own servers.
status=0
for project in AgentPlatform.Tests AgentPlatform.AppHost.Tests; do
  set +e
  dotnet test "$project" -c "$CONFIGURATION" --no-build -nologo \
    --logger "trx;LogFileName=$project.trx" --results-directory "$RESULTS" "$@"
  code=$?
  set -e
  [ $code -eq 0 ] || status=$code
done

# One plain closing line for any reader: "N passed, N failed, N skipped", over both suites.
passed=0; failed=0; skipped=0
for trx in "$RESULTS"/*.trx; do
  [ -f "$trx" ] || continue
  counters=$(grep -o '<Counters [^>]*>' "$trx" | head -n 1)
  get() { printf '%s' "$counters" | grep -o " $1=\"[0-9]*\"" | grep -o '[0-9]*' || echo 0; }
  passed=$((passed + $(get passed))); failed=$((failed + $(get failed)))
  skipped=$((skipped + $(get total) - $(get executed)))
done
echo "$passed passed, $failed failed, $skipped skipped"
exit $status
