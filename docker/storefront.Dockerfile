# The storefront image: one file for production and for the local tests.
#
#   Production (a registry and the Rust image are reachable):
#     docker build -f docker/storefront.Dockerfile -t bookstore/storefront .
#   A machine without a registry (scripts/e2e-swarm): build the binary on the
#   host with `cargo build --release -p storefront`, then
#     docker build -f docker/storefront.Dockerfile --target prebuilt \
#       --build-arg RUNTIME_IMAGE=bookstore/debian:bookworm -t bookstore/storefront .
#
# Stage order matters: the classic builder builds every stage before the
# target, so `prebuilt` comes before the stage that needs the Rust image.
ARG RUNTIME_IMAGE=debian:bookworm-slim
ARG RUST_IMAGE=rust:1.95-slim-bookworm

FROM ${RUNTIME_IMAGE} AS runtime
RUN groupadd --system --gid 10001 storefront \
 && useradd --system --uid 10001 --gid storefront --home-dir /var/lib/storefront --create-home storefront
# Images listen on every interface; METRICS_ADDR is never published, only scraped inside the network.
ENV LISTEN_ADDR=0.0.0.0:8080 \
    METRICS_ADDR=0.0.0.0:9464 \
    LOG_FORMAT=json \
    SHUTDOWN_DRAIN_MS=5000 \
    DATABASE_URL=sqlite:///var/lib/storefront/bookstore.db
WORKDIR /var/lib/storefront
USER 10001:10001
EXPOSE 8080 9464
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=5s --timeout=3s --start-period=60s --retries=3 CMD ["storefront", "healthcheck"]
ENTRYPOINT ["storefront"]
CMD ["serve"]
LABEL org.opencontainers.image.title="bookstore-storefront" \
      org.opencontainers.image.description="The Bookstore shop: stateless replicas over MySQL and Redis" \
      org.opencontainers.image.source="https://example.invalid/bookstore-fleet" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.vendor="Bookstore fleet"

# A binary built outside, on the same Debian release as the runtime image.
FROM runtime AS prebuilt
# target/release by default; the tests pass the folder of their one build.
ARG PREBUILT_DIR=target/release
COPY ${PREBUILT_DIR}/storefront /usr/local/bin/storefront

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p storefront \
 && install -m 0755 target/release/storefront /storefront

FROM runtime AS release
COPY --from=build /storefront /usr/local/bin/storefront
