#!/usr/bin/env bash
# Installs what the cross-language interop tests (interop_test.go) need, on a
# Debian machine, as root:
#   - pika for /usr/bin/python3 (Debian's python3-pika; the tests always run
#     the system interpreter, not a python3 that comes first on PATH);
#   - Node.js and npm when missing (Debian's nodejs and npm);
#   - amqplib in examples/interop/node/node_modules, from the committed
#     package-lock.json (npm ci);
#   - the RabbitMQ Java client (Debian's librabbitmq-client-java, which
#     brings libslf4j-java) and a JDK when javac is missing
#     (default-jdk-headless), for the tutorial-style Java client
#     (tutorial_test.go);
#   - Ruby with Bunny (Debian's ruby-bunny) and PHP with php-amqplib
#     (Debian's php-cli and php-amqplib), for the tutorial-style Ruby and
#     PHP programs (tutorial_test.go).
# Idempotent: quiet, and quick, when everything is present. Exits non-zero
# with what went wrong otherwise.
set -euo pipefail

cd "$(dirname "$0")/.."
node_dir=examples/interop/node

fail() {
  echo "install-interop-deps: $*" >&2
  exit 1
}

# apt_install installs Debian packages, updating the package lists only when
# the install fails without that.
apt_install() {
  [ "$(id -u)" = 0 ] || fail "need $* but not root to apt-get install it (run as root, or install $* yourself)"
  command -v apt-get >/dev/null || fail "need $* but there is no apt-get"
  echo "install-interop-deps: installing Debian's $*" >&2
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q "$@" >/dev/null 2>&1; then
    apt-get update -q >/dev/null || fail "apt-get update failed"
    apt-get install -y -q "$@" >/dev/null || fail "apt-get install $* failed"
  fi
}

# Python: pika for the system interpreter.
if ! [ -x /usr/bin/python3 ]; then
  apt_install python3 python3-pika
elif ! /usr/bin/python3 -c 'import pika' 2>/dev/null; then
  apt_install python3-pika
fi
/usr/bin/python3 -c 'import pika' 2>/dev/null || fail "/usr/bin/python3 still cannot import pika after installing python3-pika"

# Node.js and npm.
missing=()
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  apt_install "${missing[@]}"
fi
command -v node >/dev/null || fail "node is still missing after installing nodejs"
command -v npm >/dev/null || fail "npm is still missing after installing npm"

# amqplib, exactly as the lock file pins it. Reinstall only when
# node_modules is missing or older than the lock file.
lock=$node_dir/package-lock.json
[ -f "$lock" ] || fail "$lock is missing"
stamp=$node_dir/node_modules/.package-lock.json # written by npm ci / npm install
if [ ! -d "$node_dir/node_modules/amqplib" ] || [ ! -f "$stamp" ] || [ "$lock" -nt "$stamp" ]; then
  echo "install-interop-deps: npm ci in $node_dir" >&2
  (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) || fail "npm ci in $node_dir failed"
fi
[ -d "$node_dir/node_modules/amqplib" ] || fail "npm ci did not install amqplib in $node_dir/node_modules"

# Java: javac and the RabbitMQ Java client jar.
missing=()
command -v javac >/dev/null || missing+=(default-jdk-headless)
dpkg -s librabbitmq-client-java >/dev/null 2>&1 || missing+=(librabbitmq-client-java)
if [ ${#missing[@]} -gt 0 ]; then
  apt_install "${missing[@]}"
fi
command -v javac >/dev/null || fail "javac is still missing after installing default-jdk-headless"
dpkg -L librabbitmq-client-java 2>/dev/null | grep -q '\.jar$' || fail "librabbitmq-client-java installed no jar (dpkg -L librabbitmq-client-java)"

# Ruby with Bunny, and PHP with php-amqplib.
missing=()
command -v ruby >/dev/null && ruby -e "require 'bunny'" 2>/dev/null || missing+=(ruby ruby-bunny)
command -v php >/dev/null || missing+=(php-cli)
[ -f /usr/share/php/PhpAmqpLib/autoload.php ] || missing+=(php-amqplib)
if [ ${#missing[@]} -gt 0 ]; then
  apt_install "${missing[@]}"
fi
ruby -e "require 'bunny'" 2>/dev/null || fail "ruby still cannot load Bunny after installing ruby-bunny"
command -v php >/dev/null || fail "php is still missing after installing php-cli"
[ -f /usr/share/php/PhpAmqpLib/autoload.php ] || fail "php-amqplib installed no /usr/share/php/PhpAmqpLib/autoload.php"
