# CI's local stand-in for redis:7 where no registry is reachable: Debian's redis-server on the Debian base
# (debootstrap, .ci/docker.sh), laid out like the official image (redis-server and redis-cli on the PATH, /data as
# the working directory, the server in the foreground). It runs as root, not as the user redis the official image
# switches to: a base imported before .ci/docker.sh made its root directory 0755 has a "/" only root can enter, and
# no later layer can change the mode of "/".
ARG BASE_IMAGE=relay-local/debian:bookworm
FROM ${BASE_IMAGE}
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends redis-server >/dev/null \
    && rm -rf /var/lib/apt/lists/* && mkdir -p /data
WORKDIR /data
EXPOSE 6379
CMD ["redis-server"]
