#!/usr/bin/env bash
# A 3-server Paddock ensemble on this machine: clients on 127.0.0.1:2181-2183,
# data under ./ensemble-demo. Ctrl-C stops all three.
# The ports move with CLIENT_PORT, PEER_PORT and ELECTION_PORT (the first
# server's; the others count up), e.g. CLIENT_PORT=12181 scripts/ensemble-demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
client=${CLIENT_PORT:-2181}
peer=${PEER_PORT:-2888}
election=${ELECTION_PORT:-3888}
cargo build --release -q -p paddock
dir=ensemble-demo
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' EXIT INT TERM
for i in 1 2 3; do
  mkdir -p "$dir/server$i"
  echo "$i" > "$dir/server$i/myid"
  cat > "$dir/zoo$i.cfg" <<CFG
tickTime=2000
dataDir=$dir/server$i
clientPort=$((client + i - 1))
clientPortAddress=127.0.0.1
4lw.commands.whitelist=*
server.1=127.0.0.1:$peer:$election
server.2=127.0.0.1:$((peer + 1)):$((election + 1))
server.3=127.0.0.1:$((peer + 2)):$((election + 2))
CFG
  target/release/paddock server --config "$dir/zoo$i.cfg" 2> "$dir/server$i.log" &
  pids+=($!)
done
# Each server answers srvr with its mode once the ensemble has a leader.
hosts=()
for i in 1 2 3; do
  port=$((client + i - 1))
  hosts+=("127.0.0.1:$port")
  for _ in $(seq 100); do
    mode=$(python3 -c "import socket; s=socket.create_connection(('127.0.0.1', $port)); s.sendall(b'srvr'); print(s.makefile().read())" 2>/dev/null | grep Mode || true)
    [ -n "$mode" ] && break
    sleep 0.1
  done
  echo "127.0.0.1:$port ${mode:-not serving yet}"
done
echo "clients: $(IFS=,; echo "${hosts[*]}") (logs in $dir/); Ctrl-C to stop"
wait
