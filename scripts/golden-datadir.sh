#!/usr/bin/env bash
# Writes a small data directory with the given paddock binary, for the
# format fixtures under crates/paddock/tests/fixtures/: every kind of log
# record and znode a server writes (sessions, persistent, sequential,
# container, TTL and ephemeral nodes, data changes, deletes, ACLs), with a
# snapshot and a purged log (snapCount=5). The newest segment is cut to
# its data (as recovery would) so the fixture is small.
#
#   scripts/golden-datadir.sh target/release/paddock crates/paddock/tests/fixtures/datadir-v2
set -euo pipefail
bin=$(realpath "$1")
out=$2
work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$work/zoo.cfg" <<CFG
tickTime=2000
dataDir=$work/data
clientPort=$port
clientPortAddress=127.0.0.1
snapCount=5
extendedTypesEnabled=true
CFG
"$bin" server --config "$work/zoo.cfg" > "$work/server.log" 2>&1 &
server=$!
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done
cli() { "$bin" cli -server "127.0.0.1:$port" > /dev/null; }
big=$(printf 'b%.0s' $(seq 1500))
# alice:secret, as ZooKeeper's DigestAuthenticationProvider hashes it.
alice=$(python3 -c 'import base64, hashlib; print(base64.b64encode(hashlib.sha1(b"alice:secret").digest()).decode())')
cli <<CMDS
create /app "config v1"
create /app/locks ""
create -s /app/locks/lock- a
create -s /app/locks/lock- b
create -c /app/container ""
create /app/container/child x
create -t 1099511627775 /app/ttl "lives for decades"
create -e /app/ephemeral "gone when the session closes"
set /app "config v2"
set /app "config v3"
delete /app/locks/lock-0000000000
create /big $big
create /secure "for alice"
setAcl /secure digest:alice:$alice:cdrwa,world:anyone:r
CMDS
cli <<CMDS
create /second "from a second session"
create -e /second/eph x
CMDS
kill -TERM "$server"
wait "$server"
rm -rf "$out"
mkdir -p "$out/snap" "$out/wal"
cp "$work"/data/snap/*.snap "$out/snap/"
cp "$work/data/wal/raft-state" "$out/wal/"
for seg in "$work"/data/wal/wal-*.log; do
    python3 - "$seg" "$out/wal/$(basename "$seg")" <<'PY'
import sys
data = open(sys.argv[1], "rb").read()
open(sys.argv[2], "wb").write(data.rstrip(b"\0"))
PY
done
ls -l "$out"/snap "$out"/wal
