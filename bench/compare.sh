#!/usr/bin/env bash
# Side-by-side: Apache ZooKeeper 3.8.0 (Debian package, Java 17, fsync on,
# -Xms1g -Xmx1g) and Paddock, standalone, same data disk, same load
# generator (`paddock bench`), workloads run alternately. Writes
# bench/results/standalone.md and the raw JSON reports next to it.
#   bench/compare.sh [seconds per workload, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
need=()
[ -f /usr/share/java/zookeeper.jar ] || need+=(zookeeper)
command -v java >/dev/null || need+=(default-jre-headless)
if [ ${#need[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
cargo build --release -q -p paddock
exec python3 bench/compare.py "${1:-10}"
