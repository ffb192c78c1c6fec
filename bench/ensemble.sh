#!/usr/bin/env bash
# 3-server ensembles of Apache ZooKeeper 3.8.0 (Debian package) and
# Paddock on this machine: failover time after kill -9 of the leader and
# throughput through a follower. Writes bench/results/ensemble.md.
#   bench/ensemble.sh [failover trials, default 5] [seconds per workload, default 5]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/need-zookeeper.sh
exec python3 bench/ensemble.py "${1:-5}" "${2:-5}"
