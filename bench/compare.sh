#!/usr/bin/env bash
# Side-by-side: Apache ZooKeeper 3.8.0 (Debian package, Java 17, fsync on,
# -Xms1g -Xmx1g) and Paddock, standalone, same data disk, same load
# generator (`paddock bench`), workloads run alternately. Writes
# bench/results/standalone.md and the raw JSON reports next to it.
#   bench/compare.sh [seconds per workload, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/need-zookeeper.sh
exec python3 bench/compare.py "${1:-10}"
