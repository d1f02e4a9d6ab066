#!/usr/bin/env bash
# The side-by-side load benchmark (bench/README.md, "Load benchmark").
#   bash bench/run.sh            quick mode (< 2 minutes): a smoke run, results under bench/results/tmp/
#   bash bench/run.sh --full     full run (< 20 minutes): bench/results/YYYY-MM-DD.md + PNGs, README sections
#   extra: --targets relay-passthrough,nginx   (direct always runs: it is the floor)
# Exits non-zero when a target produced errors or wrong content.
set -euo pipefail
cd "$(dirname "$0")/.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

bash bench/setup.sh
echo "== build (Release)"
for project in src/Relay/Relay.csproj bench/PlainYarp/PlainYarp.csproj bench/Relay.LoadBench/Relay.LoadBench.csproj; do
  dotnet build -c Release --nologo -v quiet "$project" >/dev/null || dotnet build -c Release --nologo "$project"
done

# Thousands of sockets per process: take the hard limit (processes started by the benchmark inherit it).
ulimit -n "$(ulimit -Hn)"
# The load generator (and MockInference, which it starts) on core 1; it pins each proxy to core 0.
exec taskset -c 1 dotnet bench/Relay.LoadBench/bin/Release/net10.0/Relay.LoadBench.dll "$@"
