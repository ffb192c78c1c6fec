"""Draws a comparison chart (PNG): ops/s of ZooKeeper and Paddock side by
side for each workload, with Paddock's ratio written beside its bar.
Called by compare.py and ensemble.py; `python3 bench/chart.py` redraws both
charts from the JSON reports in bench/results."""

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def draw(rows, title, out):
    """rows: (workload, ZooKeeper ops/s, Paddock ops/s), top to bottom."""
    names = [r[0] for r in rows][::-1]
    zk = [r[1] for r in rows][::-1]
    pd = [r[2] for r in rows][::-1]
    height = 0.38
    fig, ax = plt.subplots(figsize=(10, 0.75 * len(rows) + 1.5))
    ys = range(len(rows))
    ax.barh([y + height / 2 for y in ys], zk, height, label="ZooKeeper 3.8.0", color="#9a9a9a")
    ax.barh([y - height / 2 for y in ys], pd, height, label="Paddock", color="#2b7bb9")
    for y, z, p in zip(ys, zk, pd):
        ax.text(p, y - height / 2, f"  {p / max(z, 1e-9):.2f}×", va="center", fontsize=9)
    ax.set_yticks(list(ys))
    ax.set_yticklabels(names)
    ax.set_xscale("log")
    ax.set_xlabel("operations per second (log scale)")
    ax.set_title(title)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.09), ncol=2, frameon=False)
    ax.margins(x=0.15)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    print(f"wrote {out}")


def from_reports(workloads, prefix):
    rows = []
    for i, (name, _) in enumerate(workloads):
        got = {}
        for system in ("zookeeper", "paddock"):
            path = RESULTS / f"{prefix}-{i}-{system}.json"
            if not path.exists():
                break
            got[system] = json.loads(path.read_text())["ops_per_s"]
        if len(got) == 2:
            rows.append((name, got["zookeeper"], got["paddock"]))
    return rows


def main():
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from compare import TREE_LOAD, WATCH_ROUND, WORKLOADS
    from ensemble import WORKLOADS as ENSEMBLE

    rows = from_reports(WORKLOADS + [WATCH_ROUND, TREE_LOAD], "standalone")
    draw([r for r in rows if r[0] != WATCH_ROUND[0]], "Standalone, fsync on",
         RESULTS / "standalone.png")
    draw(from_reports(ENSEMBLE, "ensemble"), "3-server ensemble, through a follower",
         RESULTS / "ensemble.png")


if __name__ == "__main__":
    main()
