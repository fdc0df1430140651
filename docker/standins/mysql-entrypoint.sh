#!/bin/bash
# Initialises an empty data directory from the official image's variables, then runs the server.
set -euo pipefail

# VAR or the contents of VAR_FILE (a Docker secret).
file_env() {
  local var=$1 file_var="${1}_FILE"
  if [ -n "${!file_var:-}" ]; then
    export "$var"="$(<"${!file_var}")"
  fi
}
file_env MYSQL_PASSWORD
file_env MYSQL_ROOT_PASSWORD
: "${MYSQL_ROOT_PASSWORD:?MYSQL_ROOT_PASSWORD or MYSQL_ROOT_PASSWORD_FILE is required}"

sql_quote() { printf "%s" "${1//\'/\'\'}"; }
datadir=/var/lib/mysql
chown mysql:mysql "$datadir" /run/mysqld

if [ ! -d "$datadir/mysql" ]; then
  echo "initialising $datadir"
  mariadb-install-db --user=mysql --datadir="$datadir" --skip-test-db >/dev/null
  mariadbd --user=mysql --datadir="$datadir" --skip-networking --socket=/run/mysqld/init.sock &
  init_pid=$!
  for _ in $(seq 1 60); do
    mariadb-admin --socket=/run/mysqld/init.sock ping >/dev/null 2>&1 && break
    sleep 0.5
  done
  {
    echo "ALTER USER 'root'@'localhost' IDENTIFIED BY '$(sql_quote "$MYSQL_ROOT_PASSWORD")';"
    if [ -n "${MYSQL_DATABASE:-}" ]; then
      echo "CREATE DATABASE IF NOT EXISTS \`${MYSQL_DATABASE}\`;"
    fi
    if [ -n "${MYSQL_USER:-}" ] && [ -n "${MYSQL_PASSWORD:-}" ]; then
      echo "CREATE USER '$(sql_quote "$MYSQL_USER")'@'%' IDENTIFIED BY '$(sql_quote "$MYSQL_PASSWORD")';"
      echo "GRANT ALL PRIVILEGES ON \`${MYSQL_DATABASE:-*}\`.* TO '$(sql_quote "$MYSQL_USER")'@'%';"
    fi
  } | mariadb --socket=/run/mysqld/init.sock -uroot
  kill "$init_pid"
  wait "$init_pid" || true
  echo "initialised"
fi

if [ "$1" = mariadbd ] || [ "$1" = mysqld ]; then
  shift
  exec mariadbd --user=mysql --datadir="$datadir" --bind-address=0.0.0.0 --port=3306 --skip-name-resolve "$@"
fi
exec "$@"
