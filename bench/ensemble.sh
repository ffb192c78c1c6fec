#!/usr/bin/env bash
# 3-server ensembles of Apache ZooKeeper 3.8.0 (Debian package) and
# Paddock on this machine: failover time after kill -9 of the leader and
# throughput through a follower. Writes bench/results/ensemble.md.
#   bench/ensemble.sh [failover trials, default 5] [seconds per workload, default 5]
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
exec python3 bench/ensemble.py "${1:-5}" "${2:-5}"
