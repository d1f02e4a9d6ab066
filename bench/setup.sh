#!/usr/bin/env bash
# Installs what the load benchmark needs where missing: h2load (Debian nghttp2-client: the background load,
# required), dotnet-counters (a dotnet tool: runtime counters, optional), redis-server (Debian: the relay-resume
# target's state store), and the third-party targets nginx, HAProxy and Caddy (Debian packages) and Portkey's AI
# gateway (npm @portkey-ai/gateway, into bench/.tools/portkey).
# HAProxy, Caddy and Portkey are installed only when named in --targets (the arguments of bench/run.sh are passed
# on): they are not default targets. A target that cannot be installed is skipped by the benchmark with a printed
# reason; this script never fails for an optional one.
set -uo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v h2load >/dev/null 2>&1 || need_apt+=(nghttp2-client)
# redis-server: the state store of the relay-resume target (resumable streams), a default target.
command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || need_apt+=(redis-server)
named() { [[ " $* " == *--targets* ]] && [[ "$*" == *"$target"* ]]; }
for pkg in nginx haproxy caddy; do
  target=$pkg
  [ "$pkg" = nginx ] || named "$@" || continue
  command -v "$pkg" >/dev/null 2>&1 || [ -x "/usr/sbin/$pkg" ] || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== apt-get install ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq "${need_apt[@]}" >/dev/null \
      || echo "!! apt-get could not install ${need_apt[*]}; the benchmark skips what is missing"
  else
    echo "!! missing ${need_apt[*]} (needs root and apt-get); the benchmark skips them"
  fi
fi

if [ ! -x "$HOME/.dotnet/tools/dotnet-counters" ]; then
  echo "== dotnet tool install -g dotnet-counters"
  dotnet tool install -g dotnet-counters >/dev/null || echo "!! could not install dotnet-counters; runtime counters are not reported"
fi

portkey=bench/.tools/portkey
target=portkey
if ! named "$@"; then
  :
elif [ -f "$portkey/node_modules/@portkey-ai/gateway/build/start-server.js" ]; then
  :
elif command -v npm >/dev/null 2>&1; then
  echo "== npm install @portkey-ai/gateway (into $portkey)"
  mkdir -p "$portkey"
  (cd "$portkey" && npm install --no-audit --no-fund --loglevel=error @portkey-ai/gateway@1.15.2 >/dev/null) \
    || echo "!! npm could not install @portkey-ai/gateway; the benchmark skips it"
else
  echo "!! npm not found: the Portkey gateway target is skipped"
fi
