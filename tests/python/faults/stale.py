"""How often a read on one server misses a write acknowledged a moment
earlier through another (ZooKeeper promises no more: reads are served
locally, and a follower may lag; `sync` first closes the gap). A writer
on server A sets a key and, as soon as the write is acknowledged, a reader
on server B reads it; the read is stale if it shows an older version.

  scripts/faults stale --system paddock --writes 2000
"""

import random
import time

from kazoo.client import KazooClient

from .cluster import Cluster


def measure(kind, size, writes, workdir, seed=0):
    """Fractions of stale reads, for reads through a follower of a write
    made through another follower, and through the leader."""
    cluster = Cluster(kind, size, workdir)
    rng = random.Random(seed)
    try:
        cluster.start_all()
        cluster.wait_ready(90)
        leader = cluster.leader()
        followers = [sid for sid in cluster.members if sid != leader]
        clients = {}
        for sid, m in cluster.members.items():
            zk = KazooClient(hosts=f"127.0.0.1:{m.client}", timeout=10.0)
            zk.start(timeout=30)
            clients[sid] = zk
        clients[leader].ensure_path("/stale")
        for zk in clients.values():
            zk.sync("/stale")
        out = {}
        for name, writer in (("via a follower", followers[0]), ("via the leader", leader)):
            stale = 0
            for _ in range(writes):
                reader = rng.choice([sid for sid in followers if sid != writer])
                version = clients[writer].set("/stale", b"x").version
                if clients[reader].get("/stale")[1].version < version:
                    stale += 1
            out[name] = stale / writes
        for zk in clients.values():
            zk.stop()
            zk.close()
        return out
    finally:
        cluster.stop()


def report(kind, size, writes, workdir):
    started = time.monotonic()
    result = measure(kind, size, writes, workdir)
    return {"system": kind, "servers": size, "writes": writes,
            **{f"stale reads, write {k}": f"{v:.2%}" for k, v in result.items()},
            "took_s": round(time.monotonic() - started, 1)}
