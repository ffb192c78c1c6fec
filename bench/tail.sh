#!/usr/bin/env bash
# Tail latency at a fixed rate: the open-loop mix of bench/tail.toml
# (20 000 getData/s + 5 000 setData/s) for 10 minutes against Apache
# ZooKeeper 3.8.0, then against Paddock, each alone on the machine with
# the settings of bench/compare.sh. Writes bench/results/tail.md.
#   bench/tail.sh [seconds, default 600]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/need-zookeeper.sh
exec python3 bench/tail.py "${1:-600}"
