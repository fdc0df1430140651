# The stack's backup job (stack.yml `backup`): consistent MySQL dumps,
# compressed, kept on a volume with a retention, shipped to S3 when
# configured, with Prometheus metrics on :9465/metrics. Debian's packages on
# the debootstrap base, like the stand-ins: mariadb-client (mariadb-dump
# also dumps MySQL 8), python3-boto3 for S3.
# Debian's image where it can be pulled (scripts/publish-images); the tests
# pass their debootstrap root of the same release (scripts/lib/images.sh).
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      mariadb-client python3 python3-boto3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10002 --home-dir /backups --shell /usr/sbin/nologin backup-job \
 && mkdir -p /backups && chown 10002:10002 /backups
COPY docker/backup/backup-job docker/backup/backup-metrics-server docker/backup/s3-copy /usr/local/bin/
USER 10002:10002
VOLUME /backups
EXPOSE 9465
# Healthy while the metrics answer and backups are not failing for longer than
# BACKUP_HEALTH_GRACE (10 min) in a row; BackupStale alerts on the age.
HEALTHCHECK --interval=30s --timeout=8s --retries=3 CMD ["backup-job", "health"]
LABEL org.opencontainers.image.title="bookstore-backup" \
      org.opencontainers.image.description="Scheduled MySQL dumps with retention, S3 shipping and Prometheus metrics" \
      org.opencontainers.image.source="https://example.invalid/bookstore-fleet" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.vendor="Bookstore fleet"
ENTRYPOINT ["backup-job"]
CMD ["loop"]
