# CI's local stand-in for nginx:stable where no registry is reachable: Debian's nginx on the Debian base
# (debootstrap, .ci/docker.sh), laid out like the official image (conf.d/, foreground, logs to the container's output).
ARG BASE_IMAGE=relay-local/debian:bookworm
FROM ${BASE_IMAGE}
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends nginx-light >/dev/null \
    && rm -rf /var/lib/apt/lists/* /etc/nginx/sites-enabled/* \
    && ln -sf /dev/stdout /var/log/nginx/access.log && ln -sf /dev/stderr /var/log/nginx/error.log
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
