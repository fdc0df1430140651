# shellcheck shell=bash
# Shared by scripts/e2e-swarm and scripts/e2e-fleet: the images of the stack,
# built here with the real Dockerfiles (no registry can be pulled from): a
# Debian base made with debootstrap, the two programs from the binaries of the
# workspace's one build (scripts/lib/build.sh: the `ci` profile unless
# CARGO_PROFILE says otherwise), the proxy, and local stand-ins for mysql and
# redis. Source it after scripts/lib/services.sh; set IMAGES_WORK (a scratch
# folder) and IMAGE_TAG.
# shellcheck source=scripts/lib/build.sh
source scripts/lib/build.sh

BASE_IMAGE=bookstore/debian:bookworm
IMAGE_TAG=${IMAGE_TAG:-e2e}
STOREFRONT_IMAGE=bookstore/storefront:$IMAGE_TAG
SWARM_AGENT_IMAGE=bookstore/swarm-agent:$IMAGE_TAG
MYSQL_IMAGE=bookstore/mysql-standin:$IMAGE_TAG
REDIS_IMAGE=bookstore/redis-standin:$IMAGE_TAG
PROXY_IMAGE=bookstore/proxy:$IMAGE_TAG
BACKUP_IMAGE=bookstore/backup:$IMAGE_TAG
# A test mail server (scripts/e2e-swarm), not part of the shipped stack.
MAIL_IMAGE=bookstore/mail-standin:$IMAGE_TAG
PROMETHEUS_IMAGE=bookstore/prometheus:$IMAGE_TAG
ALERTMANAGER_IMAGE=bookstore/alertmanager:$IMAGE_TAG
NODE_EXPORTER_IMAGE=bookstore/node-exporter:$IMAGE_TAG
# shellcheck disable=SC2034 # used by the scripts that source this file
STACK_IMAGES=("$STOREFRONT_IMAGE" "$SWARM_AGENT_IMAGE" "$MYSQL_IMAGE" "$REDIS_IMAGE" "$PROXY_IMAGE" "$BACKUP_IMAGE")

# A Debian root made here, trimmed of docs and caches, as the base of every image.
build_base_image() {
  docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 && return 0
  command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap
  local root="$IMAGES_WORK/rootfs"
  rm -rf "$root"
  mkdir -p "$IMAGES_WORK"
  log "debootstrap bookworm (minbase) into $root"
  debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >"$IMAGES_WORK/debootstrap.log" 2>&1 ||
    { tail -20 "$IMAGES_WORK/debootstrap.log" >&2; return 1; }
  rm -rf "$root"/usr/share/{doc,man,info,locale}/* "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | docker import -c 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
  rm -rf "$root"
}

build_stack_images() {
  build_program_images
  build_support_images
}

# The storefront and the agent, from the binaries of the workspace's build.
build_program_images() {
  log "building the workspace ($CARGO_PROFILE profile; a no-op when scripts/test built it)"
  build_workspace
  log "building the storefront and swarm-agent images with the real Dockerfiles"
  local common=(--build-arg "RUNTIME_IMAGE=$BASE_IMAGE" --build-arg "BASE_IMAGE=$BASE_IMAGE")
  local prebuilt=(--target prebuilt --build-arg "PREBUILT_DIR=$BIN_DIR")
  build_one docker/storefront.Dockerfile "$STOREFRONT_IMAGE" "${common[@]}" "${prebuilt[@]}"
  build_one docker/swarm-agent.Dockerfile "$SWARM_AGENT_IMAGE" "${common[@]}" "${prebuilt[@]}"
}

# The images that need no Rust build: the stand-ins, the proxy, the backup job
# (scripts/test builds them while the workspace compiles).
build_support_images() {
  log "building the proxy, backup and stand-in images with the real Dockerfiles"
  local common=(--build-arg "RUNTIME_IMAGE=$BASE_IMAGE" --build-arg "BASE_IMAGE=$BASE_IMAGE")
  build_one docker/standins/mysql.Dockerfile "$MYSQL_IMAGE" "${common[@]}"
  build_one docker/standins/redis.Dockerfile "$REDIS_IMAGE" "${common[@]}"
  build_one docker/proxy.Dockerfile "$PROXY_IMAGE" "${common[@]}"
  build_one docker/backup.Dockerfile "$BACKUP_IMAGE" "${common[@]}"
  build_one docker/standins/mail.Dockerfile "$MAIL_IMAGE" "${common[@]}"
}

# monitoring.yml's images, from Debian's packages on the same base.
build_monitoring_images() {
  log "building the monitoring images"
  local common=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
  build_one docker/monitoring/prometheus.Dockerfile "$PROMETHEUS_IMAGE" "${common[@]}"
  build_one docker/monitoring/alertmanager.Dockerfile "$ALERTMANAGER_IMAGE" "${common[@]}"
  build_one docker/monitoring/node-exporter.Dockerfile "$NODE_EXPORTER_IMAGE" "${common[@]}"
}

# build_one DOCKERFILE IMAGE [ARGS…]: the classic builder, the only one without buildx.
build_one() {
  local file=$1 image=$2
  shift 2
  mkdir -p "$IMAGES_WORK"
  DOCKER_BUILDKIT=0 docker build -q "$@" -f "$file" -t "$image" . >/dev/null 2>>"$IMAGES_WORK/build.log" ||
    { tail -30 "$IMAGES_WORK/build.log" >&2; return 1; }
}
