# CI's local stand-in for mcr.microsoft.com/dotnet/aspnet:10.0 where no registry is reachable: the Debian base
# (debootstrap, .ci/docker.sh) plus this machine's .NET and ASP.NET Core runtimes.
# Build context: a folder holding dotnet, host/ and shared/ of a .NET installation.
ARG BASE_IMAGE=relay-local/debian:bookworm
FROM ${BASE_IMAGE}
COPY . /usr/share/dotnet/
RUN ln -s /usr/share/dotnet/dotnet /usr/bin/dotnet
ENV DOTNET_RUNNING_IN_CONTAINER=true
