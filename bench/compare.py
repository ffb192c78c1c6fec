"""Runs the same `paddock bench` workloads against Apache ZooKeeper and
Paddock (standalone, fsync on both) and writes a markdown table of ratios.
Started by bench/compare.sh, which installs ZooKeeper and builds Paddock."""

import json
import os
import platform
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import chart

ROOT = Path(__file__).resolve().parent.parent
PADDOCK = ROOT / "target" / "release" / "paddock"
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT / "tests" / "python"))
ZK_CLASSPATH = "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar"

# name, bench arguments
WORKLOADS = [
    ("getData 1 conn × 1", ["-w", "get", "-c", "1", "--inflight", "1"]),
    ("setData 1 conn × 1", ["-w", "set", "-c", "1", "--inflight", "1"]),
    ("getData 32 × 32", ["-w", "get", "-c", "32", "--inflight", "32"]),
    ("setData 32 × 32", ["-w", "set", "-c", "32", "--inflight", "32"]),
    ("create+delete 32 × 32", ["-w", "create", "-c", "32", "--inflight", "32"]),
    ("10% setData 1 KiB 32 × 32", ["-w", "read-90", "-c", "32", "--inflight", "32", "--payload", "1024"]),
    ("session storm: 16 connections", ["-w", "session-storm"]),
    ("lock churn: 16 contenders", ["-w", "lock-churn", "-c", "16"]),
    # Connecting 10 000 sessions takes seconds: a longer run.
    ("watch fan-out: 1 writer, 10 000 watchers", ["-w", "watch-fanout", "-c", "10000", "-d", "20"]),
]
# Fan-out latency: one setData at a time, each timed from its send to the
# last of the watchers' notifications. A latency, so a table of its own.
WATCH_ROUND = ("watch round", ["-w", "watch-round", "-c", "10000", "-d", "20"])
# Sessions held open, idle, to weigh what one costs the server: measured
# over the last IDLE_SESSIONS, once IDLE_WARMUP are open, so what a server
# sets up once (thread caches, the first pages of its tables) is left out.
IDLE_WARMUP = 1000
IDLE_SESSIONS = 5000
# RSS is read this long after a restarted server serves, once recovery's
# temporary memory is gone.
SETTLE_S = 10

# Loaded last (it leaves a million znodes behind), then both servers are
# killed and restarted to time recovery.
TREE_LOAD = ("tree load: 1M znodes × 100 B, 32 × 32",
             ["-w", "tree-load", "--total", "1000000", "-c", "32", "--inflight", "32", "-d", "120"])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def four_letter(port, word, timeout_s=10):
    """The server's whole answer to a four-letter word."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as s:
        s.sendall(word.encode())
        text = b""
        while chunk := s.recv(65536):
            text += chunk
    return text.decode()


def wait_serving(port, proc, deadline_s=60):
    end = time.time() + deadline_s
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            # ZooKeeper answers imok a moment before it takes sessions.
            if four_letter(port, "ruok", timeout_s=1) == "imok" and serves(port, "/"):
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("server did not start")


def start(system, tmp, port=None):
    port = port or free_port()
    data = tmp / f"{system}-data"
    data.mkdir(exist_ok=True)
    cfg = tmp / f"{system}.cfg"
    cfg.write_text(
        f"tickTime=2000\ndataDir={data}\nclientPort={port}\nclientPortAddress=127.0.0.1\n"
        "maxClientCnxns=0\n4lw.commands.whitelist=*\nadmin.enableServer=false\n")
    log = open(tmp / f"{system}.log", "a")
    proc = subprocess.Popen(start_command(system, cfg), stdout=log, stderr=subprocess.STDOUT)
    wait_serving(port, proc)
    return proc, port


def start_command(system, cfg):
    if system == "zookeeper":
        return ["java", "-Xms1g", "-Xmx1g", "-cp", ZK_CLASSPATH,
                "org.apache.zookeeper.server.quorum.QuorumPeerMain", str(cfg)]
    return [str(PADDOCK), "server", "--config", str(cfg)]


def bench(port, pid, args, seconds, out, progress=None):
    """Runs `paddock bench`; its per-second progress lines go to the file
    `progress` if given."""
    cmd = [str(PADDOCK), "bench", "--server", f"127.0.0.1:{port}", "--server-pid", str(pid),
           "--json", str(out)] + args
    if "-d" not in args:
        cmd += ["-d", str(seconds)]
    with open(progress or os.devnull, "w") as err:
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=err)
    return json.loads(out.read_text())


def rss_kib(pid):
    status = Path(f"/proc/{pid}/status").read_text()
    return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))


def idle_session_kib(port, pid):
    """Server memory per idle session: RSS before and after opening
    IDLE_SESSIONS sessions that then send nothing, with IDLE_WARMUP
    already open."""
    from zkwire import Session
    sessions = [Session(port, timeout_ms=30000) for _ in range(IDLE_WARMUP)]
    time.sleep(1)
    before = rss_kib(pid)
    sessions += [Session(port, timeout_ms=30000) for _ in range(IDLE_SESSIONS)]
    time.sleep(2)
    after = rss_kib(pid)
    for s in sessions:
        s.close()
    return (after - before) / IDLE_SESSIONS


def machine():
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()[0]
    return f"{os.cpu_count()} cores ({cpu}), Linux {platform.release()}, {java}"


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 10
    RESULTS.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="paddock-compare-", dir=os.environ.get("TMPDIR", "/tmp")))
    servers = {}
    try:
        for system in ("zookeeper", "paddock"):
            servers[system] = start(system, tmp)
        idle = {}
        for system in ("zookeeper", "paddock"):
            proc, port = servers[system]
            idle[system] = idle_session_kib(port, proc.pid)
            print(f"idle session {system:10} {idle[system]:.1f} KiB", flush=True)
        rows = []
        for i, (name, args) in enumerate(WORKLOADS + [WATCH_ROUND, TREE_LOAD]):
            got = {}
            for system in ("zookeeper", "paddock"):
                proc, port = servers[system]
                out = RESULTS / f"standalone-{i}-{system}.json"
                got[system] = bench(port, proc.pid, args, seconds, out)
                print(f"{name:28} {system:10} {got[system]['ops_per_s']:>10.0f} ops/s", flush=True)
            rows.append((name, got))
        round_row = rows.pop(len(WORKLOADS))
        restart = {}
        for system in ("zookeeper", "paddock"):
            restart[system] = restarted(system, tmp, servers)
            print(f"restart with 1M znodes {system:10} {restart[system][0]:.1f} s, "
                  f"{restart[system][1] / 1024:.0f} MiB", flush=True)
        write_table(rows, round_row[1], seconds, restart, idle)
    finally:
        for proc, _ in servers.values():
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def serves(port, path):
    """True once a new session can read `path`."""
    from zkwire import Session
    try:
        s = Session(port, timeout_ms=30000)
        try:
            return s.call("exists", path)[0] == 0
        finally:
            s.close()
    except (OSError, ConnectionError, EOFError, AssertionError, struct.error):
        return False


def restarted(system, tmp, servers):
    """Kills the server (kill -9) and starts it again on the same data:
    seconds until a session reads a znode, and its RSS in KiB SETTLE_S
    later."""
    proc, port = servers[system]
    proc.kill()
    proc.wait()
    begin = time.time()
    log = open(tmp / f"{system}.log", "a")
    cmd = start_command(system, tmp / f"{system}.cfg")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    servers[system] = (proc, port)
    while not serves(port, "/paddock-bench/t"):
        if proc.poll() is not None or time.time() - begin > 600:
            raise RuntimeError(f"{system} did not come back")
        time.sleep(0.05)
    took = time.time() - begin
    time.sleep(SETTLE_S)
    return took, rss_kib(proc.pid)


def ms(us):
    return f"{us / 1000:.2f}"


def write_table(rows, rounds, seconds, restart, idle):
    lines = [
        "# Paddock vs Apache ZooKeeper 3.8.0, standalone",
        "",
        f"Machine: {machine()}. Both servers fsync every write (ZooKeeper `forceSync=yes`, its default),",
        "keep their data in the same temporary directory, and are loaded by the same `paddock bench`",
        f"(one thread), {seconds:g} s per workload after 1 s of warm-up (the fan-out runs 20 s, the tree",
        "load until it has created 1M znodes), workloads alternating between the two servers.",
        "ZooKeeper runs with `-Xms1g -Xmx1g`. 100-byte values unless stated.",
        "Regenerate with `bench/compare.sh`.",
        "",
        "| workload | ZooKeeper ops/s | Paddock ops/s | ratio | ZK p50 / p99 ms | Paddock p50 / p99 ms | ZK CPU s per 1k ops | Paddock CPU s per 1k ops | ZK RSS MiB | Paddock RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, got in rows:
        z, p = got["zookeeper"], got["paddock"]

        def cpu(r):
            s = r.get("server_process") or {}
            return f"{s.get('cpu_s', 0) * 1000 / max(r['ops'], 1):.4f}"

        def rss(r):
            s = r.get("server_process") or {}
            return f"{s.get('rss_kib', 0) / 1024:.0f}"

        ratio = p["ops_per_s"] / max(z["ops_per_s"], 1e-9)
        lines.append(
            f"| {name} | {z['ops_per_s']:.0f} | {p['ops_per_s']:.0f} | {ratio:.2f}× "
            f"| {ms(z['latency']['p50_us'])} / {ms(z['latency']['p99_us'])} "
            f"| {ms(p['latency']['p50_us'])} / {ms(p['latency']['p99_us'])} "
            f"| {cpu(z)} | {cpu(p)} | {rss(z)} | {rss(p)} |")
    (zt, zr), (pt, pr) = restart["zookeeper"], restart["paddock"]
    lines += [
        "",
        "## Restart with 1M znodes",
        "",
        "After the tree load both servers are killed (kill -9) and started again on their data;",
        "the time is from the start to the first read by a new session.",
        "",
        "| measure | ZooKeeper | Paddock | ratio |",
        "|---|---|---|---|",
        f"| restart to serving | {zt:.1f} s | {pt:.1f} s | {pt / zt:.2f}× |",
        f"| RSS {SETTLE_S} s after serving again | {zr / 1024:.0f} MiB | {pr / 1024:.0f} MiB "
        f"| {pr / zr:.2f}× |",
        "",
        "## Idle sessions",
        "",
        f"Server RSS grown by opening {IDLE_SESSIONS} more sessions that then stay idle, with",
        f"{IDLE_WARMUP} already open (read 2 s later), per session.",
        "",
        "| measure | ZooKeeper | Paddock | ratio |",
        "|---|---|---|---|",
        f"| memory per idle session | {idle['zookeeper']:.1f} KiB | {idle['paddock']:.1f} KiB "
        f"| {idle['paddock'] / idle['zookeeper']:.2f}× |",
    ]
    zl, pl = rounds["zookeeper"]["latency"], rounds["paddock"]["latency"]
    lines += [
        "",
        "## Watch fan-out latency",
        "",
        "10 000 sessions hold a persistent watch on one znode; another sets it, one setData at",
        "a time, and waits until every watcher has been notified. Each round is timed from the",
        "setData's send to the last notification's arrival (`paddock bench -w watch-round`).",
        "",
        "| round latency | ZooKeeper ms | Paddock ms | ratio |",
        "|---|---|---|---|",
    ] + [
        f"| {key[:-3]} | {ms(zl[key])} | {ms(pl[key])} | {pl[key] / max(zl[key], 1):.2f}× |"
        for key in ("p50_us", "p99_us", "max_us")
    ]
    lines += [
        "",
        "Watch fan-out counts both the writer's setData and each notification delivered (every",
        "watcher holds a persistent watch on one znode); lock churn counts acquire-and-release",
        "cycles of the lock recipe (ephemeral sequential znodes, each contender watching the one",
        "ahead). Chart: [standalone.png](standalone.png).",
    ]
    out = RESULTS / "standalone.md"
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")
    chart.draw([(name, got["zookeeper"]["ops_per_s"], got["paddock"]["ops_per_s"])
                for name, got in rows], "Standalone, fsync on", RESULTS / "standalone.png")


if __name__ == "__main__":
    main()
