#!/usr/bin/env bash
# ./test.sh — every test that can run on this machine, from a clean clone.
# The test fixtures start their own throwaway Redis and Postgres (free ports, temp dirs) and stop
# them; this script only makes sure the binaries are installed. The Aspire AppHost tests need
# nuget.org and a container runtime and are not part of this run (see docs/aspire.md).
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
set +e
dotnet test AgentPlatform.Tests -c "$CONFIGURATION" --no-build -nologo \
  --logger "trx;LogFileName=results.trx" --results-directory "$RESULTS" "$@"
status=$?
set -e

# One plain closing line for any reader: "N passed, N failed, N skipped".
trx="$RESULTS/results.trx"
if [ -f "$trx" ]; then
  counters=$(grep -o '<Counters [^>]*>' "$trx" | head -n 1)
  get() { printf '%s' "$counters" | grep -o "$1=\"[0-9]*\"" | grep -o '[0-9]*'; }
  passed=$(get passed); failed=$(get failed); total=$(get total); executed=$(get executed)
  skipped=$(( ${total:-0} - ${executed:-0} ))
  echo "${passed:-0} passed, ${failed:-0} failed, ${skipped} skipped"
fi
exit $status
