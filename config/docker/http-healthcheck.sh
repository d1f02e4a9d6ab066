#!/bin/bash
# The images' HEALTHCHECK (none of the base images ships curl or wget): healthy when the server in the container
# answers `GET <path>` on 127.0.0.1:<port> with a status below 500.
#   http-healthcheck.sh <port> <path>
set -eu
exec 3<>"/dev/tcp/127.0.0.1/$1"
printf 'GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' "$2" >&3
read -r -t 3 _ status _ <&3
[ "${status:-999}" -lt 500 ]
