#!/usr/bin/env bash
# The side-by-side load benchmark (bench/README.md, "Load benchmark").
#   bash bench/run.sh            quick mode (< 2 minutes): a smoke run, results under bench/results/tmp/
#   bash bench/run.sh --full     full run (< 20 minutes): bench/results/YYYY-MM-DD.md + PNGs, README sections
#   extra: --targets relay-passthrough,nginx   (direct always runs: it is the floor; by default relay-passthrough,
#                                               relay-cadence, relay-resume (resumable streams, with redis-server),
#                                               plain-yarp (full mode) and nginx; haproxy, caddy, portkey run only
#                                               when named)
#          --scenarios 300x50,cancel,idle      (load scenarios by name, cancel, idle, stalled)
#          --relay-variants "pgo0:DOTNET_TieredPGO=0;..."   (more Relay pass-through targets, other settings)
# Exits non-zero when a target produced errors or wrong content.
set -euo pipefail
cd "$(dirname "$0")/.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

bash bench/setup.sh "$@"
command -v h2load >/dev/null || { echo "h2load is required (Debian: apt-get install nghttp2-client)" >&2; exit 2; }
echo "== build (Release)"
for project in src/Relay/Relay.csproj src/MockInference/MockInference.csproj bench/PlainYarp/PlainYarp.csproj bench/Relay.LoadBench/Relay.LoadBench.csproj; do
  dotnet build -c Release --nologo -v quiet "$project" >/dev/null || dotnet build -c Release --nologo "$project"
done

# Thousands of sockets per process: take the hard limit (processes started by the benchmark inherit it).
ulimit -n "$(ulimit -Hn)"
# The load generator (with MockInference and h2load, which it starts) on core 1; it pins each proxy to core 0.
exec taskset -c 1 dotnet bench/Relay.LoadBench/bin/Release/net10.0/Relay.LoadBench.dll "$@"
