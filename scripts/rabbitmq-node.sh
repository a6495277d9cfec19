#!/usr/bin/env bash
# Manages one private RabbitMQ node for fault and TLS tests, apart from the
# shared broker on 5672: its own node name, ports, HOME and Erlang cookie,
# epmd port and data directory, all on 127.0.0.1. Used by the tests'
# startPrivateNode helper (privatenode_test.go) and usable by hand.
#
#   rabbitmq-node.sh start <name> <amqp-port> <dir> [tls-port]
#       Writes the node's config under <dir>, starts it in the background and
#       waits until it has booted. Prints nothing on success. With a TLS port
#       it also listens for TLS there, using <dir>/tls/ca.pem,
#       <dir>/tls/server.pem and <dir>/tls/server.key, which the caller puts
#       there first.
#   rabbitmq-node.sh stop <dir>       stops the node (SIGTERM, then SIGKILL)
#                                     and the epmd it started
#   rabbitmq-node.sh stop_app <dir>   rabbitmqctl stop_app
#   rabbitmq-node.sh start_app <dir>  rabbitmqctl start_app
#   rabbitmq-node.sh kill <dir>       kill -9 of the node's Erlang VM, waiting
#                                     until it is gone
#   rabbitmq-node.sh restart <dir>    boots the node again on the same data
#                                     (after kill or stop) and waits for it
#   rabbitmq-node.sh ctl <dir> <args...>  rabbitmqctl <args> against the node
#   rabbitmq-node.sh cli <dir> <tool> <args...>  another of RabbitMQ's CLI
#                                     tools against the node: rabbitmq-queues,
#                                     rabbitmq-upgrade or rabbitmq-diagnostics
#   rabbitmq-node.sh pid <dir>        prints the node's Erlang VM pid
#   rabbitmq-node.sh check            fails, saying why, when RabbitMQ is missing
#
# Environment (all optional):
#   PRIVNODE_DIST_PORT     Erlang distribution port (default amqp-port+20000)
#   PRIVNODE_EPMD_PORT     port of the node's own epmd (default 4370); started
#                          if nothing answers there, and stopped by `stop` only
#                          if `start` started it and no other node uses it
#   PRIVNODE_MTLS=1        TLS listener requires a client certificate signed
#                          by ca.pem (verify_peer, fail_if_no_peer_cert)
#   PRIVNODE_OWNER_PID     a pid; when it exits, the node is stopped (so a test
#                          binary that dies without its cleanups leaves nothing)
#   PRIVNODE_RABBITMQ_BIN  RabbitMQ's scripts (default /usr/lib/rabbitmq/bin;
#                          not the /usr/sbin wrappers, which switch to the
#                          rabbitmq user and its HOME, and so to the shared
#                          broker's cookie)
#   PRIVNODE_BOOT_TIMEOUT, PRIVNODE_CTL_TIMEOUT, PRIVNODE_STOP_TIMEOUT
#                          seconds (defaults 90, 60, 30)
#
# Files under <dir>: node.env (name and ports), home/.erlang.cookie,
# rabbitmq.conf, advanced.config, enabled_plugins, rabbitmq-env.conf (empty,
# so /etc/rabbitmq/rabbitmq-env.conf does not apply), mnesia/ (data),
# log/ (the node's log and console.log), rabbit.pid (the VM's pid),
# wrapper.pid, watchdog.pid, tls/.
set -euo pipefail

rabbitmq_bin=${PRIVNODE_RABBITMQ_BIN:-/usr/lib/rabbitmq/bin}
boot_timeout=${PRIVNODE_BOOT_TIMEOUT:-90}
ctl_timeout=${PRIVNODE_CTL_TIMEOUT:-60}
stop_timeout=${PRIVNODE_STOP_TIMEOUT:-30}
self=$(readlink -f "${BASH_SOURCE[0]}")

die() {
  echo "rabbitmq-node: $*" >&2
  exit 1
}

usage() {
  sed -n '2,/^set -e/p' "$self" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
}

# Settings from the caller's environment must not leak into the node.
for var in $(compgen -e); do
  case $var in
  RABBITMQ_* | ERL_*) unset "$var" ;;
  esac
done

check_installed() {
  local f
  for f in "$rabbitmq_bin/rabbitmq-server" "$rabbitmq_bin/rabbitmqctl"; do
    [ -x "$f" ] || die "$f not found: install rabbitmq-server (Debian: apt-get install rabbitmq-server) or set PRIVNODE_RABBITMQ_BIN"
  done
  for f in erl epmd setsid timeout tail; do
    command -v "$f" >/dev/null || die "$f not found in PATH"
  done
}

valid_port() { [[ $1 =~ ^[0-9]+$ ]] && ((10#$1 > 0 && 10#$1 <= 65535)); }

# proc_stat PID sets the array stat to the fields of /proc/PID/stat after
# the command name: 0 state, 1 ppid, 2 process group, 3 session. Builtins
# only (no procps, no subshell), as session_pids calls it for every process.
proc_stat() {
  local line
  { read -r line <"/proc/$1/stat"; } 2>/dev/null || return 1
  read -r -a stat <<<"${line##*) }"
}

alive() {
  [ -n "${1:-}" ] && proc_stat "$1" && [ "${stat[0]}" != Z ] && [ "${stat[0]}" != X ]
}

# exiting PID reports whether any thread of the process still runs. After a
# SIGKILL the main thread of a multi-threaded process (an Erlang VM) can be a
# zombie while its other threads still exit, and they hold its files, its
# listening sockets included, until the last of them is gone.
exiting() {
  local f line state
  [ -n "${1:-}" ] || return 1
  for f in "/proc/$1/task/"*/stat; do
    { read -r line <"$f"; } 2>/dev/null || continue
    state=${line##*) }
    state=${state%% *}
    [ "$state" != Z ] && [ "$state" != X ] && return 0
  done
  return 1
}

read_pid() { [ -s "$1" ] && cat "$1"; }

# session_pids SID prints the live processes of session SID.
session_pids() {
  local p
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    proc_stat "$p" && [ "${stat[3]}" = "$1" ] && alive "$p" && echo "$p"
  done
  return 0
}

# wait_gone SECONDS PID... waits until none of the processes lives.
wait_gone() {
  local deadline=$((SECONDS + $1)) p
  shift
  for p in "$@"; do
    while exiting "$p"; do
      ((SECONDS < deadline)) || return 1
      sleep 0.05
    done
  done
}

# kill_session SID kills every process of that session (one we started with
# setsid, so the session id is its leader's pid).
kill_session() {
  local pids
  [ -n "${1:-}" ] || return 0
  pids=$(session_pids "$1")
  [ -z "$pids" ] && return 0
  # shellcheck disable=SC2086
  kill -KILL $pids 2>/dev/null || true
  # shellcheck disable=SC2086
  wait_gone 10 $pids || die "processes $pids of session $1 survived SIGKILL"
}

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# load DIR sets the node's environment from DIR/node.env.
load() {
  [ -d "$1" ] || die "$1: no such directory"
  dir=$(cd "$1" && pwd)
  [ -f "$dir/node.env" ] || die "$dir/node.env missing: start the node first"
  # shellcheck source=/dev/null
  . "$dir/node.env" # sets NAME, AMQP_PORT, TLS_PORT, DIST_PORT, EPMD_PORT
  : "${NAME:?}" "${AMQP_PORT:?}" "${DIST_PORT:?}" "${EPMD_PORT:?}"
  export HOME="$dir/home"
  export ERL_EPMD_PORT=$EPMD_PORT ERL_EPMD_ADDRESS=127.0.0.1
  export RABBITMQ_NODENAME="$NAME@localhost"
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  export RABBITMQ_NODE_PORT=$AMQP_PORT
  export RABBITMQ_DIST_PORT=$DIST_PORT
  export RABBITMQ_MNESIA_BASE="$dir/mnesia"
  export RABBITMQ_LOG_BASE="$dir/log"
  export RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf"
  export RABBITMQ_ADVANCED_CONFIG_FILE="$dir/advanced.config"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins"
  export RABBITMQ_PID_FILE="$dir/rabbit.pid"
  export RABBITMQ_CONF_ENV_FILE="$dir/rabbitmq-env.conf"
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
  # Else a VM that fails to boot (or a CLI) dumps into the caller's directory.
  export ERL_CRASH_DUMP="$dir/log/erl_crash.dump"
}

ctl() { cli rabbitmqctl "$@"; }

# cli TOOL ARGS... runs one of RabbitMQ's CLI tools against the node.
cli() {
  local tool=$1
  shift
  # ERL_FLAGS keeps the CLI's own distribution listener on loopback too.
  ERL_FLAGS="-kernel inet_dist_use_interface {127,0,0,1}" \
    timeout -k 5 "$ctl_timeout" "$rabbitmq_bin/$tool" -n "$RABBITMQ_NODENAME" "$@"
}

beam_pid() {
  local pid
  pid=$(read_pid "$dir/rabbit.pid") && alive "$pid" && echo "$pid"
}

ensure_epmd() {
  if epmd -port "$EPMD_PORT" -names >/dev/null 2>&1; then
    return 0
  fi
  listening "$EPMD_PORT" && die "port $EPMD_PORT is taken by something that is not epmd"
  epmd -daemon -port "$EPMD_PORT" -address 127.0.0.1 </dev/null >/dev/null 2>&1
  local deadline=$((SECONDS + 10))
  until epmd -port "$EPMD_PORT" -names >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "epmd did not come up on port $EPMD_PORT"
    sleep 0.05
  done
  echo 1 >"$dir/epmd.ours"
}

# stop_epmd stops the epmd that start started, unless another node uses it
# (epmd refuses -kill while any node is registered), giving it a moment to
# notice that our node's connection is gone.
stop_epmd() {
  [ -f "$dir/epmd.ours" ] || return 0
  local deadline=$((SECONDS + 3))
  until epmd -port "$EPMD_PORT" -kill >/dev/null 2>&1 || ! epmd -port "$EPMD_PORT" -names >/dev/null 2>&1; do
    ((SECONDS < deadline)) || break
    sleep 0.05
  done
  rm -f "$dir/epmd.ours"
}

boot_failed() {
  echo "rabbitmq-node: node $RABBITMQ_NODENAME $1; last lines of its logs:" >&2
  tail -n 30 "$dir/log/console.log" "$dir/log/$RABBITMQ_NODENAME.log" >&2 2>/dev/null || true
  kill_session "$(read_pid "$dir/wrapper.pid" || true)"
  stop_epmd
  exit 1
}

# await_ports_free waits a little for the node's ports to be free: the
# sockets of a node killed a moment ago can outlive its processes by as long
# as the kernel takes to close them. Something else on a port is an error.
await_ports_free() {
  local p deadline=$((SECONDS + 10))
  for p in "$AMQP_PORT" "$DIST_PORT" ${TLS_PORT:+"$TLS_PORT"}; do
    while listening "$p"; do
      ((SECONDS < deadline)) || die "port $p on 127.0.0.1 is already in use"
      sleep 0.05
    done
  done
}

# boot starts the node on its data directory and waits until it is up.
boot() {
  local p wrapper
  alive "$(beam_pid || true)" && die "node $RABBITMQ_NODENAME is already running"
  kill_session "$(read_pid "$dir/wrapper.pid" || true)"
  await_ports_free
  ensure_epmd
  rm -f "$dir/rabbit.pid"
  # Its own session, so that killing the caller's process group leaves it be,
  # and so that stop can find all of it.
  (cd "$dir" && exec setsid "$rabbitmq_bin/rabbitmq-server" </dev/null >>"$dir/log/console.log" 2>&1) &
  wrapper=$!
  echo "$wrapper" >"$dir/wrapper.pid"
  local deadline=$((SECONDS + boot_timeout))
  until listening "$AMQP_PORT" && { [ -z "$TLS_PORT" ] || listening "$TLS_PORT"; }; do
    alive "$wrapper" || boot_failed "exited while booting"
    ((SECONDS < deadline)) || boot_failed "did not listen on $AMQP_PORT${TLS_PORT:+ and $TLS_PORT} within ${boot_timeout}s"
    owner_gone && boot_failed "lost its owner, pid $PRIVNODE_OWNER_PID, while booting"
    sleep 0.1
  done
  ctl await_startup --timeout "$boot_timeout" >/dev/null || boot_failed "did not finish booting"
  # Had the owner died before the wrapper existed, the watchdog's stop would
  # have missed this boot.
  owner_gone && boot_failed "lost its owner, pid $PRIVNODE_OWNER_PID, while booting"
  return 0
}

owner_gone() { [ -n "${PRIVNODE_OWNER_PID:-}" ] && ! alive "$PRIVNODE_OWNER_PID"; }

start_watchdog() {
  local owner=${PRIVNODE_OWNER_PID:-}
  [ -n "$owner" ] || return 0
  alive "$(read_pid "$dir/watchdog.pid" || true)" && return 0
  # shellcheck disable=SC2016 # expanded by the inner bash
  PRIVNODE_WATCHDOG=1 setsid bash -c 'tail --pid="$1" -f /dev/null; exec bash "$2" stop "$3"' \
    watchdog "$owner" "$self" "$dir" </dev/null >>"$dir/log/watchdog.log" 2>&1 &
  echo $! >"$dir/watchdog.pid"
}

cmd_start() {
  { [ $# -ge 3 ] && [ $# -le 4 ]; } || usage
  local name=$1 amqp=$2 tls=${4:-}
  [[ $name =~ ^[A-Za-z0-9_-]+$ ]] || die "bad node name $name (letters, digits, _ and - only)"
  valid_port "$amqp" || die "bad AMQP port $amqp"
  [ -z "$tls" ] || valid_port "$tls" || die "bad TLS port $tls"
  local dist=${PRIVNODE_DIST_PORT:-$((amqp + 20000))}
  local epmd=${PRIVNODE_EPMD_PORT:-4370}
  valid_port "$dist" || die "bad distribution port $dist (set PRIVNODE_DIST_PORT)"
  valid_port "$epmd" || die "bad epmd port $epmd"
  check_installed
  mkdir -p "$3"
  dir=$(cd "$3" && pwd)
  mkdir -p "$dir/home" "$dir/mnesia" "$dir/log"
  chmod 700 "$dir/home"
  if [ ! -s "$dir/home/.erlang.cookie" ]; then
    od -vAn -N16 -tx1 /dev/urandom | tr -d ' \n' | tr a-f A-F >"$dir/home/.erlang.cookie"
    chmod 400 "$dir/home/.erlang.cookie"
  fi
  : >"$dir/rabbitmq-env.conf"
  echo '[].' >"$dir/advanced.config"
  echo '[].' >"$dir/enabled_plugins"
  {
    echo "log.console = false"
    echo "log.file.level = info"
    if [ -n "$tls" ]; then
      local f
      for f in ca.pem server.pem server.key; do
        [ -s "$dir/tls/$f" ] || die "TLS port given but $dir/tls/$f is missing"
      done
      echo "listeners.ssl.1 = 127.0.0.1:$tls"
      echo "ssl_options.cacertfile = $dir/tls/ca.pem"
      echo "ssl_options.certfile = $dir/tls/server.pem"
      echo "ssl_options.keyfile = $dir/tls/server.key"
      if [ "${PRIVNODE_MTLS:-}" = 1 ]; then
        echo "ssl_options.verify = verify_peer"
        echo "ssl_options.fail_if_no_peer_cert = true"
      else
        echo "ssl_options.verify = verify_none"
        echo "ssl_options.fail_if_no_peer_cert = false"
      fi
    fi
  } >"$dir/rabbitmq.conf"
  cat >"$dir/node.env" <<EOF
NAME=$name
AMQP_PORT=$amqp
TLS_PORT=$tls
DIST_PORT=$dist
EPMD_PORT=$epmd
EOF
  load "$dir"
  start_watchdog
  boot
}

cmd_stop() {
  [ $# -eq 1 ] || usage
  load "$1"
  local pid
  if pid=$(beam_pid); then
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_gone "$stop_timeout" "$pid"; then
      echo "rabbitmq-node: $RABBITMQ_NODENAME did not stop within ${stop_timeout}s of SIGTERM; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
      wait_gone 10 "$pid" || die "pid $pid survived SIGKILL"
    fi
  fi
  kill_session "$(read_pid "$dir/wrapper.pid" || true)"
  if [ -z "${PRIVNODE_WATCHDOG:-}" ]; then
    kill_session "$(read_pid "$dir/watchdog.pid" || true)"
  fi
  stop_epmd
}

cmd_kill() {
  [ $# -eq 1 ] || usage
  load "$1"
  local pid
  pid=$(beam_pid) || die "node $RABBITMQ_NODENAME is not running"
  kill -KILL "$pid"
  wait_gone 10 "$pid" || die "pid $pid survived SIGKILL"
}

cmd_restart() {
  [ $# -eq 1 ] || usage
  load "$1"
  local pid
  if pid=$(beam_pid); then
    kill -TERM "$pid"
    wait_gone "$stop_timeout" "$pid" || die "$RABBITMQ_NODENAME did not stop within ${stop_timeout}s"
  fi
  start_watchdog # stop ended it
  boot
}

cmd_ctl() {
  [ $# -ge 2 ] || usage
  load "$1"
  shift
  ctl "$@"
}

cmd_cli() {
  [ $# -ge 2 ] || usage
  load "$1"
  case $2 in
  rabbitmq-queues | rabbitmq-upgrade | rabbitmq-diagnostics) ;;
  *) die "cli: unknown tool $2 (rabbitmq-queues, rabbitmq-upgrade or rabbitmq-diagnostics; rabbitmqctl is ctl)" ;;
  esac
  shift
  cli "$@"
}

case ${1:-} in
start) shift && cmd_start "$@" ;;
stop) shift && cmd_stop "$@" ;;
kill) shift && cmd_kill "$@" ;;
restart) shift && cmd_restart "$@" ;;
stop_app | start_app)
  [ $# -eq 2 ] || usage
  load "$2"
  ctl "$1" >/dev/null
  ;;
ctl) shift && cmd_ctl "$@" ;;
cli) shift && cmd_cli "$@" ;;
pid)
  [ $# -eq 2 ] || usage
  load "$2"
  beam_pid || die "node $RABBITMQ_NODENAME is not running"
  ;;
check) check_installed ;;
*) usage ;;
esac
