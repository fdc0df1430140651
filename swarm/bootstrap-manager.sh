#!/usr/bin/env bash
# The first manager's bootstrap, run once as root on the instance that founds
# the swarm (by hand, or as that instance's user data). Idempotent: running
# it again changes nothing that is already in place.
#
#   sudo swarm/bootstrap-manager.sh --token-store ssm:/swarm/bookstore --region eu-west-1 \
#        --agent-image 123456789012.dkr.ecr.eu-west-1.amazonaws.com/bookstore/swarm-agent:1 \
#        --storefront-image 123456789012.dkr.ecr.eu-west-1.amazonaws.com/bookstore/storefront:1
#
# It installs the engine and the agent, initialises the swarm and publishes
# what other nodes read (join tokens, manager addresses, cluster id, the
# agents' API secret: swarm-agent init), starts the agent's units here,
# labels this node for MySQL and Redis, creates the stack's six secrets with
# random passwords (only those missing), and prints the deploy command.
# Options: --advertise-addr ADDR (default: the engine's choice),
#          --set SWARM_AGENT_KEY=VALUE (extra agent settings, e.g. endpoints).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

TOKEN_STORE=ssm:/swarm/bookstore
REGION=
AGENT_IMAGE=
STOREFRONT_IMAGE=
ADVERTISE=
EXTRA=()
usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --token-store) TOKEN_STORE=$2; shift 2 ;;
    --region) REGION=$2; shift 2 ;;
    --agent-image) AGENT_IMAGE=$2; shift 2 ;;
    --storefront-image) STOREFRONT_IMAGE=$2; shift 2 ;;
    --advertise-addr) ADVERTISE=$2; shift 2 ;;
    --set) EXTRA+=("$2"); shift 2 ;;
    -h|--help) usage ;;
    *) echo "unknown argument: $1" >&2; usage 2 ;;
  esac
done
[ -n "$AGENT_IMAGE" ] || { echo "--agent-image is required" >&2; exit 2; }
[ -n "$STOREFRONT_IMAGE" ] || { echo "--storefront-image is required" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "run as root" >&2; exit 1; }

log() { echo "bootstrap-manager: $*"; }

if ! command -v docker >/dev/null; then
  log "installing the Docker engine"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io amazon-ecr-credential-helper
  systemctl enable --now docker
fi

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
  docker pull --quiet "$AGENT_IMAGE" >/dev/null
  container=$(docker create "$AGENT_IMAGE")
  docker cp "$container:/usr/local/bin/swarm-agent" /usr/local/bin/swarm-agent.new
  docker rm "$container" >/dev/null
  chmod 0755 /usr/local/bin/swarm-agent.new
  /usr/local/bin/swarm-agent.new --version >/dev/null
  mv /usr/local/bin/swarm-agent.new /usr/local/bin/swarm-agent
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

log "initialising the swarm (if needed) and publishing tokens, managers and the API secret to $TOKEN_STORE"
set -a
# shellcheck disable=SC1091
. /etc/swarm-agent.env
set +a
swarm-agent init ${ADVERTISE:+--advertise-addr "$ADVERTISE"}

log "starting the agent's units (join is a no-op here; serve: API, republishing, reconciler)"
install -m 0644 "$here/systemd/swarm-agent.service" "$here/systemd/swarm-agent-serve.service" /etc/systemd/system/
systemctl daemon-reload
systemctl enable --now swarm-agent.service swarm-agent-serve.service

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
log "  STOREFRONT_IMAGE=$STOREFRONT_IMAGE PUBLIC_ORIGIN=https://YOUR-SHOP-DOMAIN \\"
log "  PROXY_IMAGE=REGISTRY/bookstore/proxy:TAG BACKUP_IMAGE=REGISTRY/bookstore/backup:TAG \\"
log "  BACKUP_S3_BUCKET=YOUR-BACKUP-BUCKET \\"
log "  docker stack deploy --with-registry-auth -c stack.yml bookstore"
