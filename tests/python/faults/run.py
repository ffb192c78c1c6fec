"""One fault run: an ensemble, a seeded nemesis schedule, the workers, the
final state, and the checkers' verdict. The same schedule runs against
Paddock and against Apache ZooKeeper 3.8.0.

A schedule is a list of steps, each a fault held for a while and then
healed, drawn from the seed alone (the seed reproduces it; which server is
"the leader" is looked up when the step starts)."""

import json
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

from kazoo.client import KazooClient

from . import checker
from .cluster import Cluster
from .workload import KEYS, LOCK, MULTI_HIST, MULTI_KEY, OWNERS, SEQ_PARENT

FAULTS = ("isolate-leader", "partition", "bridge", "one-way", "deaf-leader", "kill",
          "kill-leader", "pause-leader", "pause")
# With --disk: a failed disk (fsync and fdatasync fail with EIO) or a full
# one (writes to data files fail with ENOSPC) on the leader or on another
# server, until the heal restarts it.
DISK_FAULTS = ("disk-fail-leader", "disk-fail", "disk-full-leader", "disk-full")
TICK_MS = 500

# Kazoo warns on every dropped connection, and the nemesis drops many.
logging.getLogger("kazoo.client").setLevel(logging.ERROR)
SESSION_TIMEOUT_S = 4.0


def schedule(seed, size, duration_s, faults=FAULTS):
    """The steps of a run: (start_s, fault, detail, hold_s), from the seed.
    Pauses last longer than the session timeout, so a paused leader wakes
    up with every session silent past it."""
    rng = random.Random(seed)
    steps, t = [], 2.0
    while True:
        fault = rng.choice(faults)
        hold = rng.uniform(SESSION_TIMEOUT_S + 0.5, SESSION_TIMEOUT_S + 2.0) \
            if fault.startswith("pause") else rng.uniform(2.0, 6.0)
        if t + hold > duration_s:
            return steps
        ids = list(range(1, size + 1))
        rng.shuffle(ids)
        steps.append((round(t, 2), fault, ids, round(hold, 2)))
        t += hold + rng.uniform(2.0, 4.0)


def blocked_links(fault, ids, leader, size):
    """The directed links a network fault blackholes. `ids` is the step's
    shuffled server list; the leader (if any) is moved to its front for
    the faults aimed at it."""
    if leader is not None and fault in ("isolate-leader", "one-way", "deaf-leader"):
        ids = [leader] + [i for i in ids if i != leader]
    every = [(a, b) for a in ids for b in ids if a != b]
    if fault == "isolate-leader":
        return [(a, b) for a, b in every if ids[0] in (a, b)]
    if fault == "one-way":
        # The leader hears nobody, but everybody hears the leader.
        return [(a, b) for a, b in every if b == ids[0]]
    if fault == "deaf-leader":
        # The leader does not hear one follower, which hears everybody.
        return [(ids[1], ids[0])]
    minority = ids[: (size - 1) // 2]
    if fault == "partition":
        return [(a, b) for a, b in every if (a in minority) != (b in minority)]
    if fault == "bridge":
        # Two sides that cannot see each other, and one server that sees both.
        bridge, rest = ids[0], ids[1:]
        left = rest[: len(rest) // 2]
        return [(a, b) for a, b in every
                if bridge not in (a, b) and (a in left) != (b in left)]
    return []


def setup_tree(hosts):
    zk = KazooClient(hosts=hosts, timeout=SESSION_TIMEOUT_S)
    zk.start(timeout=30)
    for key in KEYS:
        zk.ensure_path(key)
    for path in (SEQ_PARENT, OWNERS, MULTI_KEY, MULTI_HIST, LOCK):
        zk.ensure_path(path)
    zk.stop()
    zk.close()


def final_client(hosts):
    zk = KazooClient(hosts=hosts, timeout=10.0)
    zk.start(timeout=60)
    return zk


def dump_tree(port):
    """Every node under the workload's roots as one server has it."""
    zk = KazooClient(hosts=f"127.0.0.1:{port}", timeout=10.0, read_only=False)
    zk.start(timeout=30)
    zk.sync("/")
    out = {}
    stack = ["/r", SEQ_PARENT, "/m"]
    while stack:
        path = stack.pop()
        data, stat = zk.get(path)
        children = sorted(zk.get_children(path))
        out[path] = (data.decode(), stat.version, tuple(children))
        stack.extend(f"{path}/{c}" for c in children)
    zk.stop()
    zk.close()
    return out


def leaderless(leadership, start, end):
    """Seconds within [start, end] during which no leader served, from the
    (time, leader or None) changes noted while the run went on."""
    total = 0.0
    for (t, leader), nxt in zip(leadership, leadership[1:] + [(end, None)]):
        if leader is None:
            total += max(0.0, min(nxt[0], end) - max(t, start))
    return total


def let_go(zk):
    """Stops a Kazoo client without waiting on a server that may not answer."""
    threading.Thread(target=lambda: (zk.stop(), zk.close()), daemon=True).start()


def read_log(path):
    out = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass  # the last line of a killed process may be cut
    return out


class Run:
    def __init__(self, kind, size, seed, duration_s, workdir, disk_faults=False):
        self.kind, self.size, self.seed, self.duration_s = kind, size, seed, duration_s
        self.faults = FAULTS + DISK_FAULTS if disk_faults else FAULTS
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.stop_clients = self.dir / "stop-clients"
        self.stop_owners = self.dir / "stop-owners"
        self.workers = {}
        self.killed_owners = {}
        self.nemesis_log = []
        # Who -> when a killed owner's ephemeral was first seen gone.
        self.gone = {}
        self.gone_watchers = []
        self.ready_at = None

    def spawn(self, role, name, stopfile):
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
        rng = random.Random(f"{self.seed}-{name}")
        self.workers[name] = subprocess.Popen(
            [sys.executable, "-m", "faults.workload", role, self.cluster.hosts,
             str(self.dir / f"{name}.jsonl"), str(rng.randrange(1 << 30)), str(stopfile),
             str(SESSION_TIMEOUT_S)],
            env=env, stdout=subprocess.DEVNULL, stderr=open(self.dir / f"{name}.err", "w"))

    def note(self, what, **detail):
        self.nemesis_log.append(dict(t=time.monotonic(), what=what, **detail))

    def apply(self, fault, ids):
        leader = self.cluster.leader()
        target = leader if fault.endswith("leader") and leader else ids[0]
        if fault in ("kill", "kill-leader"):
            self.cluster.kill(target)
            self.note(fault, server=target)
        elif fault in DISK_FAULTS:
            self.cluster.fail_disk(target, "full" if fault.startswith("disk-full") else "failed")
            self.note(fault, server=target)
        elif fault in ("pause", "pause-leader"):
            self.cluster.pause(target)
            self.note(fault, server=target)
        else:
            links = blocked_links(fault, ids, leader, self.size)
            self.cluster.links.set(links)
            self.note(fault, links=links, leader=leader)

    def execute(self):
        rng = random.Random(f"{self.seed}-owners")
        steps = schedule(self.seed, self.size, self.duration_s, self.faults)
        self.cluster = Cluster(self.kind, self.size, self.dir / "servers", TICK_MS,
                               disk_faults=self.faults != FAULTS)
        try:
            self.cluster.start_all()
            self.cluster.wait_ready(90)
            setup_tree(self.cluster.hosts)
            for i in range(3):
                self.spawn("client", f"client{i}", self.stop_clients)
            for i in range(4):
                self.spawn("owner", f"owner{i}", self.stop_owners)
            self.spawn("watcher", "watcher", self.stop_owners)
            for i in range(2):
                self.spawn("locker", f"locker{i}", self.stop_clients)
            leadership = threading.Thread(target=self.follow_leadership, daemon=True)
            leadership.start()
            start = time.monotonic()
            owner_kills = sorted(rng.uniform(3, self.duration_s) for _ in range(2))
            for at, fault, ids, hold in steps:
                self._sleep_until(start + at, owner_kills, start)
                self.apply(fault, ids)
                self._sleep_until(start + at + hold, owner_kills, start)
                self.cluster.heal()
                self.note("heal")
            self._sleep_until(start + self.duration_s, owner_kills, start)
            self.cluster.heal()
            self.note("final heal")
            self.kill_owner("owner3")
            self.cluster.wait_ready(90)
            ready = time.monotonic()
            self.ready_at = ready
            self.note("ready")
            return self.finish(ready, steps)
        finally:
            for p in self.workers.values():
                if p.poll() is None:
                    p.kill()
                    p.wait()
            self.cluster.stop()

    def follow_leadership(self):
        """Notes each time a leader begins to serve (after none, or after
        another) and each time none serves, until the run's final checks
        are done."""
        current = None
        while not self.stop_owners.exists():
            leader = self.cluster.leader()
            if leader != current:
                self.note("leader", server=leader)
            current = leader
            time.sleep(0.1)

    def _sleep_until(self, t, owner_kills, start):
        while time.monotonic() < t:
            if owner_kills and time.monotonic() >= start + owner_kills[0]:
                owner_kills.pop(0)
                alive = [n for n in ("owner0", "owner1", "owner2") if n not in self.killed_owners]
                if alive:
                    self.kill_owner(alive[0])
            time.sleep(0.05)

    def kill_owner(self, name):
        p = self.workers[name]
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            p.wait()
            self.killed_owners[name] = time.monotonic()
            self.note("kill client", client=name)
            last = self.last_ephemeral(name)
            if last is not None:
                watcher = threading.Thread(target=self.watch_gone, args=(last, self.gone),
                                           daemon=True)
                watcher.start()
                self.gone_watchers.append(watcher)

    def finish(self, ready, steps):
        zk = final_client(self.cluster.hosts)
        time.sleep(1.0)
        self.stop_clients.touch()
        for name, p in self.workers.items():
            if name.startswith(("client", "locker")):
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
        zk.sync("/")
        finals = {}
        for key in KEYS:
            data, stat = zk.get(key)
            finals[key] = (stat.version, data.decode())
        multi_version = zk.get(MULTI_KEY)[1].version
        history = zk.get_children(MULTI_HIST)
        children = zk.get_children(SEQ_PARENT)
        for watcher in self.gone_watchers:
            watcher.join()
        # Watches on the last writes have had time to fire by now.
        self.stop_owners.touch()
        for p in self.workers.values():
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        zk.stop()
        zk.close()
        owners = self.owner_events(ready)
        trees = {f"server {sid}": dump_tree(m.client) for sid, m in self.cluster.members.items()}

        ops = [o for n in self.workers if n.startswith("client")
               for o in read_log(self.dir / f"{n}.jsonl")]
        arms = self.watch_arms()
        # Two seconds beyond timeout + 2 ticks: leadership is sampled every
        # 100 ms, and a re-election that brief may go unseen while it gives
        # every session a full timeout (ZooKeeper's own runs need it).
        vanish_s = SESSION_TIMEOUT_S + 2 * TICK_MS / 1000 + 2.0
        anomalies = {
            "linearizable registers": checker.check_registers(ops, finals),
            "session order and real values": checker.check_session_reads(ops),
            "sync then read": checker.check_sync_reads(ops),
            "sequential creates": checker.check_sequential(ops, children),
            "multi atomicity": checker.check_multi(ops, multi_version, history),
            "ephemerals and expiry": checker.check_owners(owners, SESSION_TIMEOUT_S, 1.5, vanish_s),
            "watches": checker.check_watches(arms, finals),
            "lock": checker.check_locks(*self.lock_holds()),
            "replicas identical": checker.check_replicas(trees),
        }
        counts = defaultdict(int)
        for o in ops:
            counts[f"{o['f']} {o['r']}"] += 1
        result = {
            "system": self.kind, "servers": self.size, "seed": self.seed,
            "disk faults": self.faults != FAULTS,
            "duration_s": self.duration_s,
            "schedule": [list(s) for s in steps],
            "nemesis": self.nemesis_log,
            "ops": dict(sorted(counts.items())),
            "watches armed": len(arms),
            "lock holds": len(self.lock_holds()[0]),
            "owner sessions": len(owners),
            "anomalies": anomalies,
            "ok": not any(anomalies.values()),
            # What the expiry checks judged, for reading a failed run.
            "owners": {who: {k: v for k, v in rec.items() if k not in ("acks",)}
                       for who, rec in owners.items()},
        }
        (self.dir / "result.json").write_text(json.dumps(result, indent=1, default=str))
        return result

    def last_ephemeral(self, name):
        created = [e for e in read_log(self.dir / f"{name}.jsonl") if e["ev"] == "created"]
        return created[-1] if created else None

    def watch_gone(self, last, gone):
        """Records when a killed owner's last ephemeral is first seen gone
        on any server, asking each server directly every 50 ms from the
        moment the owner was killed (a server shows the delete once it
        applies it; the first to show it is the closest to its commit, and
        a paused or cut-off server cannot hold the answer up). Gives up
        three session timeouts after the run's end."""
        clients = {}
        deadline = None
        while deadline is None or time.monotonic() < deadline:
            if deadline is None and self.ready_at is not None:
                deadline = self.ready_at + SESSION_TIMEOUT_S * 3 + 10
            for sid, m in self.cluster.members.items():
                if sid not in clients:
                    zk = KazooClient(hosts=f"127.0.0.1:{m.client}", timeout=2.0)
                    try:
                        zk.start(timeout=0.5)
                    except Exception:  # noqa: BLE001 - down, paused or not serving
                        continue
                    clients[sid] = zk
                try:
                    seen = clients[sid].exists_async(last["path"]).get(timeout=0.3)
                except Exception:  # noqa: BLE001 - ask again, on a new connection
                    let_go(clients.pop(sid))
                    continue
                if seen is None:
                    gone[last["who"]] = time.monotonic()
                    deadline = 0
                    break
            time.sleep(0.05)
        for zk in clients.values():
            let_go(zk)

    def owner_events(self, ready):
        """Each owner session's events (checker.check_owners)."""
        leadership = [(n["t"], n["server"]) for n in self.nemesis_log if n["what"] == "leader"]
        events = {}
        for n in (f"owner{i}" for i in range(4)):
            for e in read_log(self.dir / f"{n}.jsonl"):
                rec = events.setdefault(e["who"], {"acks": [], "missing": [], "ready": ready})
                if e["ev"] == "created":
                    rec["created"] = e["t"]
                elif e["ev"] == "ack":
                    rec["acks"].append(e["t"])
                elif e["ev"] == "missing":
                    rec["missing"].append(e["t"])
                elif e["ev"] == "lost":
                    rec["lost"] = e["t"]
            last = self.last_ephemeral(n)
            if n in self.killed_owners and last is not None:
                rec = events[last["who"]]
                rec["killed"] = self.killed_owners[n]
                if last["who"] in self.gone:
                    rec["gone"] = self.gone[last["who"]]
                    # The quorum that expired it: the last leader to begin
                    # serving before it went (a new leader, or one back
                    # with its quorum, gives every session a full timeout),
                    # and how long no leader served since.
                    rec["ready"] = max([rec["killed"]] + [
                        t for t, leader in leadership if leader is not None and t <= rec["gone"]])
                    rec["unavailable"] = leaderless(leadership, rec["ready"], rec["gone"])
        events = {who: rec for who, rec in events.items() if "created" in rec}
        for rec in events.values():
            # Seen missing just before its session expired: the expiry's
            # own race, judged by the premature-expiry check. Missing
            # while acknowledged later is not excused.
            if "lost" in rec:
                last_ack = max(rec["acks"], default=rec["created"])
                rec["missing"] = [t for t in rec["missing"] if t < last_ack]
        return events

    def lock_holds(self):
        holds, states = [], defaultdict(list)
        for n in ("locker0", "locker1"):
            for e in read_log(self.dir / f"{n}.jsonl"):
                if e["ev"] == "hold":
                    holds.append(e)
                elif e["ev"] == "state" and e["state"] == "LOST":
                    states[n].append(e["t"])
        return holds, states

    def watch_arms(self):
        arms = {}
        lost = set()
        for e in read_log(self.dir / "watcher.jsonl"):
            # A firing may be logged before its arming (the callback runs
            # on Kazoo's thread while the reader logs the reply).
            if e["ev"] in ("armed", "fired"):
                arm = arms.setdefault(e["arm"], {"k": e["k"], "fired": []})
            if e["ev"] == "armed":
                arm.update(t=e["t"], ver=e["ver"])
            elif e["ev"] == "fired":
                arm["fired"].append(e["t"])
            elif e["ev"] == "lost" or (e["ev"] == "end" and e.get("lost")):
                lost.update(a for a in arms if not arms[a]["fired"])
        for a in lost:
            arms[a]["lost"] = True
        return [a for a in arms.values() if "ver" in a]
