"""Runs the same `paddock bench` workloads against Apache ZooKeeper and
Paddock (standalone, fsync on both) and writes a markdown table of ratios.
Started by bench/compare.sh, which installs ZooKeeper and builds Paddock."""

import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import chart

ROOT = Path(__file__).resolve().parent.parent
PADDOCK = ROOT / "target" / "release" / "paddock"
RESULTS = ROOT / "bench" / "results"
ZK_CLASSPATH = "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar"

# name, bench arguments
WORKLOADS = [
    ("getData 1 conn × 1", ["-w", "get", "-c", "1", "--inflight", "1"]),
    ("setData 1 conn × 1", ["-w", "set", "-c", "1", "--inflight", "1"]),
    ("getData 32 × 32", ["-w", "get", "-c", "32", "--inflight", "32"]),
    ("setData 32 × 32", ["-w", "set", "-c", "32", "--inflight", "32"]),
    ("create+delete 32 × 32", ["-w", "create", "-c", "32", "--inflight", "32"]),
    ("10% setData 1 KiB 32 × 32", ["-w", "read-90", "-c", "32", "--inflight", "32", "--payload", "1024"]),
    ("watch fan-out: 1 writer, 100 watchers", ["-w", "watch-fanout", "-c", "100"]),
    ("lock churn: 16 contenders", ["-w", "lock-churn", "-c", "16"]),
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_serving(port, proc, deadline_s=60):
    end = time.time() + deadline_s
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"ruok")
                if s.recv(4) == b"imok":
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("server did not start")


def start(system, tmp):
    port = free_port()
    data = tmp / f"{system}-data"
    data.mkdir()
    cfg = tmp / f"{system}.cfg"
    cfg.write_text(
        f"tickTime=2000\ndataDir={data}\nclientPort={port}\nclientPortAddress=127.0.0.1\n"
        "maxClientCnxns=0\n4lw.commands.whitelist=*\nadmin.enableServer=false\n")
    log = open(tmp / f"{system}.log", "w")
    if system == "zookeeper":
        cmd = ["java", "-Xms1g", "-Xmx1g", "-cp", ZK_CLASSPATH,
               "org.apache.zookeeper.server.quorum.QuorumPeerMain", str(cfg)]
    else:
        cmd = [str(PADDOCK), "server", "--config", str(cfg)]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    wait_serving(port, proc)
    return proc, port


def bench(port, pid, args, seconds, out):
    cmd = [str(PADDOCK), "bench", "--server", f"127.0.0.1:{port}", "--server-pid", str(pid),
           "-d", str(seconds), "--json", str(out)] + args
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return json.loads(out.read_text())


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
        rows = []
        for i, (name, args) in enumerate(WORKLOADS):
            got = {}
            for system in ("zookeeper", "paddock"):
                proc, port = servers[system]
                out = RESULTS / f"standalone-{i}-{system}.json"
                got[system] = bench(port, proc.pid, args, seconds, out)
                print(f"{name:28} {system:10} {got[system]['ops_per_s']:>10.0f} ops/s", flush=True)
            rows.append((name, got))
        write_table(rows, seconds)
    finally:
        for proc, _ in servers.values():
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def ms(us):
    return f"{us / 1000:.2f}"


def write_table(rows, seconds):
    lines = [
        "# Paddock vs Apache ZooKeeper 3.8.0, standalone",
        "",
        f"Machine: {machine()}. Both servers fsync every write (ZooKeeper `forceSync=yes`, its default),",
        "keep their data in the same temporary directory, and are loaded by the same `paddock bench`",
        f"(one thread), {seconds:g} s per workload after 1 s of warm-up, workloads alternating between",
        "the two servers. ZooKeeper runs with `-Xms1g -Xmx1g`. 100-byte values unless stated.",
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
