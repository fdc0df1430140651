#!/usr/bin/env bash
# The swarm's one-time bootstrap, run as root on a manager (by hand, or by
# every manager's user data). Idempotent: running it again changes nothing
# that is already in place.
#
#   sudo swarm/bootstrap-manager.sh --token-store ssm:/swarm/bookstore --region eu-west-1 \
#        --agent-image 123456789012.dkr.ecr.eu-west-1.amazonaws.com/bookstore/swarm-agent:1
#
# It installs the engine and the agent, puts the AMI's `admin` user in the
# docker group (deploys go through SSH), initialises the swarm and publishes
# what other nodes read (join tokens, manager addresses, cluster id, the
# agents' API secret: swarm-agent init), starts the agent's units here,
# labels this node for MySQL and Redis, creates the stack's five secrets with
# random passwords (only those missing), and prints the deploy command.
# Only one manager founds a swarm: init claims the token store's `founder`
# entry first, and refuses (exit 4) when another manager holds it.
# Options: --join-if-founded (the managers' user data): when another manager
#            founds the swarm, join it as a manager instead and exit 4
#          --advertise-addr ADDR (default: the engine's choice)
#          --set SWARM_AGENT_KEY=VALUE (extra agent settings, e.g. endpoints)
#          --storefront-image IMAGE (only shown in the printed deploy command)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

TOKEN_STORE=ssm:/swarm/bookstore
REGION=
AGENT_IMAGE=
STOREFRONT_IMAGE=
ADVERTISE=
JOIN_IF_FOUNDED=false
EXTRA=()
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --token-store) TOKEN_STORE=$2; shift 2 ;;
    --region) REGION=$2; shift 2 ;;
    --agent-image) AGENT_IMAGE=$2; shift 2 ;;
    --storefront-image) STOREFRONT_IMAGE=$2; shift 2 ;;
    --advertise-addr) ADVERTISE=$2; shift 2 ;;
    --set) EXTRA+=("$2"); shift 2 ;;
    --join-if-founded) JOIN_IF_FOUNDED=true; shift ;;
    -h|--help) usage ;;
    *) echo "unknown argument: $1" >&2; usage 2 ;;
  esac
done
[ -n "$AGENT_IMAGE" ] || { echo "--agent-image is required" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "run as root" >&2; exit 1; }

log() { echo "bootstrap-manager: $*"; }

if ! command -v docker >/dev/null; then
  log "installing the Docker engine"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io amazon-ecr-credential-helper
fi
systemctl enable --now docker.service
timeout 120 sh -c 'until docker info >/dev/null 2>&1; do sleep 1; done' ||
  { echo "bootstrap-manager: the Docker engine did not answer within 120 s (journalctl -u docker)" >&2; exit 1; }

if [ ! -x /usr/local/bin/swarm-agent ]; then
  log "installing swarm-agent from $AGENT_IMAGE"
  registry=${AGENT_IMAGE%%/*}
  case "$registry" in
    *.dkr.ecr.*.amazonaws.com)
      mkdir -p /root/.docker
      [ -f /root/.docker/config.json ] ||
        printf '{"credHelpers": {"%s": "ecr-login"}}\n' "$registry" >/root/.docker/config.json
      ;;
  esac
  for attempt in 1 2 3 4 5 6; do
    docker pull --quiet "$AGENT_IMAGE" >/dev/null && break
    [ "$attempt" -lt 6 ] || { echo "bootstrap-manager: could not pull $AGENT_IMAGE" >&2; exit 1; }
    log "pull attempt $attempt failed; retrying in $((attempt * 5)) s"
    sleep $((attempt * 5))
  done
  container=$(docker create "$AGENT_IMAGE")
  docker cp "$container:/usr/local/bin/swarm-agent" /usr/local/bin/swarm-agent.new
  docker rm "$container" >/dev/null
  chmod 0755 /usr/local/bin/swarm-agent.new
  /usr/local/bin/swarm-agent.new --version >/dev/null
  mv /usr/local/bin/swarm-agent.new /usr/local/bin/swarm-agent
fi

# Deploys reach a manager's engine over SSH as the AMI's login user (Debian's
# `admin`, which already has passwordless sudo): swarm/deploy-stack.
if id admin >/dev/null 2>&1 && getent group docker >/dev/null; then
  usermod -aG docker admin
  log "added admin to the docker group (DOCKER_HOST=ssh://admin@THIS-MANAGER works)"
fi

# The same settings the other managers get from their user data.
mkdir -p /etc/swarm-agent
printf '%s\n' "$AGENT_IMAGE" >/etc/swarm-agent/agent-image
{
  echo "SWARM_AGENT_TOKEN_STORE=$TOKEN_STORE"
  [ -z "$REGION" ] || echo "SWARM_AGENT_AWS_REGION=$REGION"
  echo "SWARM_AGENT_ROLE=manager"
  echo "SWARM_AGENT_METRICS_ADDR=0.0.0.0:9465"
  echo "SWARM_AGENT_LB_CHECK_URL=http://127.0.0.1:8080/healthz"
  echo "SWARM_AGENT_LB_DRAIN_DELAY=30s"
  echo "SWARM_AGENT_LOG_FORMAT=json"
  for kv in "${EXTRA[@]}"; do echo "$kv"; done
} >/etc/swarm-agent.env
chmod 0600 /etc/swarm-agent.env

log "initialising the swarm (unless founded already) and publishing tokens, managers and the API secret to $TOKEN_STORE"
founded_here=true
status=0
(
  set -a
  # shellcheck disable=SC1091
  . /etc/swarm-agent.env
  set +a
  swarm-agent init ${ADVERTISE:+--advertise-addr "$ADVERTISE"}
) || status=$?
case $status in
  0) ;;
  4)
    $JOIN_IF_FOUNDED || exit 4
    founded_here=false
    log "another manager founds this swarm: joining it as a manager (swarm-agent.service)"
    ;;
  *) exit "$status" ;;
esac

log "starting the agent's units (join: a no-op on the founder; serve: API, republishing, reconciler)"
install -m 0644 "$here/systemd/swarm-agent.service" "$here/systemd/swarm-agent-serve.service" /etc/systemd/system/
systemctl daemon-reload
if ! systemctl enable --now swarm-agent.service; then
  # The serve unit still starts: a manager that failed to join shows in its metrics.
  systemctl enable --now swarm-agent-serve.service || true
  echo "bootstrap-manager: FAILED: swarm-agent join (journalctl -u swarm-agent)" >&2
  exit 1
fi
systemctl enable --now swarm-agent-serve.service
if ! $founded_here; then
  log "done: this manager joined the swarm; the founder labelled the data node and made the secrets"
  exit 4
fi

node=$(docker info --format '{{.Swarm.NodeID}}')
docker node update --label-add bookstore.mysql=true "$node" >/dev/null
log "labelled this node bookstore.mysql=true: MySQL's and Redis's volumes live here"

random() { head -c 24 /dev/urandom | base64 | tr -d '/+='; }
secret_exists() { docker secret inspect "$1" >/dev/null 2>&1; }
if ! secret_exists mysql_password; then
  mysql_pw=$(random); redis_pw=$(random)
  printf '%s' "$mysql_pw" | docker secret create mysql_password - >/dev/null
  printf '%s' "$(random)" | docker secret create mysql_root_password - >/dev/null
  printf '%s' "$redis_pw" | docker secret create redis_password - >/dev/null
  printf 'mysql://bookstore:%s@mysql:3306/bookstore' "$mysql_pw" | docker secret create storefront_database_url - >/dev/null
  printf 'redis://:%s@redis:6379' "$redis_pw" | docker secret create storefront_redis_url - >/dev/null
  log "created the stack's five secrets"
fi

log "done. Deploy the stack from a checkout of this repository on this manager:"
log "  STOREFRONT_IMAGE=${STOREFRONT_IMAGE:-REGISTRY/bookstore/storefront:TAG} PUBLIC_ORIGIN=https://YOUR-SHOP-DOMAIN \\"
log "  PROXY_IMAGE=REGISTRY/bookstore/proxy:TAG BACKUP_IMAGE=REGISTRY/bookstore/backup:TAG \\"
log "  BACKUP_S3_BUCKET=YOUR-BACKUP-BUCKET \\"
log "  docker stack deploy --with-registry-auth -c stack.yml bookstore"
