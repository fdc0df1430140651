# shellcheck shell=bash
# Shared by scripts/test and scripts/dev-fleet: installs MariaDB and Redis from
# Debian's packages when missing, and runs private instances of them on their
# own data directory and ports, so a developer's own services are untouched.
# Source it; it defines functions and changes nothing by itself.

SERVICES_DIR=${SERVICES_DIR:-"$(pwd)/.tmp/services"}
# Set when this shell started the service, so that it stops only its own
# (a developer's running dev-fleet keeps its database through a test run).
MARIADB_STARTED_HERE=false
REDIS_STARTED_HERE=false
MARIADB_PORT=${MARIADB_PORT:-3307}
REDIS_PORT=${REDIS_PORT:-6380}

# Each line says how long the script has run, so a slow step shows in CI's log
# (bold on a terminal; plain text in a log file).
if [ -t 2 ]; then LOG_BOLD=$'\033[1m' LOG_PLAIN=$'\033[0m'; else LOG_BOLD="" LOG_PLAIN=""; fi
log() { printf '%s==> [%dm%02ds] %s%s\n' "$LOG_BOLD" $((SECONDS / 60)) $((SECONDS % 60)) "$*" "$LOG_PLAIN" >&2; }

# shellcheck source=scripts/lib/apt.sh
source "$(dirname "${BASH_SOURCE[0]}")/apt.sh"
apt_updated=false
apt_install() {
  if [ "$apt_updated" = false ]; then
    log "apt-get update"
    apt_get update
    apt_updated=true
  fi
  log "installing $*"
  apt_get install --no-install-recommends "$@" >/dev/null
}

ensure_packages() {
  local missing=()
  command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || missing+=(mariadb-server mariadb-client)
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  # The TLS test (tests/faults.rs) makes its certificates with openssl.
  command -v openssl >/dev/null 2>&1 || missing+=(openssl)
  if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi
}

# The monitoring tools (promtool, amtool, the node exporter), for
# scripts/test-monitoring and the backup image's metrics check; scripts/test
# fetches them during the build.
ensure_monitoring_packages() {
  local missing=()
  command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
  command -v amtool >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
  command -v prometheus-node-exporter >/dev/null 2>&1 || missing+=(prometheus-node-exporter)
  if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi
}

# The benchmark's load generator and its proxy (scenario 1b); scripts/test
# fetches them during the build.
ensure_bench_packages() {
  local missing=()
  command -v wrk >/dev/null 2>&1 || missing+=(wrk)
  command -v curl >/dev/null 2>&1 || missing+=(curl)
  command -v haproxy >/dev/null 2>&1 || missing+=(haproxy)
  if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi
}

# The fleet test's registry and its node image's packages (the user data's
# `packages:`): scripts/test fetches them during the build, scripts/e2e-fleet
# when run alone.
ensure_fleet_packages() {
  local pkg missing=()
  for pkg in docker-registry amazon-ecr-credential-helper awscli; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi
}

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local limit=$1 what=$2; shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      echo "timed out after ${limit}s waiting for $what" >&2
      return 1
    fi
    sleep 0.2
  done
}

start_mariadb() {
  local dir="$SERVICES_DIR/mariadb"
  local sock="$dir/mysqld.sock"
  mkdir -p "$dir"
  if [ ! -d "$dir/data/mysql" ]; then
    log "initialising a private MariaDB in $dir"
    mariadb-install-db --datadir="$dir/data" --user="$(id -un)" --auth-root-authentication-method=socket \
      --skip-test-db >"$dir/install.log" 2>&1 || { cat "$dir/install.log" >&2; return 1; }
  fi
  if ! mariadb-admin --socket="$sock" ping >/dev/null 2>&1; then
    log "starting MariaDB on 127.0.0.1:$MARIADB_PORT"
    MARIADB_STARTED_HERE=true
    (/usr/sbin/mariadbd --no-defaults --datadir="$dir/data" --socket="$sock" --port="$MARIADB_PORT" \
      --bind-address=127.0.0.1 --user="$(id -un)" --pid-file="$dir/mysqld.pid" \
      --log-error="$dir/error.log" --innodb-buffer-pool-size=1G --max-connections=500 \
      --innodb-flush-log-at-trx-commit=2 --skip-log-bin &) 
    wait_for 60 MariaDB mariadb-admin --socket="$sock" ping || { tail -20 "$dir/error.log" >&2; return 1; }
  fi
  mariadb --socket="$sock" -e "CREATE USER IF NOT EXISTS 'bookstore'@'127.0.0.1' IDENTIFIED BY 'bookstore';
    GRANT ALL PRIVILEGES ON *.* TO 'bookstore'@'127.0.0.1'; FLUSH PRIVILEGES;"
  # Each test makes its own database `t_…`; the previous run's are dropped here.
  mariadb --socket="$sock" -N -e "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE 't\\_%'" |
    while read -r db; do mariadb --socket="$sock" -e "DROP DATABASE \`$db\`"; done
  export TEST_MYSQL_URL="mysql://bookstore:bookstore@127.0.0.1:$MARIADB_PORT"
}

stop_mariadb() {
  local pid_file="$SERVICES_DIR/mariadb/mysqld.pid"
  if [ -f "$pid_file" ]; then kill "$(cat "$pid_file")" 2>/dev/null || true; fi
}

start_redis() {
  local dir="$SERVICES_DIR/redis"
  mkdir -p "$dir"
  if ! redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
    log "starting Redis on 127.0.0.1:$REDIS_PORT"
    REDIS_STARTED_HERE=true
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
      --dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
    wait_for 20 Redis redis-cli -p "$REDIS_PORT" ping
  fi
  export TEST_REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
}

stop_redis() {
  redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
}

stop_services_started_here() {
  if [ "$REDIS_STARTED_HERE" = true ]; then stop_redis; fi
  if [ "$MARIADB_STARTED_HERE" = true ]; then stop_mariadb; fi
}
