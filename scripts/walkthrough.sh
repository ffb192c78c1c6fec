#!/usr/bin/env bash
# The README's "first five minutes", run as written against a fresh
# server, so that the walkthrough cannot stop working unnoticed (the test
# suite runs it: tests/python/test_walkthrough.py). Each `paddock ...` line
# below is a line of README.md; the checks between them are this script's.
#
# Usage: scripts/walkthrough.sh [path/to/paddock]
#   (default target/release/paddock). PORT and ADMIN_PORT move the server
#   off 2181 and 8080; the commands then get --server added.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(realpath "${1:-target/release/paddock}")
port=${PORT:-2181}
admin=${ADMIN_PORT:-8080}
work=$(mktemp -d)
pids=()
# A background `paddock ...` is a subshell with the binary under it.
kill_tree() {
  local child
  for child in $(pgrep -P "$1"); do kill_tree "$child"; done
  kill "$1" 2>/dev/null || true
}
cleanup() {
  exec 3>&- 2>/dev/null || true
  for pid in "${pids[@]}"; do kill_tree "$pid"; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The README's alias, pointed at the server this script started.
paddock() (
  case "$1" in
    cli|status) sub=$1; shift; exec "$bin" "$sub" --server "127.0.0.1:$port" "$@" ;;
    server) shift; exec "$bin" server --port "$port" "$@" ;;
    *) exec "$bin" "$@" ;;
  esac
)
fail() { echo "walkthrough: $*" >&2; exit 1; }
# Polls a command until it succeeds (at most 20 s).
until_ok() {
  for _ in $(seq 200); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  fail "timed out waiting for: $*"
}
cd "$work"
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  fail "something already listens on 127.0.0.1:$port (PORT=... picks another)"
fi

paddock server --admin-port "$admin" >server.log 2>&1 &
pids+=($!)
until_ok paddock status
paddock cli create -e /hello world
paddock cli create /service

# The interactive shell, fed from a pipe that stays open, like a terminal.
mkfifo shell.in
paddock cli <shell.in >shell.out 2>&1 &
pids+=($!)
exec 3>shell.in
echo "create -e /service/api-1 up" >&3
echo "get -w /service/api-1" >&3
until_ok grep -Eq '(^|] )up$' shell.out

# The second terminal.
paddock cli watch /service >watch.out 2>&1 &
pids+=($!)
until_ok grep -q "watching /service" watch.out
paddock cli set /service/api-1 draining
until_ok grep -q "NodeDataChanged /service/api-1" watch.out
until_ok grep -q "type:NodeDataChanged path:/service/api-1" shell.out
# (grep >/dev/null, not grep -q: an early exit would fail the pipe.)
paddock cli tree / | grep 'api-1 = "draining"' >/dev/null || fail "tree does not show /service/api-1"
paddock cli endpoint status | grep standalone >/dev/null || fail "endpoint status does not say standalone"
paddock status | grep '^healthy' >/dev/null || fail "status does not say healthy"
curl -s 127.0.0.1:"$admin"/commands/monitor | grep '"znode_count"' >/dev/null || fail "no monitor JSON"
curl -s 127.0.0.1:"$admin"/metrics | grep znode_count >/dev/null || fail "no znode_count metric"

# quit closes the shell's session, and its ephemeral goes with it.
echo quit >&3
exec 3>&-
until_ok sh -c "! '$bin' cli --server 127.0.0.1:$port stat /service/api-1"
echo "walkthrough: every step worked"
