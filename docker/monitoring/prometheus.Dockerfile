# Prometheus for the Bookstore fleet (monitoring.yml), from Debian's package
# on the debootstrap base like the stand-ins (docker/standins/). The scrape
# configuration and the alert rules are baked in, so the rules that run are
# the ones scripts/test-monitoring tested:
#   docker build -f docker/monitoring/prometheus.Dockerfile -t bookstore/prometheus .
# Debian's image where it can be pulled (scripts/publish-images); the tests
# pass their debootstrap root of the same release (scripts/lib/images.sh).
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
# The package makes the `prometheus` user; it gets a fixed uid (10003) so the
# stack can run it with the engine's docker group (dockerswarm_sd_configs
# reads the node list from the socket).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus curl \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /prometheus /etc/prometheus/rules \
 && groupmod --gid 10003 prometheus \
 && usermod --uid 10003 --gid 10003 prometheus \
 && chown -R prometheus:prometheus /var/lib/prometheus /prometheus
COPY monitoring/prometheus.yml /etc/prometheus/prometheus.yml
COPY monitoring/rules/ /etc/prometheus/rules/
RUN promtool check config /etc/prometheus/prometheus.yml
USER 10003:10003
VOLUME /prometheus
WORKDIR /prometheus
EXPOSE 9090
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:9090/-/ready"]
ENTRYPOINT ["prometheus"]
# Retention: 15 days or 8 GB, whichever comes first (monitoring.yml may override).
CMD ["--config.file=/etc/prometheus/prometheus.yml", \
     "--storage.tsdb.path=/prometheus", \
     "--storage.tsdb.retention.time=15d", \
     "--storage.tsdb.retention.size=8GB"]
LABEL org.opencontainers.image.title="bookstore-prometheus" \
      org.opencontainers.image.description="Prometheus (Debian package) with the Bookstore fleet's scrape configuration and alert rules" \
      org.opencontainers.image.source="https://example.invalid/bookstore-fleet" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="Bookstore fleet"
