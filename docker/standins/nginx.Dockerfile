# A local stand-in for the `nginx` image, for machines that cannot pull it
# (scripts/e2e-swarm): nginx from Debian, reading /etc/nginx/nginx.conf.
ARG BASE_IMAGE=bookstore/debian:bookworm
FROM ${BASE_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx-light curl \
 && rm -rf /var/lib/apt/lists/*
EXPOSE 8080
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
