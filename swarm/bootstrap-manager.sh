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
# labels the data node for MySQL and Redis, creates the stack's secrets
# (swarm/data-secrets: only those missing), and prints the deploy command.
# Only one manager founds a swarm: init claims the token store's `founder`
# entry first, and refuses (exit 4) when another manager holds it.
# Options: --join-if-founded (the managers' user data): when another manager
#            founds the swarm, join it as a manager instead and exit 4
#          --advertise-addr ADDR (default: the engine's choice)
#          --set SWARM_AGENT_KEY=VALUE (extra agent settings, e.g. endpoints)
#          --storefront-image IMAGE (only shown in the printed deploy command)
#          --data-volume VOL-ID: the shop's EBS data volume. A manager in its zone
#            that finds it free attaches it, formats it if blank, mounts it at
#            /var/lib/bookstore-data and becomes the data node (the
#            bookstore.mysql label moves to it). Without it, the founder is the
#            data node and the data stays on its root disk.
#          --ec2-endpoint URL (tests, VPC endpoints)
#          --database HOST:PORT --database-secret ID --cache HOST:PORT --cache-secret ID:
#            managed data (RDS and ElastiCache): the founder makes the stack's
#            secrets from these and Secrets Manager (swarm/data-secrets);
#            no data node. Not with --data-volume. An empty value is no value.
#          --secrets-endpoint URL, --ca-bundle-url URL (tests, VPC endpoints)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

TOKEN_STORE=ssm:/swarm/bookstore
REGION=
AGENT_IMAGE=
STOREFRONT_IMAGE=
ADVERTISE=
JOIN_IF_FOUNDED=false
DATA_VOLUME=
EC2_ENDPOINT=
MANAGED=()
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
    --data-volume) DATA_VOLUME=$2; shift 2 ;;
    --ec2-endpoint) EC2_ENDPOINT=$2; shift 2 ;;
    --database|--database-secret|--cache|--cache-secret|--secrets-endpoint|--ca-bundle-url)
      [ -z "$2" ] || MANAGED+=("$1" "$2"); shift 2 ;;
    --join-if-founded) JOIN_IF_FOUNDED=true; shift ;;
    -h|--help) usage ;;
    *) echo "unknown argument: $1" >&2; usage 2 ;;
  esac
done
[ -n "$AGENT_IMAGE" ] || { echo "--agent-image is required" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "run as root" >&2; exit 1; }
[ -z "$DATA_VOLUME" ] || [ ${#MANAGED[@]} -eq 0 ] || { echo "--data-volume or managed data (--database …), not both" >&2; exit 2; }

log() { echo "bootstrap-manager: $*"; }

if ! command -v docker >/dev/null; then
  log "installing the Docker engine"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io amazon-ecr-credential-helper
fi
systemctl enable --now docker.service
timeout 120 sh -c 'until docker info >/dev/null 2>&1; do sleep 1; done' ||
  { echo "bootstrap-manager: the Docker engine did not answer within 120 s (journalctl -u docker)" >&2; exit 1; }

# The agent's image carries the binary and swarm/data-secrets.
HELPERS=/usr/local/lib/swarm-agent
if [ ! -x /usr/local/bin/swarm-agent ] || [ ! -x $HELPERS/data-secrets ]; then
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
  mkdir -p $HELPERS && docker cp "$container:$HELPERS/data-secrets" $HELPERS/data-secrets
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

# The shop's data volume (EBS): it outlives any instance, and only an
# instance in its zone can attach it. Returns 1 when it is not this node's.
DATA_DIR=/var/lib/bookstore-data
imds() {
  curl -fsS -H "X-aws-ec2-metadata-token: $(curl -fsS -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' \
    http://169.254.169.254/latest/api/token)" "http://169.254.169.254/latest/meta-data/$1"
}
ec2() { aws ec2 --region "$REGION" ${EC2_ENDPOINT:+--endpoint-url "$EC2_ENDPOINT"} --output text "$@"; }
attach_data_volume() {
  local instance zone state vol_zone holder holder_state
  instance=$(imds instance-id) && zone=$(imds placement/availability-zone) || return 1
  # A replaced data node may still be shutting down, its volume not yet
  # detached: wait for EBS (5 min at most), never take it from a live one.
  for _ in $(seq 1 60); do
    read -r state vol_zone holder < <(ec2 describe-volumes --volume-ids "$DATA_VOLUME" \
      --query 'Volumes[0].[State,AvailabilityZone,Attachments[0].InstanceId]') || return 1
    [ "$vol_zone" = "$zone" ] || { log "data volume $DATA_VOLUME is in $vol_zone, not $zone"; return 1; }
    if [ "$state" = available ]; then
      # Refused when another manager was first: the next look says who.
      ec2 attach-volume --volume-id "$DATA_VOLUME" --instance-id "$instance" --device /dev/xvdf >/dev/null && return 0
    elif [ "$holder" = "$instance" ]; then
      return 0
    else
      holder_state=$(ec2 describe-instances --instance-ids "$holder" --query 'Reservations[0].Instances[0].State.Name')
      case $holder_state in
        shutting-down | terminated) log "data volume $DATA_VOLUME: $holder is $holder_state, waiting for EBS to detach it" ;;
        *) log "data volume $DATA_VOLUME is attached to $holder ($holder_state)"; return 1 ;;
      esac
    fi
    sleep 5
  done
  return 1
}

# Nitro names the device after the volume; Xen gives the requested name.
data_device() {
  local by_id=/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${DATA_VOLUME/-/}
  for _ in $(seq 1 90); do
    if [ -b "$by_id" ]; then echo "$by_id"; return; fi
    if [ -b /dev/xvdf ]; then echo /dev/xvdf; return; fi
    sleep 2
  done
  echo "bootstrap-manager: $DATA_VOLUME attached, no device after 180 s" >&2
  return 1
}

mount_data_volume() {
  local dev status=0
  dev=$(data_device)
  # Formatted only when blkid's probe finds no signature (exit 2) and the
  # first MiB reads back as zeros (a new volume): never over data, never
  # on a read error.
  blkid -p "$dev" >/dev/null || status=$?
  case $status in
    0) ;;
    2)
      cmp -s -n 1048576 "$dev" /dev/zero ||
        { echo "bootstrap-manager: $dev has no filesystem but is not blank: not formatting it" >&2; exit 1; }
      mkfs.ext4 -q -L bookstore-data "$dev"
      ;;
    *) echo "bootstrap-manager: blkid -p $dev failed ($status)" >&2; exit 1 ;;
  esac
  mkdir -p "$DATA_DIR"
  mountpoint -q "$DATA_DIR" || mount -o noatime "$dev" "$DATA_DIR"
  grep -q " $DATA_DIR " /etc/fstab || echo "LABEL=bookstore-data $DATA_DIR ext4 noatime,nofail 0 2" >>/etc/fstab
  # Only on the volume: on a root disk where it is not mounted, the stack's
  # bind mounts fail (MySQL never starts empty beside its real data).
  mkdir -p "$DATA_DIR/mysql" "$DATA_DIR/redis"
  log "data volume $DATA_VOLUME mounted at $DATA_DIR: this is the data node"
}

# node_update ARGS…: `docker node update`, again while Swarm answers "update
# out of sequence": the agent sets this node's labels at the same moment
# (`swarm-agent join`), and a node's spec takes one update at a time.
node_update() {
  local attempt out
  for attempt in 1 2 3 4 5 6 7 8 9 10; do
    if out=$(docker node update "$@" 2>&1 >/dev/null); then return 0; fi
    case $out in
      *"out of sequence"*) sleep 1 ;;
      *) echo "$out" >&2; return 1 ;;
    esac
  done
  echo "bootstrap-manager: docker node update $*: still out of sequence after $attempt tries" >&2
  return 1
}

# The data node carries the label that places MySQL and Redis; one node only.
label_data_node() {
  local self other
  self=$(docker info --format '{{.Swarm.NodeID}}')
  node_update --label-add bookstore.mysql=true "$self"
  for other in $(docker node ls -q --filter node.label=bookstore.mysql=true); do
    [ "$other" = "$self" ] || node_update --label-rm bookstore.mysql "$other" || true
  done
  log "labelled this node bookstore.mysql=true: MySQL's and Redis's data live here"
}

data_node=false
if [ ${#MANAGED[@]} -gt 0 ]; then
  data_node=false
elif [ -z "$DATA_VOLUME" ]; then
  data_node=founder
elif attach_data_volume; then
  mount_data_volume
  data_node=true
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
case $data_node in
  true) label_data_node ;;
  founder) ! $founded_here || label_data_node ;;
esac
if ! $founded_here; then
  log "done: this manager joined the swarm; the founder made the secrets"
  exit 4
fi

"$HELPERS/data-secrets" ${REGION:+--region "$REGION"} ${MANAGED[@]+"${MANAGED[@]}"}

files="-c stack.yml" && [ ${#MANAGED[@]} -eq 0 ] || files+=" -c stack.external.yml"
log "done. Deploy the stack from a checkout of this repository (swarm/deploy-stack and deploy.env do the same):"
log "  STOREFRONT_IMAGE=${STOREFRONT_IMAGE:-REGISTRY/bookstore/storefront:TAG} PUBLIC_ORIGIN=https://YOUR-SHOP-DOMAIN \\"
log "  PROXY_IMAGE=REGISTRY/bookstore/proxy:TAG BACKUP_IMAGE=REGISTRY/bookstore/backup:TAG \\"
log "  BACKUP_S3_BUCKET=YOUR-BACKUP-BUCKET \\"
log "  docker stack deploy --with-registry-auth $files bookstore"
