#!/usr/bin/env bash
# Ensures a RabbitMQ broker accepts connections on 127.0.0.1:5672 (or
# $AMQP_PORT): starts Debian's rabbitmq-server when it is installed but
# stopped, installs it first when it is missing and we are root, and waits
# until the port answers. Anything else fails with what to do.
set -euo pipefail

host=127.0.0.1
port=${AMQP_PORT:-5672}
wait_seconds=${BROKER_WAIT_SECONDS:-120}

listening() { (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; }

fail() {
  echo "ensure-broker: $*" >&2
  echo "ensure-broker: to run the tests, start RabbitMQ on $host:$port with user guest/guest," >&2
  echo "ensure-broker: e.g. 'apt-get install rabbitmq-server && rabbitmq-server -detached' as root." >&2
  exit 1
}

if listening; then
  exit 0
fi

server=$(command -v rabbitmq-server || true)
[ -z "$server" ] && [ -x /usr/sbin/rabbitmq-server ] && server=/usr/sbin/rabbitmq-server
if [ -z "$server" ]; then
  [ "$(id -u)" = 0 ] || fail "rabbitmq-server is not installed and we are not root to install it"
  command -v apt-get >/dev/null || fail "rabbitmq-server is not installed and there is no apt-get"
  echo "ensure-broker: installing Debian's rabbitmq-server" >&2
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q rabbitmq-server >/dev/null; then
    apt-get update -q >/dev/null
    apt-get install -y -q rabbitmq-server >/dev/null || fail "apt-get install rabbitmq-server failed"
  fi
  server=/usr/sbin/rabbitmq-server
fi

# The package's install scripts may have started it already.
if ! listening; then
  echo "ensure-broker: starting $server -detached" >&2
  [ "$(id -u)" = 0 ] || fail "rabbitmq-server is installed but stopped, and only root can start it"
  "$server" -detached || fail "rabbitmq-server -detached failed"
fi

for ((i = 0; i < wait_seconds * 4; i++)); do
  if listening; then
    exit 0
  fi
  sleep 0.25
done
fail "RabbitMQ did not accept connections on $host:$port within ${wait_seconds}s (see /var/log/rabbitmq/)"
