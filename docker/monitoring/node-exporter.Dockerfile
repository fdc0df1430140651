# node-exporter for the Bookstore fleet (monitoring.yml, one task per node),
# from Debian's package on the debootstrap base. The stack mounts the host's
# /proc, /sys and / read-only and passes the --path.* flags.
#   docker build -f docker/monitoring/node-exporter.Dockerfile -t bookstore/node-exporter .
# Debian's image where it can be pulled (scripts/publish-images); the tests
# pass their debootstrap root of the same release (scripts/lib/images.sh).
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus-node-exporter curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupmod --gid 10003 prometheus \
 && usermod --uid 10003 --gid 10003 prometheus \
 && chown -R prometheus:prometheus /var/lib/prometheus
USER 10003:10003
EXPOSE 9100
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:9100/metrics"]
ENTRYPOINT ["prometheus-node-exporter"]
LABEL org.opencontainers.image.title="bookstore-node-exporter" \
      org.opencontainers.image.description="Prometheus node-exporter (Debian package) for the Bookstore fleet's nodes" \
      org.opencontainers.image.source="https://example.invalid/bookstore-fleet" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="Bookstore fleet"
