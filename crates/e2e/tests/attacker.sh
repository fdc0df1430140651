#!/usr/bin/env bash
# What a client on the stack's own network tries (the scenario
# `clients_cannot_name_their_address_or_take_the_proxy` in swarm.rs runs it
# as a one-off job in the proxy's image). It reaches this node's proxy by its
# task address (tasks.proxy: the stack uses no virtual IPs) and prints one
# line per attempt:
#  1. proxy: 25 wrong logins through its node's proxy, each naming a new
#     address in X-Forwarded-For (and a new account);
#  2. replica: 5 more straight at a storefront replica, again naming new
#     addresses;
#  3. connections: 70 connections opened to the proxy at once, then served
#     and closed counted;
#  4. requests: 1,100 requests on one connection, counted by status.

# login URL N: a wrong password for account N, naming address N.
login() {
  local jar=/tmp/jar.$2 token
  token=$(curl -s -c "$jar" -b "$jar" "$1/login" | sed -n 's/.*name="csrf_token" value="\([0-9a-f]*\)".*/\1/p' | head -1)
  curl -s -o /dev/null -w "%{http_code} " -c "$jar" -b "$jar" -H "X-Forwarded-For: 198.51.100.$2" \
    --data-urlencode "email=spoofer-$2-$RANDOM@example.com" --data-urlencode password=wrong \
    --data-urlencode "csrf_token=$token" "$1/login"
}
echo "proxy: $(for i in $(seq 1 25); do login http://tasks.proxy:8080 "$i"; done)"
echo "replica: $(for i in $(seq 26 30); do login http://tasks.storefront:8080 "$i"; done)"

served=0 closed=0
for i in $(seq 10 79); do eval "exec $i<>/dev/tcp/tasks.proxy/8080" 2>/dev/null || true; done
sleep 1
for i in $(seq 10 79); do
  # shellcheck disable=SC2261 # >&"$i" is the connection's descriptor, not a second stderr
  printf "GET /healthz HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n" >&"$i" 2>/dev/null
  if timeout 3 head -c 12 <&"$i" 2>/dev/null | grep -q "HTTP/1.1 200"; then served=$((served + 1)); else closed=$((closed + 1)); fi
done
echo "connections: $served $closed"

args=()
for _ in $(seq 1 1100); do args+=(-o /dev/null http://tasks.proxy:8080/healthz); done
echo "requests: $(curl -s -w "%{http_code}\n" "${args[@]}" | sort | uniq -c | tr -s " \n" " ")"
