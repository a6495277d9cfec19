#!/usr/bin/env bash
# Manages a private RabbitMQ cluster on one machine for the cluster tests,
# apart from the shared broker on 5672. Each node is a private node of
# rabbitmq-node.sh (its own name, ports, HOME and data directory, all on
# 127.0.0.1); the nodes share an Erlang cookie and an epmd of the cluster's
# own. Used by the tests' rabbitnodes.StartCluster (internal/rabbitnodes),
# for one node too (the single-node broker faults), and usable by hand.
#
#   rabbitmq-cluster.sh start <dir> <name> <amqp-port>...
#       Starts one node per port, all at once: <name>-1@localhost on the
#       first port, <name>-2@localhost on the second, and so on, with their
#       files in <dir>/1, <dir>/2, ... Then joins every other node to the
#       first and waits until each node sees them all running. Prints
#       nothing on success.
#   rabbitmq-cluster.sh stop <dir>          stops every node (SIGTERM, then
#                                           SIGKILL) and the cluster's epmd
#   rabbitmq-cluster.sh kill <dir> <i>      kill -9 of node i (1 is the first)
#   rabbitmq-cluster.sh restart <dir> <i>   boots node i again on its data
#                                           (stopping it gracefully first if
#                                           it runs) and waits until it has
#                                           rejoined: every running node sees
#                                           every node running
#   rabbitmq-cluster.sh await <dir>         waits until every running node
#                                           sees every node running
#   rabbitmq-cluster.sh ctl <dir> <i> <args...>   rabbitmqctl against node i
#   rabbitmq-cluster.sh cli <dir> <i> <tool> <args...>
#                                           rabbitmq-queues, rabbitmq-upgrade
#                                           or rabbitmq-diagnostics against
#                                           node i
#   rabbitmq-cluster.sh check               fails, saying why, when RabbitMQ
#                                           is missing
#
# Environment (all optional):
#   PRIVCLUSTER_EPMD_PORT   port of the cluster's own epmd (default 4371),
#                           started by start and stopped by stop
#   PRIVCLUSTER_DIST_PORTS  Erlang distribution ports, one per node, separated
#                           by spaces (default each amqp-port+20000)
#   PRIVNODE_OWNER_PID      a pid; when it exits, every node and the epmd are
#                           stopped (so a test binary that dies without its
#                           cleanups leaves nothing)
#   PRIVCLUSTER_AWAIT_TIMEOUT  seconds await and restart wait (default 60)
#   and those of rabbitmq-node.sh, which does the work for each node.
#
# Files under <dir>: cluster.env (name, node count, epmd port), cookie, one
# directory per node (see rabbitmq-node.sh), epmd.ours, watchdog.pid,
# watchdog.log.
set -euo pipefail

self=$(readlink -f "${BASH_SOURCE[0]}")
node_sh=$(dirname "$self")/rabbitmq-node.sh
await_timeout=${PRIVCLUSTER_AWAIT_TIMEOUT:-60}

die() {
  echo "rabbitmq-cluster: $*" >&2
  exit 1
}

usage() {
  sed -n '2,/^set -e/p' "$self" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
}

valid_port() { [[ $1 =~ ^[0-9]+$ ]] && ((10#$1 > 0 && 10#$1 <= 65535)); }

# alive PID reports whether the process runs (and is not a zombie).
alive() {
  local line state
  [ -n "${1:-}" ] || return 1
  { read -r line <"/proc/$1/stat"; } 2>/dev/null || return 1
  state=${line##*) }
  state=${state%% *}
  [ "$state" != Z ] && [ "$state" != X ]
}

node() { bash "$node_sh" "$@"; }

# load DIR sets dir, NAME, COUNT and EPMD_PORT from DIR/cluster.env.
load() {
  [ -d "$1" ] || die "$1: no such directory"
  dir=$(cd "$1" && pwd)
  [ -f "$dir/cluster.env" ] || die "$dir/cluster.env missing: start the cluster first"
  # shellcheck source=/dev/null
  . "$dir/cluster.env"
  : "${NAME:?}" "${COUNT:?}" "${EPMD_PORT:?}"
}

node_index() {
  if ! [[ $1 =~ ^[0-9]+$ ]] || ((10#$1 < 1 || 10#$1 > COUNT)); then
    die "bad node index $1 (1 to $COUNT)"
  fi
}

running() { alive "$(node pid "$dir/$1" 2>/dev/null || true)"; }

epmd_answers() { epmd -port "$EPMD_PORT" -names >/dev/null 2>&1; }

start_epmd() {
  epmd_answers && die "an epmd already answers on port $EPMD_PORT: pick another PRIVCLUSTER_EPMD_PORT"
  (exec 3<>"/dev/tcp/127.0.0.1/$EPMD_PORT") 2>/dev/null && die "port $EPMD_PORT is taken by something that is not epmd"
  epmd -daemon -port "$EPMD_PORT" -address 127.0.0.1 </dev/null >/dev/null 2>&1
  echo 1 >"$dir/epmd.ours"
  local deadline=$((SECONDS + 10))
  until epmd_answers; do
    ((SECONDS < deadline)) || die "epmd did not come up on port $EPMD_PORT"
    sleep 0.05
  done
}

# stop_epmd stops the cluster's epmd once no node is registered with it
# (epmd refuses -kill before), waiting a moment for the nodes to go.
stop_epmd() {
  [ -f "$dir/epmd.ours" ] || return 0
  local deadline=$((SECONDS + 10))
  until epmd -port "$EPMD_PORT" -kill >/dev/null 2>&1 || ! epmd_answers; do
    if ((SECONDS >= deadline)); then
      echo "rabbitmq-cluster: epmd on port $EPMD_PORT did not stop: $(epmd -port "$EPMD_PORT" -names 2>&1 | tr '\n' ' ')" >&2
      return 1
    fi
    sleep 0.1
  done
  rm -f "$dir/epmd.ours"
}

start_watchdog() {
  local owner=${PRIVNODE_OWNER_PID:-}
  [ -n "$owner" ] || return 0
  # shellcheck disable=SC2016 # expanded by the inner bash
  PRIVNODE_WATCHDOG=1 setsid bash -c 'tail --pid="$1" -f /dev/null; exec bash "$2" stop "$3"' \
    watchdog "$owner" "$self" "$dir" </dev/null >>"$dir/watchdog.log" 2>&1 &
  echo $! >"$dir/watchdog.pid"
}

# await_all waits until every running node sees COUNT nodes running.
await_all() {
  local i deadline=$((SECONDS + await_timeout)) left
  for ((i = 1; i <= COUNT; i++)); do
    running "$i" || continue
    left=$((deadline - SECONDS))
    ((left > 0)) || die "the cluster did not have all $COUNT nodes running within ${await_timeout}s"
    PRIVNODE_CTL_TIMEOUT=$((left + 5)) node ctl "$dir/$i" -q await_online_nodes "$COUNT" --timeout "$left" >/dev/null ||
      die "node $NAME-$i@localhost did not see $COUNT nodes running within ${await_timeout}s"
  done
}

cmd_start() {
  [ $# -ge 2 ] || usage
  local name=$1 p i
  shift
  [[ $name =~ ^[A-Za-z0-9_-]+$ ]] || die "bad cluster name $name (letters, digits, _ and - only)"
  [ $# -le 9 ] || die "at most 9 nodes"
  for p in "$@"; do valid_port "$p" || die "bad AMQP port $p"; done
  local -a ports=("$@") dist
  read -r -a dist <<<"${PRIVCLUSTER_DIST_PORTS:-}"
  if [ ${#dist[@]} -eq 0 ]; then
    for p in "${ports[@]}"; do dist+=($((p + 20000))); done
  fi
  [ ${#dist[@]} -eq ${#ports[@]} ] || die "PRIVCLUSTER_DIST_PORTS has ${#dist[@]} ports for ${#ports[@]} nodes"
  for p in "${dist[@]}"; do valid_port "$p" || die "bad distribution port $p"; done
  local epmd=${PRIVCLUSTER_EPMD_PORT:-4371}
  valid_port "$epmd" || die "bad epmd port $epmd"
  node check
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  printf 'NAME=%s\nCOUNT=%d\nEPMD_PORT=%d\n' "$name" ${#ports[@]} "$epmd" >"$dir/cluster.env"
  load "$dir"
  if [ ! -s "$dir/cookie" ]; then
    od -vAn -N16 -tx1 /dev/urandom | tr -d ' \n' | tr a-f A-F >"$dir/cookie"
    chmod 400 "$dir/cookie"
  fi
  for ((i = 1; i <= COUNT; i++)); do
    mkdir -p "$dir/$i/home"
    chmod 700 "$dir/$i/home"
    # The same cookie for every node, and for the CLI run as any of them.
    install -m 400 "$dir/cookie" "$dir/$i/home/.erlang.cookie"
  done
  start_watchdog
  start_epmd
  local -a pids
  for ((i = 1; i <= COUNT; i++)); do
    PRIVNODE_EPMD_PORT=$epmd PRIVNODE_DIST_PORT=${dist[i - 1]} \
      node start "$NAME-$i" "${ports[i - 1]}" "$dir/$i" &
    pids+=($!)
  done
  local failed=0
  for p in "${pids[@]}"; do wait "$p" || failed=1; done
  ((failed == 0)) || die "a node did not start (see above); stop the cluster to clean up"
  for ((i = 2; i <= COUNT; i++)); do
    node stop_app "$dir/$i"
    node ctl "$dir/$i" -q join_cluster "$NAME-1@localhost" >/dev/null
    node start_app "$dir/$i"
  done
  await_all
}

cmd_stop() {
  [ $# -eq 1 ] || usage
  load "$1"
  local i p failed=0
  local -a pids
  for ((i = 1; i <= COUNT; i++)); do
    [ -f "$dir/$i/node.env" ] || continue
    node stop "$dir/$i" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || failed=1; done
  stop_epmd || failed=1
  if [ -z "${PRIVNODE_WATCHDOG:-}" ] && [ -s "$dir/watchdog.pid" ]; then
    p=$(cat "$dir/watchdog.pid")
    # setsid made it the leader of its own process group.
    if alive "$p"; then
      kill -KILL -- "-$p" 2>/dev/null || true
    fi
    rm -f "$dir/watchdog.pid"
  fi
  ((failed == 0)) || die "stopping the cluster in $dir failed (see above)"
}

cmd_node() {
  local verb=$1
  [ $# -ge 3 ] || usage
  load "$2"
  node_index "$3"
  local i=$3
  shift 3
  case $verb in
  kill) node kill "$dir/$i" ;;
  restart)
    node restart "$dir/$i"
    await_all
    ;;
  ctl) node ctl "$dir/$i" "$@" ;;
  cli) node cli "$dir/$i" "$@" ;;
  esac
}

case ${1:-} in
start)
  [ $# -ge 4 ] || usage
  dir=$2
  shift 2
  cmd_start "$@"
  ;;
stop) shift && cmd_stop "$@" ;;
kill | restart)
  [ $# -eq 3 ] || usage
  cmd_node "$@"
  ;;
ctl | cli) cmd_node "$@" ;;
await)
  [ $# -eq 2 ] || usage
  load "$2"
  await_all
  ;;
check) node check ;;
*) usage ;;
esac
