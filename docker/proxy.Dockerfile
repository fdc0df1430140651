# The stack's edge proxy (stack.yml `proxy`, one per node): HAProxy from
# Debian's packages, reading /usr/local/etc/haproxy/haproxy.cfg (the stack's
# `proxy_conf`, docker/proxy/haproxy.cfg). Production and the local tests
# build this same file (scripts/publish-images for a registry):
#   docker build -f docker/proxy.Dockerfile -t REGISTRY/bookstore/proxy:TAG .
# Debian's image where it can be pulled (scripts/publish-images); the tests
# pass their debootstrap root of the same release (scripts/lib/images.sh).
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends haproxy curl \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /usr/local/etc/haproxy
COPY docker/proxy/haproxy.cfg docker/proxy/maintenance.http /usr/local/etc/haproxy/
# haproxy.cfg's settings, for a run outside the stack (stack.yml sets them).
ENV TRUSTED_LOAD_BALANCERS="" PROXY_MAX_CONNECTIONS_PER_ADDRESS=64 PROXY_REQUESTS_PER_10S=1000
USER haproxy
EXPOSE 8080
# SIGUSR1: a soft stop. The listener closes and open connections finish.
STOPSIGNAL SIGUSR1
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD ["curl", "-fsS", "http://127.0.0.1:8080/proxy-health"]
LABEL org.opencontainers.image.title="bookstore-proxy" \
      org.opencontainers.image.description="The Bookstore stack's per-node proxy: HAProxy to the storefront replicas by DNS" \
      org.opencontainers.image.source="https://example.invalid/bookstore-fleet" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.vendor="Bookstore fleet"
CMD ["haproxy", "-W", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]
