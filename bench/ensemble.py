"""3-server ensembles of Apache ZooKeeper 3.8.0 and Paddock on this
machine: failover time after kill -9 of the leader, and read/write
throughput through a follower. Started by bench/ensemble.sh, which
installs ZooKeeper and builds Paddock. Writes bench/results/ensemble.md."""

import json
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "python"))
sys.path.insert(0, str(ROOT / "bench"))

from conftest import start_ensemble  # noqa: E402
import chart  # noqa: E402
from compare import bench, machine  # noqa: E402
from zkwire import Buf, Reader  # noqa: E402

RESULTS = ROOT / "bench" / "results"
WORKLOADS = [
    ("getData 32 × 32 via a follower", ["-w", "get", "-c", "32", "--inflight", "32"]),
    ("setData 32 × 32 via a follower", ["-w", "set", "-c", "32", "--inflight", "32"]),
    ("setData 1 × 1 via a follower", ["-w", "set", "-c", "1", "--inflight", "1"]),
]


def frame(payload):
    return struct.pack(">i", len(payload)) + payload


def recv_frame(sock):
    def exact(n):
        out = b""
        while len(out) < n:
            chunk = sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError("closed")
            out += chunk
        return out
    return exact(struct.unpack(">i", exact(4))[0])


def attach(port, session_id, passwd, timeout_s=0.3):
    """A connection to `port` holding the session, or None."""
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout_s)
        sock.sendall(frame(Buf().i32(0).i64(0).i32(30000).i64(session_id).buf(passwd)
                           .bool(False).bytes()))
        r = Reader(recv_frame(sock))
        _protocol, timeout_ms = r.i32(), r.i32()
        if timeout_ms <= 0:
            sock.close()
            return None
        return sock
    except OSError:
        return None


def set_probe(sock, xid):
    """setData /failover-probe; True when it succeeds."""
    try:
        sock.sendall(frame(struct.pack(">ii", xid, 5) + Buf().str("/failover-probe")
                           .buf(b"x").i32(-1).bytes()))
        while True:
            r = Reader(recv_frame(sock))
            rxid, _zxid, err = r.i32(), r.i64(), r.i32()
            if rxid == xid:
                return err == 0
    except OSError:
        return False


def new_session(port):
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(frame(Buf().i32(0).i64(0).i32(30000).i64(0).buf(b"\0" * 16).bool(False).bytes()))
    r = Reader(recv_frame(sock))
    r.i32(), r.i32()
    session_id, passwd = r.i64(), r.buf()
    sock.sendall(frame(struct.pack(">ii", 1, 1) + Buf().str("/failover-probe").buf(b"")
                       .acl([(31, "world", "anyone")]).i32(0).bytes()))
    recv_frame(sock)
    sock.close()
    return session_id, passwd


def failover(ensemble, trials):
    """Seconds from kill -9 of the leader to the first acknowledged write
    through a surviving server, by a client reattaching its session."""
    times = []
    for _ in range(trials):
        leader = ensemble.wait_leader()
        others = [m for m in ensemble.members if m is not leader]
        session_id, passwd = new_session(others[0].port)
        time.sleep(0.5)
        leader.kill()
        killed = time.time()
        xid, done = 10, False
        while not done:
            if time.time() - killed > 60:
                raise RuntimeError("no write within 60 s of the kill")
            for m in others:
                sock = attach(m.port, session_id, passwd)
                if sock is None:
                    continue
                xid += 1
                done = set_probe(sock, xid)
                sock.close()
                if done:
                    break
            if not done:
                time.sleep(0.005)
        times.append(time.time() - killed)
        leader.start()
    ensemble.wait_leader()
    return times


def main():
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 5
    RESULTS.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="paddock-ensemble-", dir=os.environ.get("TMPDIR", "/tmp")))
    results = {}
    try:
        for system in ("zookeeper", "paddock"):
            ensemble = start_ensemble(tmp, system)
            try:
                got = {"failover_s": failover(ensemble, trials), "workloads": {}}
                print(f"{system:10} failover {[round(t * 1000) for t in got['failover_s']]} ms",
                      flush=True)
                leader = ensemble.wait_leader()
                follower = next(m for m in ensemble.members if m is not leader)
                for i, (name, args) in enumerate(WORKLOADS):
                    out = RESULTS / f"ensemble-{i}-{system}.json"
                    r = bench(follower.port, follower.proc.pid, args, seconds, out)
                    got["workloads"][name] = r
                    print(f"{name:32} {system:10} {r['ops_per_s']:>10.0f} ops/s", flush=True)
                results[system] = got
            finally:
                ensemble.stop()
        write_table(results, trials, seconds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_table(results, trials, seconds):
    z, p = results["zookeeper"], results["paddock"]
    med = lambda xs: statistics.median(xs) * 1000  # noqa: E731
    lines = [
        "# 3-server ensembles: Paddock vs Apache ZooKeeper 3.8.0",
        "",
        f"Machine: {machine()}. Three servers of each system on 127.0.0.1, fsync on, ZooKeeper",
        "with `-Xms256m -Xmx256m` per server, tickTime 2000. Regenerate with `bench/ensemble.sh`.",
        "",
        "## Failover after kill -9 of the leader",
        "",
        f"From the kill to the first acknowledged setData through a surviving server, by a client",
        f"that reattaches its session (trying the survivors in turn), {trials} trials each;",
        "the killed server is restarted between trials.",
        "",
        "| system | median ms | min ms | max ms | all trials ms |",
        "|---|---|---|---|---|",
    ]
    for name, r in (("ZooKeeper", z), ("Paddock", p)):
        t = r["failover_s"]
        lines.append(f"| {name} | {med(t):.0f} | {min(t) * 1000:.0f} | {max(t) * 1000:.0f} "
                     f"| {', '.join(str(round(x * 1000)) for x in t)} |")
    lines += [
        "",
        f"## Throughput through a follower ({seconds:g} s per workload, `paddock bench`)",
        "",
        "| workload | ZooKeeper ops/s | Paddock ops/s | ratio | ZK p50 / p99 ms | Paddock p50 / p99 ms |",
        "|---|---|---|---|---|---|",
    ]
    for name in z["workloads"]:
        a, b = z["workloads"][name], p["workloads"][name]
        ms = lambda us: f"{us / 1000:.2f}"  # noqa: E731
        lines.append(
            f"| {name} | {a['ops_per_s']:.0f} | {b['ops_per_s']:.0f} "
            f"| {b['ops_per_s'] / max(a['ops_per_s'], 1e-9):.2f}× "
            f"| {ms(a['latency']['p50_us'])} / {ms(a['latency']['p99_us'])} "
            f"| {ms(b['latency']['p50_us'])} / {ms(b['latency']['p99_us'])} |")
    lines += ["", "Chart: [ensemble.png](ensemble.png)."]
    out = RESULTS / "ensemble.md"
    out.write_text("\n".join(lines) + "\n")
    chart.draw([(name, z["workloads"][name]["ops_per_s"], p["workloads"][name]["ops_per_s"])
                for name in z["workloads"]], "3-server ensemble, through a follower",
               RESULTS / "ensemble.png")
    (RESULTS / "ensemble.json").write_text(json.dumps(
        {k: {"failover_s": v["failover_s"]} for k, v in results.items()}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
