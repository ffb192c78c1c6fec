"""Command line: one run, or a campaign of seeds against both systems.

  scripts/faults run --system paddock --servers 3 --seed 7 [--duration 30]
  scripts/faults campaign --systems paddock,zookeeper --servers 3,5 \\
      --seeds 0-99 --duration 30 --out bench/results/faults.md
  scripts/faults stale --systems paddock,zookeeper --writes 2000

Each run keeps its servers' logs, the workers' histories and result.json
under --workdir (default /tmp/paddock-faults), so a failing seed can be
read and rerun."""

import argparse
import gzip
import json
import shutil
import sys
import time
from collections import defaultdict
from pathlib import Path

from .run import Run
from .stale import report as stale_report


def seeds(text):
    out = []
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-")
            out.extend(range(int(a), int(b) + 1))
        else:
            out.append(int(part))
    return out


def one(kind, size, seed, duration, workdir, keep, disk=False):
    d = Path(workdir) / f"{kind}-{size}-{seed}{'-disk' if disk else ''}"
    shutil.rmtree(d, ignore_errors=True)
    started = time.monotonic()
    try:
        result = Run(kind, size, seed, duration, d, disk).execute()
    except Exception as e:  # noqa: BLE001 - a run that could not finish is reported
        result = {"system": kind, "servers": size, "seed": seed, "ok": False,
                  "anomalies": {"run": [f"{type(e).__name__}: {e}"]}}
    result["took_s"] = round(time.monotonic() - started, 1)
    if result["ok"] and not keep:
        shutil.rmtree(d / "servers", ignore_errors=True)
    return result


def summary(results):
    """A markdown table: per system and size, runs, clean runs, and how
    many runs showed each kind of anomaly (with the seeds)."""
    rows = defaultdict(list)
    for r in results:
        rows[(r["system"], r["servers"])].append(r)
    kinds = sorted({k for r in results for k, v in r["anomalies"].items() if v})
    lines = ["| " + " | ".join(["system", "servers", "runs", "clean"] + kinds) + " |",
             "|---|---|---|---|" + "---|" * len(kinds)]
    for (system, size), rs in sorted(rows.items()):
        cells = []
        for k in kinds:
            bad = [r["seed"] for r in rs if r["anomalies"].get(k)]
            cells.append(f"{len(bad)} ({', '.join(map(str, bad[:8]))}{'…' if len(bad) > 8 else ''})"
                         if bad else "0")
        lines.append("| " + " | ".join([system, str(size), str(len(rs)),
                                         str(sum(r["ok"] for r in rs))] + cells) + " |")
    return "\n".join(lines) + "\n"


def totals(results):
    """Per system and size: the faults injected and the operations done."""
    rows = defaultdict(lambda: defaultdict(int))
    for r in results:
        row = rows[(r["system"], r["servers"])]
        for step in r.get("schedule", []):
            row[f"fault {step[1]}"] += 1
        for k, v in r.get("ops", {}).items():
            row[k] += v
        row["watches armed"] += r.get("watches armed", 0)
        row["lock holds"] += r.get("lock holds", 0)
        row["owner sessions"] += r.get("owner sessions", 0)
    keys = sorted({k for row in rows.values() for k in row})
    systems = sorted(rows)
    lines = ["| | " + " | ".join(f"{s} {n}" for s, n in systems) + " |",
             "|---|" + "---|" * len(systems)]
    for k in keys:
        lines.append(f"| {k} | " + " | ".join(str(rows[s][k]) for s in systems) + " |")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(prog="faults")
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--system", default="paddock", choices=["paddock", "zookeeper"])
    r.add_argument("--servers", type=int, default=3)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--duration", type=float, default=30)
    r.add_argument("--workdir", default="/tmp/paddock-faults")
    r.add_argument("--disk", action="store_true", help="also fail disks (fsync)")
    c = sub.add_parser("campaign")
    c.add_argument("--systems", default="paddock,zookeeper")
    c.add_argument("--servers", default="3")
    c.add_argument("--seeds", default="0-9")
    c.add_argument("--duration", type=float, default=30)
    c.add_argument("--workdir", default="/tmp/paddock-faults")
    c.add_argument("--out", help="write the summary table (markdown) here")
    c.add_argument("--jsonl", help="append every run's result here")
    c.add_argument("--disk", action="store_true", help="also fail disks (fsync)")
    sm = sub.add_parser("summary", help="one table from the results of several campaigns")
    sm.add_argument("jsonl", nargs="+", help="files written by campaign --jsonl (or gzipped)")
    sm.add_argument("--out")
    st = sub.add_parser("stale", help="how often a read misses a write just acknowledged elsewhere")
    st.add_argument("--systems", default="paddock,zookeeper")
    st.add_argument("--servers", type=int, default=3)
    st.add_argument("--writes", type=int, default=2000)
    st.add_argument("--workdir", default="/tmp/paddock-faults")
    args = ap.parse_args()
    if args.cmd == "summary":
        results = [json.loads(line) for f in args.jsonl
                   for line in (gzip.open if f.endswith(".gz") else open)(f, "rt")
                   if line.strip()]
        table = summary(results) + "\n" + totals(results)
        print(table)
        if args.out:
            Path(args.out).write_text(table)
        return 0
    if args.cmd == "stale":
        for kind in args.systems.split(","):
            d = Path(args.workdir) / f"stale-{kind}"
            shutil.rmtree(d, ignore_errors=True)
            print(json.dumps(stale_report(kind, args.servers, args.writes, d)), flush=True)
        return 0
    if args.cmd == "run":
        result = one(args.system, args.servers, args.seed, args.duration, args.workdir, True,
                     args.disk)
        print(json.dumps({k: v for k, v in result.items() if k not in ("nemesis",)}, indent=1))
        return 0 if result["ok"] else 1
    results = []
    for seed in seeds(args.seeds):
        for size in (int(s) for s in args.servers.split(",")):
            for kind in args.systems.split(","):
                result = one(kind, size, seed, args.duration, args.workdir, False, args.disk)
                results.append(result)
                bad = {k: v[:2] for k, v in result["anomalies"].items() if v}
                print(f"{kind} {size} seed {seed}: {'ok' if result['ok'] else bad} "
                      f"({result['took_s']} s)", flush=True)
                if args.jsonl:
                    with open(args.jsonl, "a") as f:
                        f.write(json.dumps(result, default=str) + "\n")
    table = summary(results)
    print(table)
    if args.out:
        Path(args.out).write_text(table)
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
