#!/usr/bin/env bash
# A 3-server Paddock ensemble on this machine: clients on 127.0.0.1:2181-2183,
# data under ./ensemble-demo. Ctrl-C stops all three.
set -euo pipefail
cd "$(dirname "$0")/.."
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
clientPort=$((2180 + i))
clientPortAddress=127.0.0.1
4lw.commands.whitelist=*
server.1=127.0.0.1:2888:3888
server.2=127.0.0.1:2889:3889
server.3=127.0.0.1:2890:3890
CFG
  target/release/paddock server --config "$dir/zoo$i.cfg" 2> "$dir/server$i.log" &
  pids+=($!)
done
sleep 2
for i in 1 2 3; do
  mode=$(python3 -c "import socket; s=socket.create_connection(('127.0.0.1', $((2180 + i)))); s.sendall(b'srvr'); print(s.makefile().read())" | grep Mode || true)
  echo "127.0.0.1:$((2180 + i)) $mode"
done
echo "clients: 127.0.0.1:2181,127.0.0.1:2182,127.0.0.1:2183 (logs in $dir/); Ctrl-C to stop"
wait
