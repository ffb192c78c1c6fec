#!/usr/bin/env bash
# Measures `paddock jobs`: tasks/s with 1, 2 and 4 executors, and how long
# re-sharing takes after an executor is killed with SIGKILL.
# Starts its own Paddock and redis-server on free loopback ports in a
# temporary directory, and stops them at the end.
# Usage: bench/jobs.sh [tasks-per-job] [task-delay-ms]
set -euo pipefail
cd "$(dirname "$0")/.."
TASKS=${1:-2000}
DELAY=${2:-0}
cargo build --release --quiet
B="$PWD/target/release/paddock"
W=$(mktemp -d)
pids=()
cleanup() { exec 2>/dev/null; for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$W"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ZK_PORT=$(port); REDIS_PORT=$(port)
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no >/dev/null & pids+=($!)
"$B" server --port "$ZK_PORT" --data-dir "$W/data" --tick-time 100 2>"$W/server.log" & pids+=($!)
sleep 1
E=(--server "127.0.0.1:$ZK_PORT" --redis "127.0.0.1:$REDIS_PORT" --session-timeout-ms 1000)
now() { date +%s.%N; }
results() { "$B" jobs status "${E[@]}" | awk -v j="$1" '$1==j {split($3,a,"/"); print a[1]}'; }
members() { "$B" jobs status "${E[@]}" | sed -n 's/^executors (\([0-9]*\)).*/\1/p'; }

echo "| executors | tasks | seconds | tasks/s |"
echo "|---|---|---|---|"
for n in 1 2 4; do
  ex=()
  for _ in $(seq "$n"); do "$B" jobs executor "${E[@]}" --task-delay-ms "$DELAY" 2>/dev/null & ex+=($!); pids+=($!); disown; done
  "$B" jobs watcher "${E[@]}" --output-dir "$W/out" >/dev/null 2>&1 & wpid=$!; pids+=($wpid)
  until [ "$(members)" = "$n" ]; do sleep 0.05; done
  start=$(now)
  for j in 1 2 3 4; do "$B" jobs submit "run$n-$j" --count "$TASKS" --seed "$j" "${E[@]}" >/dev/null; done
  "$B" jobs status "${E[@]}" --wait >/dev/null 2>&1
  end=$(now)
  python3 -c "t=$end-$start; n=4*$TASKS; print(f'| $n | {n} | {t:.2f} | {n/t:.0f} |')"
  if [ "$n" = 4 ]; then
    # Re-share: kill one executor mid-job; time until the group shows it gone
    # (the session timeout) and until its job is finished by the others.
    "$B" jobs submit reshare --count "$((TASKS * 4))" --seed 9 "${E[@]}" >/dev/null
    sleep 0.3
    # The first executor started has the lowest member name, so it owns the
    # only job.
    kill -9 "${ex[0]}"; killed=$(now)
    until [ "$(members)" = 3 ]; do sleep 0.02; done; gone=$(now)
    r=$(results reshare)
    until [ "$(results reshare)" -gt "$r" ]; do sleep 0.02; done; resumed=$(now)
    "$B" jobs status "${E[@]}" --wait >/dev/null 2>&1
    python3 -c "print(f'\nkilled the executor working on a job: its member node went after {($gone-$killed)*1000:.0f} ms (session timeout 1000 ms, tick 100 ms); results grew again {($resumed-$killed)*1000:.0f} ms after the kill')"
  fi
  for p in "${ex[@]}" "$wpid"; do kill "$p" 2>/dev/null || true; done
  sleep 1.2
done
echo
echo "machine: $(nproc) cores; task delay ${DELAY} ms; Paddock tickTime 100 ms"
