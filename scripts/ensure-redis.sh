#!/usr/bin/env bash
# Ensures a Redis server accepts connections on 127.0.0.1:6379 (or
# $REDIS_PORT), for the reply store's tests and the order example: starts
# Debian's redis-server when it is installed but not running, installs it
# first when it is missing and we are root, and waits until the port
# answers. The server it starts keeps nothing on disk. Anything else fails
# with what to do.
set -euo pipefail

host=127.0.0.1
port=${REDIS_PORT:-6379}
wait_seconds=${REDIS_WAIT_SECONDS:-30}

listening() { (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; }

fail() {
  echo "ensure-redis: $*" >&2
  echo "ensure-redis: to run the tests, start Redis on $host:$port," >&2
  echo "ensure-redis: e.g. 'apt-get install redis-server && redis-server --daemonize yes --bind 127.0.0.1 --save \"\"' as root." >&2
  exit 1
}

if listening; then
  exit 0
fi

server=$(command -v redis-server || true)
[ -z "$server" ] && [ -x /usr/bin/redis-server ] && server=/usr/bin/redis-server
if [ -z "$server" ]; then
  [ "$(id -u)" = 0 ] || fail "redis-server is not installed and we are not root to install it"
  command -v apt-get >/dev/null || fail "redis-server is not installed and there is no apt-get"
  echo "ensure-redis: installing Debian's redis-server" >&2
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q redis-server >/dev/null; then
    apt-get update -q >/dev/null
    apt-get install -y -q redis-server >/dev/null || fail "apt-get install redis-server failed"
  fi
  server=/usr/bin/redis-server
fi

# The package's install scripts may have started it already.
if ! listening; then
  echo "ensure-redis: starting $server on $host:$port" >&2
  "$server" --daemonize yes --bind "$host" --port "$port" --save "" --appendonly no \
    --dir /tmp --logfile /tmp/amqprpc-redis-"$port".log || fail "redis-server failed to start"
fi

for ((i = 0; i < wait_seconds * 4; i++)); do
  if listening; then
    exit 0
  fi
  sleep 0.25
done
fail "Redis did not accept connections on $host:$port within ${wait_seconds}s"
