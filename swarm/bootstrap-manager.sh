#!/usr/bin/env bash
# The first manager's bootstrap, run once by hand (or as its user data) on the
# instance that founds the swarm. Idempotent: running it again changes nothing
# that is already in place.
#
#   sudo swarm/bootstrap-manager.sh --token-store ssm:/bookstore/swarm --region eu-west-1 \
#        --agent-image registry.example.com/bookstore/swarm-agent:1
#
# It installs the engine and the agent, initialises the swarm and publishes its
# join tokens (swarm-agent init), labels this node for MySQL, creates the
# stack's secrets with random passwords (only those missing), and prints the
# deploy command.
set -euo pipefail

TOKEN_STORE=ssm:/bookstore/swarm
REGION=
AGENT_IMAGE=
usage() { sed -n '2,12p' "$0"; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --token-store) TOKEN_STORE=$2; shift 2 ;;
    --region) REGION=$2; shift 2 ;;
    --agent-image) AGENT_IMAGE=$2; shift 2 ;;
    -h|--help) usage ;;
    *) echo "unknown argument: $1" >&2; usage 2 ;;
  esac
done
[ -n "$AGENT_IMAGE" ] || { echo "--agent-image is required" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "run as root" >&2; exit 1; }

log() { echo "bootstrap-manager: $*"; }

if ! command -v docker >/dev/null; then
  log "installing the Docker engine"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io
  systemctl enable --now docker
fi

if [ ! -x /usr/local/bin/swarm-agent ]; then
  log "installing swarm-agent from $AGENT_IMAGE"
  docker run --rm --entrypoint cat "$AGENT_IMAGE" /usr/local/bin/swarm-agent >/usr/local/bin/swarm-agent
  chmod 0755 /usr/local/bin/swarm-agent
fi

mkdir -p /etc/swarm-agent
if [ ! -f /etc/swarm-agent/api-secret ]; then
  head -c 32 /dev/urandom | base64 >/etc/swarm-agent/api-secret
  chmod 0600 /etc/swarm-agent/api-secret
  log "made the agents' API secret; publish it for workers:"
  log "  aws ssm put-parameter --type SecureString --name ${TOKEN_STORE#ssm:}/api-secret --value file:///etc/swarm-agent/api-secret"
fi
cat >/etc/swarm-agent.env <<ENV
SWARM_AGENT_TOKEN_STORE=$TOKEN_STORE
${REGION:+SWARM_AGENT_AWS_REGION=$REGION}
SWARM_AGENT_API_SECRET_FILE=/etc/swarm-agent/api-secret
SWARM_AGENT_LOG_FORMAT=json
ENV

log "initialising the swarm (if needed) and publishing the join tokens"
swarm-agent init

node=$(docker info --format '{{.Swarm.NodeID}}')
docker node update --label-add bookstore.mysql=true "$node" >/dev/null

random() { head -c 24 /dev/urandom | base64 | tr -d '/+='; }
secret_exists() { docker secret inspect "$1" >/dev/null 2>&1; }
if ! secret_exists mysql_password; then
  mysql_pw=$(random); redis_pw=$(random)
  printf '%s' "$mysql_pw" | docker secret create mysql_password - >/dev/null
  printf '%s' "$(random)" | docker secret create mysql_root_password - >/dev/null
  printf '%s' "$redis_pw" | docker secret create redis_password - >/dev/null
  printf 'mysql://bookstore:%s@mysql:3306/bookstore' "$mysql_pw" | docker secret create storefront_database_url - >/dev/null
  printf 'redis://:%s@redis:6379' "$redis_pw" | docker secret create storefront_redis_url - >/dev/null
  log "created the stack's secrets"
fi
secret_exists swarm_agent_api_secret || docker secret create swarm_agent_api_secret /etc/swarm-agent/api-secret >/dev/null

log "done. Deploy with:"
log "  STOREFRONT_IMAGE=registry.example.com/bookstore/storefront:1 SWARM_AGENT_IMAGE=$AGENT_IMAGE \\"
log "  DOCKER_GID=\$(getent group docker | cut -d: -f3) PUBLIC_ORIGIN=https://shop.example.com \\"
log "  docker stack deploy --with-registry-auth -c stack.yml bookstore"
