# A mail server for the stack's tests (scripts/e2e-swarm), not for production:
# aiosmtpd from Debian, accepting any mail on port 25 into a Maildir
# (/var/mail/inbox/new), which the test reads with `docker exec`.
ARG BASE_IMAGE=bookstore/debian:bookworm
FROM ${BASE_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-aiosmtpd \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/mail/inbox/cur /var/mail/inbox/new /var/mail/inbox/tmp
EXPOSE 25
CMD ["python3", "-m", "aiosmtpd", "-n", "-l", "0.0.0.0:25", "-c", "aiosmtpd.handlers.Mailbox", "/var/mail/inbox"]
