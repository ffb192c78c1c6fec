"""Tail latency at a fixed rate, ZooKeeper then Paddock, each alone.
Started by bench/tail.sh; shares compare.py's server set-up."""

import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import compare

SPEC = compare.ROOT / "bench" / "tail.toml"
# The target: p99.9 at most a third of ZooKeeper's, and no request slower.
MAX_MS = 50


def run(seconds):
    got = {}
    for system in ("zookeeper", "paddock"):
        tmp = Path(tempfile.mkdtemp(prefix="paddock-tail-", dir=os.environ.get("TMPDIR", "/tmp")))
        proc, port = compare.start(system, tmp)
        try:
            out = compare.RESULTS / f"tail-{system}.json"
            progress = tmp / "progress.txt"
            got[system] = compare.bench(port, proc.pid, ["--spec", str(SPEC)], seconds, out,
                                        progress)
            got[system]["stalls"] = stalls(progress.read_text())
            got[system]["slow_writes"] = slow_writes((tmp / f"{system}.log").read_text())
            got[system]["fsync"] = fsync_times(port)
            print(f"{system:10} {got[system]['ops_per_s']:.0f} ops/s, "
                  f"p99.9 {got[system]['latency']['p999_us'] / 1000:.2f} ms, "
                  f"max {got[system]['latency']['max_us'] / 1000:.2f} ms", flush=True)
        finally:
            proc.kill()
            proc.wait()
            shutil.rmtree(tmp, ignore_errors=True)
    return got


def stalls(progress):
    """(second, ms) of each progress line whose slowest request took over
    MAX_MS."""
    found = []
    for line in progress.splitlines():
        m = re.search(r"\[\s*([\d.]+)s\].*slowest ([\d.]+) ms", line)
        if m and float(m.group(2)) > MAX_MS:
            found.append((float(m.group(1)), float(m.group(2))))
    return found


def fsync_times(port):
    """mntr's fsynctime (ms) for the whole run: (count, mean, most)."""
    text = compare.four_letter(port, "mntr")
    rows = dict(line.split("\t", 1) for line in text.splitlines() if "\t" in line)
    return (int(rows["zk_cnt_fsynctime"]), float(rows["zk_avg_fsynctime"]),
            float(rows["zk_max_fsynctime"]))


def slow_writes(server_log):
    """The durations (ms) of the log writes Paddock reported as slow."""
    return [int(m.group(1)) for m in re.finditer(r"a slow log write.*? ms=(\d+)", server_log)]


def row(name, zk, pd):
    cells = [compare.ms(zk[k]) + " / " + compare.ms(pd[k])
             for k in ("p50_us", "p99_us", "p999_us", "max_us")]
    return f"| {name} | " + " | ".join(cells) + f" | {pd['p999_us'] / zk['p999_us']:.2f}× |"


def write_table(got, seconds):
    zk, pd = got["zookeeper"], got["paddock"]
    lines = [
        "# Tail latency at a fixed rate, standalone",
        "",
        f"Machine: {compare.machine()}. `paddock bench --spec bench/tail.toml`: 20 000 getData/s",
        "and 5 000 setData/s (100 bytes, 1000 keys) sent on a fixed schedule over 32 connections",
        "(their schedules staggered, so that together they send at an even pace),",
        f"for {seconds:g} s (the first 10 s are warm-up, not counted). Latency is counted from each",
        "request's send, or from when it was due if the in-flight limit (64 per connection) held",
        "it back: a stall is not hidden by the load generator waiting, and the load generator's",
        "own lateness (its timer wakes it up to 1 ms late) is not counted. Each server ran alone, with",
        "the settings of [standalone.md](standalone.md) (fsync on, ZooKeeper `-Xms1g -Xmx1g`).",
        "Regenerate with `bench/tail.sh`.",
        "",
        f"Achieved: ZooKeeper {zk['ops_per_s']:.0f} ops/s ({sum(zk['errors'].values())} errors), "
        f"Paddock {pd['ops_per_s']:.0f} ops/s ({sum(pd['errors'].values())} errors).",
        "",
        "| requests | p50 ms ZK / Paddock | p99 ms | p99.9 ms | max ms | p99.9 ratio |",
        "|---|---|---|---|---|---|",
        row("all", zk["latency"], pd["latency"]),
    ]
    for op in ("get", "set"):
        lines.append(row(op, zk["per_op"][op]["latency"], pd["per_op"][op]["latency"]))
    worst = pd["latency"]["max_us"] / 1000

    def seconds_over(r):
        return ", ".join(f"{at:.0f} s ({ms:.0f} ms)" for at, ms in r["stalls"]) or "none"

    writes = pd["slow_writes"]

    def syncs(r):
        count, mean, most = r["fsync"]
        return f"{count} syncs, mean {mean:.2f} ms, slowest {most:.1f} ms"

    lines += [
        "",
        f"Target: p99.9 ≤ 0.33× ZooKeeper's and max < {MAX_MS} ms. Paddock's slowest request took "
        f"{worst:.1f} ms.",
        "",
        f"Seconds of the run (from its start) with a request slower than {MAX_MS} ms:",
        f"ZooKeeper {seconds_over(zk)}; Paddock {seconds_over(pd)}.",
        f"Paddock's log writes (write and fdatasync of one frame) over 100 ms: {len(writes)}"
        + (f", the slowest {max(writes)} ms." if writes else "."),
        "",
        "The log's syncs over the whole run (mntr `fsynctime`; ZooKeeper counts whole",
        f"milliseconds): ZooKeeper {syncs(zk)};",
        f"Paddock {syncs(pd)}. A write waits for",
        "the sync in progress and then its own, and a read behind a write of its connection",
        "waits for both, so the disk's slowest syncs set the tail of every request.",
        "",
    ]
    path = compare.RESULTS / "tail.md"
    path.write_text("\n".join(lines))
    print(f"wrote {path}")


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 600
    compare.RESULTS.mkdir(parents=True, exist_ok=True)
    write_table(run(seconds), seconds)


if __name__ == "__main__":
    main()
