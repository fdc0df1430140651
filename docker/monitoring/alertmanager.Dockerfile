# Alertmanager for the Bookstore fleet (monitoring.yml), from Debian's package
# on the debootstrap base. The configuration with the operator's receiver
# comes from a Docker secret (monitoring/alertmanager.yml is the template);
# the template is also baked in so the image starts on its own.
#   docker build -f docker/monitoring/alertmanager.Dockerfile -t bookstore/alertmanager .
# Debian's image where it can be pulled (scripts/publish-images); the tests
# pass their debootstrap root of the same release (scripts/lib/images.sh).
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus-alertmanager curl \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /alertmanager \
 && groupmod --gid 10003 prometheus \
 && usermod --uid 10003 --gid 10003 prometheus \
 && chown -R prometheus:prometheus /var/lib/prometheus /alertmanager
COPY monitoring/alertmanager.yml /etc/alertmanager/alertmanager.yml
RUN amtool check-config /etc/alertmanager/alertmanager.yml
USER 10003:10003
VOLUME /alertmanager
WORKDIR /alertmanager
EXPOSE 9093
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:9093/-/ready"]
ENTRYPOINT ["prometheus-alertmanager"]
CMD ["--config.file=/etc/alertmanager/alertmanager.yml", \
     "--storage.path=/alertmanager", \
     "--cluster.listen-address="]
LABEL org.opencontainers.image.title="bookstore-alertmanager" \
      org.opencontainers.image.description="Prometheus Alertmanager (Debian package) for the Bookstore fleet" \
      org.opencontainers.image.source="https://example.invalid/bookstore-fleet" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="Bookstore fleet"
