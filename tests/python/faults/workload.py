"""Worker processes of a fault run: each holds Kazoo sessions against the
ensemble and records what it did, one JSON line per event, with
CLOCK_MONOTONIC times (the same clock in every process of the machine).

  python3 -m faults.workload ROLE HOSTS LOG SEED STOPFILE TIMEOUT_S

Roles:
  client   one session at a time, sequential operations on the register
           keys (read, sync+read, write, CAS), sequential creates and multis; an
           operation is {"p","s","f","k","a","t0","t1","r","v"} (checker.py)
  owner    holds an ephemeral node and checks it every 200 ms; when its
           session expires it starts a new one (a new generation)
  watcher  arms one-shot data watches on the register keys and records
           each firing
  locker   takes Kazoo's lock recipe in turns with the other lockers
"""

import json
import os
import random
import sys
import threading
import time

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import BadVersionError, NodeExistsError, NoNodeError

KEYS = [f"/r/k{i}" for i in range(4)]
MULTI_KEY = "/m/key"
MULTI_HIST = "/m/hist"
SEQ_PARENT = "/seq"
OWNERS = "/owners"
LOCK = "/lock"
OP_TIMEOUT_S = 5.0


def now():
    return time.monotonic()


class Log:
    def __init__(self, path, name):
        self.f = open(path, "a", buffering=1)
        self.name = name
        self.lock = threading.Lock()

    def write(self, **event):
        event["p"] = self.name
        with self.lock:
            self.f.write(json.dumps(event) + "\n")


def connect(hosts, timeout_s, on_state=None):
    zk = KazooClient(hosts=hosts, timeout=timeout_s,
                     connection_retry={"max_tries": -1, "delay": 0.1, "backoff": 1.5,
                                       "max_delay": 1.0},
                     command_retry=None)
    if on_state:
        zk.add_listener(on_state)
    while True:
        try:
            zk.start(timeout=30)
            return zk
        except Exception:  # noqa: BLE001 - no server reachable yet: try again
            time.sleep(0.2)


def session_of(zk):
    return f"{zk.client_id[0]:x}" if zk.client_id else None


class Session:
    """The session an operation ran in: the same before and after it, or
    None when Kazoo moved to a new one meanwhile (it does so by itself
    once a session expires)."""

    def __init__(self, zk):
        self.zk, self.before = zk, session_of(zk)

    def id(self):
        after = session_of(self.zk)
        return self.before if self.before == after else None


def outcome(call):
    """Runs one request: ("ok", value), ("fail", error) when the server
    refused it (it did not happen), ("info", error) when nobody knows."""
    try:
        return "ok", call().get(timeout=OP_TIMEOUT_S)
    except BadVersionError:
        return "fail", "BadVersion"
    except NoNodeError:
        return "fail", "NoNode"
    except NodeExistsError:
        return "fail", "NodeExists"
    except Exception as e:  # noqa: BLE001 - connection loss, expiry, timeout
        return "info", type(e).__name__


def run_client(hosts, log, rng, stop, timeout_s):
    zk = None
    counter = 0
    versions = {}
    while not os.path.exists(stop):
        if zk is None or zk.state == KazooState.LOST or zk.client_state == "EXPIRED_SESSION":
            if zk is not None:
                zk.stop()
                zk.close()
            zk = connect(hosts, timeout_s)
        session = Session(zk)
        counter += 1
        value = f"{log.name}-{counter}"
        r = rng.random()
        t0 = now()
        if r < 0.25:
            key = rng.choice(KEYS)
            res, v = outcome(lambda: zk.get_async(key))
            if res == "ok":
                versions[key] = v[1].version
                v = (v[1].version, v[0].decode())
            log.write(s=session.id(), f="read", k=key, a=None, t0=t0, t1=now(), r=res, v=v)
        elif r < 0.45:
            key = rng.choice(KEYS)
            res, v = outcome(lambda: zk.set_async(key, value.encode()))
            log.write(s=session.id(), f="write", k=key, a=value, t0=t0, t1=now(), r=res,
                      v=v.version if res == "ok" else v)
        elif r < 0.7:
            key = rng.choice(KEYS)
            expected = versions.get(key, 0) + rng.choice([0, 0, 0, 1])
            res, v = outcome(lambda: zk.set_async(key, value.encode(), version=expected))
            if res == "ok":
                versions[key] = v.version
            log.write(s=session.id(), f="cas", k=key, a=[expected, value], t0=t0, t1=now(), r=res,
                      v=v.version if res == "ok" else v)
        elif r < 0.8:
            key = rng.choice(KEYS)
            res, v = outcome(lambda: zk.sync_async(key))
            if res == "ok":
                res, v = outcome(lambda: zk.get_async(key))
            if res == "ok":
                v = (v[1].version, v[0].decode())
            log.write(s=session.id(), f="sync-read", k=key, a=None, t0=t0, t1=now(), r=res, v=v)
        elif r < 0.92:
            res, v = outcome(lambda: zk.create_async(f"{SEQ_PARENT}/{log.name}-",
                                                     value.encode(), sequence=True))
            log.write(s=session.id(), f="create-seq", k=SEQ_PARENT, a=value, t0=t0, t1=now(), r=res, v=v)
        else:
            res, v = outcome(lambda: zk.get_async(MULTI_KEY))
            if res == "ok":
                expected = v[1].version
                tx = zk.transaction()
                tx.set_data(MULTI_KEY, value.encode(), version=expected)
                tx.create(f"{MULTI_HIST}/{expected + 1}", value.encode())
                t0 = now()
                res, v = outcome(tx.commit_async)
                if res == "ok" and any(isinstance(x, Exception) for x in v):
                    res, v = "fail", "rolled back"
                log.write(s=session.id(), f="multi", k=MULTI_KEY, a=expected, t0=t0, t1=now(), r=res,
                          v=expected + 1 if res == "ok" else v)
        time.sleep(rng.uniform(0.005, 0.03))
    zk.stop()
    zk.close()


def run_owner(hosts, log, rng, stop, timeout_s):
    generation = 0
    while not os.path.exists(stop):
        generation += 1
        lost = threading.Event()

        def on_state(state, lost=lost):
            if state == KazooState.LOST:
                lost.set()

        zk = connect(hosts, timeout_s, on_state)
        path = f"{OWNERS}/{log.name}-g{generation}"
        who = f"{log.name}-g{generation}"
        res, v = outcome(lambda: zk.create_async(path, who.encode(), ephemeral=True))
        if res != "ok":
            zk.stop()
            zk.close()
            continue
        log.write(ev="created", who=who, path=path, s=session_of(zk), t=now())
        while not os.path.exists(stop) and not lost.is_set():
            t0 = now()
            res, v = outcome(lambda: zk.exists_async(path))
            if res == "ok":
                log.write(ev="ack" if v is not None else "missing", who=who, t=t0)
            elif v == "SessionExpiredError":
                lost.set()
            time.sleep(0.2)
        if lost.is_set():
            log.write(ev="lost", who=who, t=now())
        zk.stop()
        zk.close()


def run_watcher(hosts, log, rng, stop, timeout_s):
    armed = {}  # key -> the arm id waiting to fire
    lock = threading.Lock()
    lost = threading.Event()

    def on_state(state):
        if state == KazooState.LOST:
            lost.set()

    zk = connect(hosts, timeout_s, on_state)
    n = 0
    while not os.path.exists(stop):
        if lost.is_set():
            log.write(ev="lost", t=now(), arms=sorted(armed.values()))
            armed.clear()
            lost.clear()
            zk.stop()
            zk.close()
            zk = connect(hosts, timeout_s, on_state)
        key = rng.choice(KEYS)
        with lock:
            if key in armed:
                time.sleep(0.02)
                continue
            n += 1
            arm = n
            armed[key] = arm

        def fired(event, arm=arm, key=key):
            with lock:
                if armed.get(key) == arm:
                    del armed[key]
            log.write(ev="fired", arm=arm, k=key, t=now(), type=event.type)

        res, v = outcome(lambda: zk.get_async(key, watch=fired))
        if res == "ok":
            log.write(ev="armed", arm=arm, k=key, t=now(), ver=v[1].version, s=session_of(zk))
        else:
            with lock:
                if armed.get(key) == arm:
                    del armed[key]
        time.sleep(rng.uniform(0.01, 0.05))
    log.write(ev="end", t=now(), lost=lost.is_set())
    zk.stop()
    zk.close()


def run_locker(hosts, log, rng, stop, timeout_s):
    """Takes Kazoo's lock recipe in turns with the other lockers, holding
    it 50-150 ms; records each hold and every connection state change (a
    holder that was disconnected may have lost the lock unknowingly)."""

    def on_state(state):
        log.write(ev="state", state=str(state), t=now())

    zk = connect(hosts, timeout_s, on_state)
    lock = zk.Lock(LOCK, log.name)
    while not os.path.exists(stop):
        try:
            if not lock.acquire(timeout=3):
                continue
        except Exception:  # noqa: BLE001 - connection trouble: try again
            time.sleep(0.1)
            continue
        acquired = now()
        time.sleep(rng.uniform(0.05, 0.15))
        log.write(ev="hold", t0=acquired, t1=now())
        try:
            lock.release()
        except Exception:  # noqa: BLE001 - the lock went with the session
            pass
        time.sleep(rng.uniform(0.0, 0.05))
    zk.stop()
    zk.close()


def main():
    role, hosts, path, seed, stop, timeout_s = sys.argv[1:7]
    rng = random.Random(int(seed))
    name = os.path.basename(path).rsplit(".", 1)[0]
    log = Log(path, name)
    {"client": run_client, "owner": run_owner, "watcher": run_watcher, "locker": run_locker}[role](
        hosts, log, rng, stop, float(timeout_s))


if __name__ == "__main__":
    main()
