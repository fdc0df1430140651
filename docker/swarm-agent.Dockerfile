# The swarm-agent image, for running `swarm-agent serve` as a global service
# on managers (stack.yml). On nodes themselves the agent runs from systemd
# (swarm/). Same two ways to build as docker/storefront.Dockerfile:
#   docker build -f docker/swarm-agent.Dockerfile -t bookstore/swarm-agent .
#   docker build -f docker/swarm-agent.Dockerfile --target prebuilt \
#     --build-arg RUNTIME_IMAGE=bookstore/debian:bookworm -t bookstore/swarm-agent .
ARG RUNTIME_IMAGE=debian:bookworm-slim
ARG RUST_IMAGE=rust:1.95-slim-bookworm

FROM ${RUNTIME_IMAGE} AS runtime
RUN groupadd --system --gid 10002 swarm-agent \
 && useradd --system --uid 10002 --gid swarm-agent --no-create-home swarm-agent
ENV SWARM_AGENT_LOG_FORMAT=json
# Not run here: bootstrap-manager.sh copies it onto the founder with the
# binary (the managers' user data has no room left under EC2's 16 KB).
COPY swarm/data-secrets /usr/local/lib/swarm-agent/data-secrets
# Non-root: the stack adds the host's docker group (DOCKER_GID) for the engine socket.
USER 10002:10002
EXPOSE 9465 9466
ENTRYPOINT ["swarm-agent"]
CMD ["serve"]
LABEL org.opencontainers.image.title="bookstore-swarm-agent" \
      org.opencontainers.image.description="Docker Swarm node companion: join, drain and leave, reconcile, report" \
      org.opencontainers.image.source="https://example.invalid/bookstore-fleet" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.vendor="Bookstore fleet"

FROM runtime AS prebuilt
# target/release by default; the tests pass the folder of their one build.
ARG PREBUILT_DIR=target/release
COPY ${PREBUILT_DIR}/swarm-agent /usr/local/bin/swarm-agent

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p swarm-agent \
 && install -m 0755 target/release/swarm-agent /swarm-agent

FROM runtime AS release
COPY --from=build /swarm-agent /usr/local/bin/swarm-agent
