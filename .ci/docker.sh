#!/usr/bin/env bash
# The Docker side of CI, for the container tests (tests/Relay.IntegrationTests/Containers): a Docker engine, the
# local base images that stand in for the registry's, and the apps published for them. No registry needs to be
# reachable, only the Debian mirror this machine's apt uses (RELAY_DEBIAN_MIRROR overrides it). Reuses what is there:
# a running engine, base images already built.
#
#   eval "$(bash .ci/docker.sh)"     progress goes to stderr, the exports to stdout
#   bash .ci/docker.sh images        only the engine and the base images (.ci/run, while it builds the solution)
#   eval "$(bash .ci/docker.sh publish)"   only the apps (as built, no compile) and the exports (.ci/run, after its build)
#   bash .ci/docker.sh mirror        prints the Debian mirror debootstrap uses (apt's, or RELAY_DEBIAN_MIRROR)
#
# Then `dotnet test` runs the container tests (RELAY_TEST_DOCKER=1) and the images build from the project's
# Dockerfiles with these build arguments:
#   SDK_IMAGE=relay-local/debian:bookworm  + PUBLISHED=artifacts/docker  (the apps, published here)
#   RUNTIME_IMAGE=relay-local/dotnet-aspnet:10.0                          (Debian + this machine's .NET runtimes)
#   NGINX_IMAGE=relay-local/nginx:stable                                  (Debian's nginx)
#   REDIS_IMAGE=relay-local/redis:7                                       (Debian's redis-server)
set -euo pipefail
cd "$(dirname "$0")/.."

readonly BASE=relay-local/debian:bookworm ASPNET=relay-local/dotnet-aspnet:10.0 NGINX=relay-local/nginx:stable
readonly REDIS=relay-local/redis:7
readonly DOCKERD_LOG=/var/log/relay-ci-dockerd.log DOCKERD_WAIT_S=${RELAY_DOCKERD_WAIT_S:-90}

log() { echo "== docker: $*" >&2; }
fail() { echo "== docker: FAILED: $*" >&2; exit 1; }

engine_up() { timeout 10 docker info >/dev/null 2>&1; }

install_packages() {
  local need=()
  command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
  command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
  command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
  if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    timeout 600 apt-get update -qq >&2 || fail "apt-get update"
    timeout 900 apt-get install -y -qq "${need[@]}" >/dev/null || fail "apt-get install ${need[*]}"
  fi
}

# overlay2 where this kernel lets us mount an overlay on Docker's own filesystem, else vfs. vfs copies the whole
# image for every layer and every container: the same image builds took minutes with it and seconds with overlay2
# here (a Relay image: 7 s). RELAY_DOCKER_STORAGE_DRIVER forces one.
storage_driver() {
  if [ -n "${RELAY_DOCKER_STORAGE_DRIVER:-}" ]; then echo "$RELAY_DOCKER_STORAGE_DRIVER"; return; fi
  mkdir -p /var/lib/docker
  local probe
  probe=$(mktemp -d /var/lib/docker/relay-overlay-probe.XXXXXX)
  mkdir -p "$probe/lower" "$probe/upper" "$probe/work" "$probe/merged"
  if mount -t overlay overlay -o "lowerdir=$probe/lower,upperdir=$probe/upper,workdir=$probe/work" "$probe/merged" 2>/dev/null; then
    umount "$probe/merged"
    echo overlay2
  else
    echo vfs
  fi
  rm -rf "$probe"
}

start_engine() {
  engine_up && return 0
  [ "$(id -u)" = 0 ] || fail "no Docker engine is running and starting one needs root"
  if ! pgrep -x dockerd >/dev/null; then
    rm -f /var/run/docker.pid
    local driver
    driver=$(storage_driver)
    log "starting dockerd (storage driver $driver; log: $DOCKERD_LOG)"
    # Detached from this script, so the engine (and its build cache) serves the next run too.
    setsid nohup dockerd --storage-driver="$driver" >"$DOCKERD_LOG" 2>&1 < /dev/null &
  fi
  local waited=0
  until engine_up; do
    if [ "$waited" -ge "$DOCKERD_WAIT_S" ]; then
      tail -n 30 "$DOCKERD_LOG" >&2 || true
      fail "the Docker engine did not answer within ${DOCKERD_WAIT_S}s (dockerd's log above)"
    fi
    sleep 1
    waited=$((waited + 1))
  done
  log "engine up: $(docker version --format 'server {{.Server.Version}}, API {{.Server.APIVersion}}')"
}

# Runs a command with its output in a log, shown only when it fails.
quiet() {
  local out
  out=$(mktemp /tmp/relay-docker.XXXXXX)
  if "$@" >"$out" 2>&1; then rm -f "$out"; return 0; fi
  tail -n 40 "$out" >&2
  rm -f "$out"
  return 1
}

has_image() { docker image inspect "$1" >/dev/null 2>&1; }

# The URI of the first enabled `deb` source of SUITE's `main` component in this machine's apt sources, in the order
# apt reads them: the one-line sources.list, then the parts directory's *.list (one-line) and *.sources (deb822)
# files by name (sources.list(5)). The paths are apt's own (Dir::Etc::sourcelist, Dir::Etc::sourceparts), or
# LIST and PARTS when given. So debootstrap fetches from wherever apt-get does, and the repository names no host.
apt_mirror() {
  local suite=$1 list=${2:-} parts=${3:-} f
  if [ -z "$list" ] || [ -z "$parts" ]; then
    local APT_LIST APT_PARTS
    eval "$(apt-config shell APT_LIST Dir::Etc::sourcelist/f APT_PARTS Dir::Etc::sourceparts/d)"
    list=${list:-$APT_LIST} parts=${parts:-$APT_PARTS}
  fi
  local files=() mirror
  [ -f "$list" ] && files+=("$list")
  [ -d "$parts" ] && mapfile -t -O ${#files[@]} files < <(find "$parts" -maxdepth 1 -type f \( -name '*.list' -o -name '*.sources' \) | LC_ALL=C sort)
  for f in "${files[@]}"; do
    case "$f" in
      *.sources) mirror=$(apt_mirror_deb822 "$suite" <"$f") ;;
      *) mirror=$(apt_mirror_one_line "$suite" <"$f") ;;
    esac
    if [ -n "$mirror" ]; then
      echo "$mirror"
      return 0
    fi
  done
}

# "deb [option=value ...] URI SUITE COMPONENT...", one source a line, # comments.
apt_mirror_one_line() {
  awk -v suite="$1" '
    { sub(/#.*/, "") }
    $1 != "deb" { next }
    {
      i = 2
      if ($i ~ /^\[/) { while (i < NF && $i !~ /\]$/) i++; i++ }
      if ($(i + 1) != suite) next
      for (j = i + 2; j <= NF; j++) if ($j == "main") { print $i; exit }
    }'
}

# deb822 stanzas separated by blank lines: Types, URIs, Suites, Components (lists), Enabled; indented lines continue
# a field, # lines are comments.
apt_mirror_deb822() {
  awk -v suite="$1" '
    function has(list, word,   n, a, k) { n = split(list, a, /[ \t]+/); for (k = 1; k <= n; k++) if (a[k] == word) return 1; return 0 }
    function stanza_end(   n, u, k) {
      if (!found && has(f["types"], "deb") && tolower(f["enabled"]) !~ /^[ \t]*(no|false|0)[ \t]*$/ \
          && has(f["suites"], suite) && has(f["components"], "main")) {
        n = split(f["uris"], u, /[ \t]+/)
        for (k = 1; k <= n && !found; k++) if (u[k] != "") { print u[k]; found = 1 }
      }
      delete f; key = ""
    }
    /^#/ { next }
    /^[ \t]*$/ { stanza_end(); next }
    /^[ \t]/ { if (key != "") f[key] = f[key] " " $0; next }
    { key = tolower(substr($0, 1, index($0, ":") - 1)); f[key] = substr($0, index($0, ":") + 1) }
    END { stanza_end() }'
}

debian_mirror() {
  if [ -n "${RELAY_DEBIAN_MIRROR:-}" ]; then
    echo "$RELAY_DEBIAN_MIRROR"
    return 0
  fi
  local mirror
  mirror=$(apt_mirror bookworm)
  [ -n "$mirror" ] || fail "no enabled 'deb' source for bookworm main in this machine's apt sources: set RELAY_DEBIAN_MIRROR to a Debian mirror"
  echo "$mirror"
}

build_base() {
  has_image "$BASE" && return 0
  local root mirror
  mirror=$(debian_mirror)
  log "building $BASE (debootstrap --variant=minbase bookworm from $mirror)"
  root=$(mktemp -d /tmp/relay-debian-rootfs.XXXXXX)
  # apt's own HTTP proxy too, when it has one and the environment names none (debootstrap downloads with wget).
  local APT_HTTP_PROXY='' APT_HTTPS_PROXY=''
  eval "$(apt-config shell APT_HTTP_PROXY Acquire::http::Proxy APT_HTTPS_PROXY Acquire::https::Proxy)"
  export http_proxy=${http_proxy:-$APT_HTTP_PROXY} https_proxy=${https_proxy:-$APT_HTTPS_PROXY}
  [ -n "$http_proxy" ] || unset http_proxy
  [ -n "$https_proxy" ] || unset https_proxy
  timeout 900 debootstrap --variant=minbase --include=ca-certificates,libssl3,tzdata bookworm "$root" "$mirror" \
    >/tmp/relay-debootstrap.log 2>&1 \
    || { tail -n 20 /tmp/relay-debootstrap.log >&2; rm -rf "$root"; fail "debootstrap (log: /tmp/relay-debootstrap.log)"; }
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  # mktemp made it 0700, and the image's "/" keeps that mode: only root could enter it.
  chmod 755 "$root"
  tar -C "$root" -c . | docker import -c 'CMD ["bash"]' - "$BASE" >/dev/null || fail "docker import $BASE"
  rm -rf "$root"
}

build_aspnet() {
  local dotnet_root runtime
  dotnet_root=$(dirname "$(readlink -f "$(command -v dotnet)")")
  runtime=$(dotnet --list-runtimes | awk '$1 == "Microsoft.AspNetCore.App" { v = $2 } END { print v }')
  [ -n "$runtime" ] || fail "no ASP.NET Core runtime in $dotnet_root"
  # Rebuilt when this machine's runtime changed.
  [ "$(docker image inspect -f '{{index .Config.Labels "relay.aspnet-runtime"}}' "$ASPNET" 2>/dev/null)" = "$runtime" ] && return 0
  log "building $ASPNET (ASP.NET Core $runtime from $dotnet_root)"
  local ctx
  ctx=$(mktemp -d /tmp/relay-aspnet.XXXXXX)
  mkdir -p "$ctx/shared"
  cp -a "$dotnet_root/dotnet" "$dotnet_root/host" "$ctx/"
  cp -a "$dotnet_root/shared/Microsoft.NETCore.App" "$dotnet_root/shared/Microsoft.AspNetCore.App" "$ctx/shared/"
  quiet timeout 600 docker build --label "relay.aspnet-runtime=$runtime" -t "$ASPNET" -f .ci/images/aspnet.Dockerfile "$ctx" \
    || { rm -rf "$ctx"; fail "docker build $ASPNET"; }
  rm -rf "$ctx"
}

build_nginx() {
  has_image "$NGINX" && return 0
  log "building $NGINX (Debian's nginx)"
  quiet timeout 600 docker build -t "$NGINX" -f .ci/images/nginx.Dockerfile .ci/images || fail "docker build $NGINX"
}

build_redis() {
  has_image "$REDIS" && return 0
  log "building $REDIS (Debian's redis-server)"
  quiet timeout 600 docker build -t "$REDIS" -f .ci/images/redis.Dockerfile .ci/images || fail "docker build $REDIS"
}

# The configuration CI has just built: `publish` (after .ci/run's build) copies it without compiling again, which
# on a loaded 2-core machine saves minutes; a user building with the SDK image gets Release.
readonly CONFIGURATION=${RELAY_PUBLISH_CONFIGURATION:-Debug}

publish_apps() {
  log "publishing Relay and MockInference ($CONFIGURATION${1:+, $1}) to artifacts/docker"
  rm -rf artifacts/docker
  local p
  for p in Relay MockInference; do
    dotnet publish "src/$p/$p.csproj" -c "$CONFIGURATION" -o "artifacts/docker/$p" -nologo -v:q "$@" >&2 || fail "dotnet publish $p"
  done
}

images() {
  local start=$SECONDS
  install_packages
  start_engine
  build_base
  build_aspnet
  build_nginx
  build_redis
  log "engine and base images ready in $((SECONDS - start))s"
}

publish() {
  local start=$SECONDS
  publish_apps "$@"
  log "apps published in $((SECONDS - start))s"
  cat <<EXPORTS
export RELAY_TEST_DOCKER=1
export RELAY_SDK_IMAGE=$BASE
export RELAY_RUNTIME_IMAGE=$ASPNET
export RELAY_NGINX_IMAGE=$NGINX
export RELAY_REDIS_IMAGE=$REDIS
export RELAY_PUBLISHED=artifacts/docker
EXPORTS
}

case "${1:-all}" in
  images) images ;;
  publish) engine_up || fail "no Docker engine is running (bash .ci/docker.sh images)"; publish --no-build ;;
  all) images; publish ;;
  mirror) debian_mirror ;;
  *) fail "usage: .ci/docker.sh [images|publish|mirror]" ;;
esac
