"""reconfig, differentially: the same requests, through Kazoo, against a
3-server Apache ZooKeeper 3.8.0 ensemble and a 3-server Paddock ensemble
give the same replies, the same /zookeeper/config (text, Stat, watch
events on a leader and a follower), and the same errors in ZooKeeper's
order. Server ids differ between the two runs (whoever leads), so lines
are compared by role; their order is checked against ZooKeeper's rule,
which the ZooKeeper run is held to as well."""

import base64
import hashlib
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import (BadArgumentsError, BadVersionError, NoAuthError,
                              ReconfigDisabledError, UnimplementedError)

from conftest import ROOT, free_port, start_ensemble, start_paddock, start_zookeeper

SUPER = "super:secret"
CONFIG = "/zookeeper/config"


def digest(user_pw):
    user = user_pw.split(":")[0]
    return user + ":" + base64.b64encode(hashlib.sha1(user_pw.encode()).digest()).decode()


def servers(config):
    """The server lines of a /zookeeper/config text, by id, in order."""
    out = {}
    for line in config.decode().splitlines():
        if line.startswith("server."):
            key, spec = line.split("=", 1)
            out[int(key[len("server."):])] = spec
    return out


def version(config):
    return int(next(line for line in config.decode().splitlines()
                    if line.startswith("version="))[len("version="):], 16)


class JavaHashMap:
    """The iteration order of ZooKeeper's HashMap<Long, QuorumServer>:
    buckets by spread hash, each in insertion order, doubling past 3/4."""

    def __init__(self, size):
        self.table = [[] for _ in range(size)]
        self.len = 0

    @classmethod
    def copy_of(cls, ids):
        size = 16
        if ids:
            size = 1
            while size < int(len(ids) / 0.75 + 1.0):
                size *= 2
        m = cls(size)
        for i in ids:
            m.put(i)
        return m

    def bucket(self, i):
        h = (i ^ (i >> 32)) & 0xFFFFFFFF
        return (h ^ (h >> 16)) & (len(self.table) - 1)

    def put(self, i):
        b = self.bucket(i)
        if i not in self.table[b]:
            self.table[b].append(i)
            self.len += 1
            if self.len > len(self.table) * 3 // 4:
                order = self.order()
                self.table = [[] for _ in range(len(self.table) * 2)]
                for j in order:
                    self.table[self.bucket(j)].append(j)

    def remove(self, i):
        b = self.bucket(i)
        if i in self.table[b]:
            self.table[b].remove(i)
            self.len -= 1

    def order(self):
        return [i for b in self.table for i in b]


def incremental_order(before, leaving, joining):
    """ZooKeeper's leader copies the membership, removes the leavers and
    re-puts each joiner (PrepRequestProcessor, incremental reconfig)."""
    m = JavaHashMap.copy_of(before)
    for i in leaving:
        m.remove(i)
    for i in joining:
        m.remove(i)
        m.put(i)
    return m.order()


def fresh_order(ids):
    m = JavaHashMap(16)
    for i in sorted(ids):
        m.put(i)
    return m.order()


class Watcher:
    """Every event on /zookeeper/config seen by one client, re-armed."""

    def __init__(self, client, name):
        self.client, self.name, self.events = client, name, []
        self.lock = threading.Lock()
        client.get(CONFIG, watch=self)

    def __call__(self, event):
        with self.lock:
            self.events.append(event.type)
        try:
            self.client.get(CONFIG, watch=self)
        except Exception:  # noqa: BLE001 - a lost connection ends the watch
            pass

    def changed_since(self, n, deadline_s=10):
        end = time.time() + deadline_s
        while time.time() < end:
            with self.lock:
                if "CHANGED" in self.events[n:]:
                    return True
            time.sleep(0.05)
        return False


def scenario(ensemble):
    """A reconfig sequence; each step's outcome, with servers named by role
    (L leader, V a follower that leaves and comes back, K the follower that
    stays, O an observer that joins) so two runs compare."""
    steps = []
    leader = ensemble.wait_leader()
    others = sorted((m for m in ensemble.members if m is not leader), key=lambda m: m.sid)
    victim, keeper = others
    roles = {leader.sid: "L", victim.sid: "V", keeper.sid: "K", 4: "O", 100: "X"}

    admin = KazooClient(hosts=f"127.0.0.1:{leader.port}", timeout=10, auth_data=[("digest", SUPER)])
    plain = KazooClient(hosts=f"127.0.0.1:{keeper.port}", timeout=10)
    for c in (admin, plain):
        c.start(timeout=20)
    names = {}

    def name_ports(config):
        for sid, spec in servers(config).items():
            for kind, port in zip("pec", re.findall(r":(\d+)", spec)):
                names.setdefault(port, f"{roles[sid]}.{kind}")

    def normal(config):
        """The lines by role, sorted, and the Stat's relations."""
        name_ports(config)
        lines = []
        for sid, spec in servers(config).items():
            spec = re.sub(r":(\d+)", lambda p: ":" + names.get(p.group(1), "?"), spec)
            lines.append(f"server.{roles[sid]}={spec}")
        return sorted(lines)

    def stat_of(config, stat):
        return {"version": stat.version, "mzxid is the config version": stat.mzxid == version(config),
                "czxid": stat.czxid, "ctime": stat.ctime, "mtime set": stat.mtime > 0,
                "aversion": stat.aversion, "dataLength": stat.dataLength == len(config),
                "numChildren": stat.numChildren, "ephemeralOwner": stat.ephemeralOwner}

    def attempt(label, client, **kw):
        kw.setdefault("joining", None)
        kw.setdefault("leaving", None)
        kw.setdefault("new_members", None)
        try:
            client.reconfig(**kw)
            steps.append((label, "ok"))
        except Exception as e:  # noqa: BLE001 - the error class is the outcome
            steps.append((label, type(e).__name__))

    def change(label, before, watchers, leaving=(), joining=(), members=None):
        counts = [len(w.events) for w in watchers]
        data, stat = admin.reconfig(
            joining=",".join(f"server.{i}={s}" for i, s in joining) or None,
            leaving=",".join(str(i) for i in leaving) or None, new_members=members)
        order = list(servers(data))
        want = (fresh_order(order) if members else
                incremental_order(list(servers(before)), leaving, [i for i, _ in joining]))
        assert order == want, f"{label}: servers listed {order}, ZooKeeper's order {want}"
        assert version(data) > version(before), label
        for w, n in zip(watchers, counts):
            assert w.changed_since(n), f"{label}: no NodeDataChanged for {w.name}"
        steps.append((label, normal(data), stat_of(data, stat)))
        return data

    try:
        config, stat = admin.get(CONFIG)
        deadline = time.time() + 10
        while b"version=" not in config and time.time() < deadline:
            time.sleep(0.05)
            config, stat = admin.get(CONFIG)
        assert list(servers(config)) == fresh_order(servers(config)), config
        steps.append(("initial", normal(config), stat_of(config, stat)))
        steps.append(("acl", [(a.perms, a.id.scheme, a.id.id) for a in admin.get_acls(CONFIG)[0]]))
        watchers = [Watcher(admin, "a client of the leader"), Watcher(plain, "a client of a follower")]
        v = version(config)
        spec = servers(config)

        # ZooKeeper's order: version, then arguments, then the caller's right.
        attempt("no right, wrong version", plain, leaving=str(victim.sid), from_config=v + 1)
        attempt("no right, bad arguments", plain, joining="server.9=127.0.0.1:1:2")
        attempt("no right", plain, leaving=str(victim.sid), from_config=v)
        attempt("no right, an observer (kazoo test_no_super_auth)", plain,
                joining="server.999=0.0.0.0:1234:2345:observer;3456")
        attempt("wrong version", admin, leaving=str(victim.sid), from_config=v + 1)
        attempt("bad arguments", admin, joining="server.9=127.0.0.1:1:2")
        attempt("bad arguments, wrong version", admin, joining="server.9=127.0.0.1:1:2",
                from_config=v + 1)
        attempt("unreadable (kazoo test_bad_input)", admin, joining="some thing")
        attempt("would leave one voter", admin, leaving=f"{victim.sid},{keeper.sid}")

        config = change("a follower leaves", config, watchers, leaving=[victim.sid])
        observer = f"127.0.0.1:{free_port()}:{free_port()}:observer;127.0.0.1:{free_port()}"
        config = change("an observer joins", config, watchers, joining=[(4, observer)])
        config = change("the follower comes back", config, watchers,
                        joining=[(victim.sid, spec[victim.sid])])

        # Kazoo's test_add_remove_observer, as it is written.
        p1, p2, p3 = free_port(), free_port(), free_port()
        joining = f"server.100=0.0.0.0:{p1}:{p2}:observer;0.0.0.0:{p3}"
        data, _ = admin.reconfig(joining=joining, leaving=None, new_members=None)
        steps.append(("kazoo: an observer joins", joining.encode() in data))
        data, _ = admin.reconfig(joining=None, leaving="100", new_members=None)
        steps.append(("kazoo: it leaves", joining.encode() not in data))
        attempt("kazoo: a version from the future", plain, joining=joining,
                from_config=version(data) + 1)

        members = ",".join(f"server.{i}={s}" for i, s in spec.items())
        config = change("the whole membership", data, watchers, members=members)
        config = change("the leader leaves", config, watchers[1:], leaving=[leader.sid])
        # Paddock's followers drop their clients when the leader changes
        # (a new epoch); the client reconnects, as after any election.
        plain.retry(plain.sync, "/")
        shown, stat = plain.retry(plain.get, CONFIG)
        steps.append(("a follower's view after", normal(shown), stat_of(shown, stat)))
        assert shown == config
        return steps
    finally:
        for c in (plain, admin):
            c.stop()
            c.close()


def run(tmp_path, kind, scenario_of, extra_cfg):
    flags = [f"-Dzookeeper.DigestAuthenticationProvider.superDigest={digest(SUPER)}"]
    e = start_ensemble(tmp_path, kind, tick_ms=500,
                       extra_cfg=extra_cfg + f"superDigest={digest(SUPER)}\n", jvm_flags=flags)
    try:
        return scenario_of(e)
    finally:
        e.stop()


def both(tmp_path, scenario_of, extra_cfg="reconfigEnabled=true\n"):
    outcomes = {}
    for kind in ("zookeeper", "paddock"):
        (tmp_path / kind).mkdir()
        outcomes[kind] = run(tmp_path / kind, kind, scenario_of, extra_cfg)
    return outcomes


def test_reconfig_gives_what_zookeeper_gives(tmp_path):
    outcomes = both(tmp_path, scenario)
    for z, p in zip(outcomes["zookeeper"], outcomes["paddock"]):
        assert p == z, f"first difference:\nzookeeper: {z}\npaddock:   {p}"
    assert len(outcomes["paddock"]) == len(outcomes["zookeeper"]) == 20, outcomes


def disabled(ensemble):
    leader = ensemble.wait_leader()
    c = KazooClient(hosts=f"127.0.0.1:{leader.port}", timeout=10, auth_data=[("digest", SUPER)])
    c.start(timeout=20)
    try:
        with pytest.raises(ReconfigDisabledError):
            c.reconfig(joining=None, leaving="2", new_members=None, from_config=12345)
        config, stat = c.get(CONFIG)
        return [sorted(servers(config)), stat.version]
    finally:
        c.stop()
        c.close()


def test_reconfig_is_refused_when_not_enabled(tmp_path):
    outcomes = both(tmp_path, disabled, extra_cfg="")
    assert outcomes["paddock"] == outcomes["zookeeper"] == [[1, 2, 3], -1]


@pytest.mark.parametrize("kind", ["zookeeper", "paddock"])
def test_a_standalone_server_answers_unimplemented(tmp_path, kind):
    cfg = f"reconfigEnabled=true\nsuperDigest={digest(SUPER)}\n"
    if kind == "zookeeper":
        server = start_zookeeper(tmp_path, cfg)
    else:
        (tmp_path / "zoo.cfg").write_text(
            f"dataDir={tmp_path / 'data'}\nclientPort={free_port()}\n" + cfg)
        server = start_paddock(tmp_path, "--config", str(tmp_path / "zoo.cfg"))
    try:
        c = KazooClient(hosts=server.hosts, timeout=10, auth_data=[("digest", SUPER)])
        c.start(timeout=20)
        with pytest.raises(UnimplementedError):
            c.reconfig(joining=None, leaving="2", new_members=None, from_config=999)
        config, stat = c.get(CONFIG)
        assert (config, stat.version, stat.mzxid) == (b"", 0, 0)
        c.stop()
        c.close()
    finally:
        server.stop()


CURATOR = ":".join(f"/usr/share/java/{jar}.jar" for jar in (
    "curator-framework", "curator-client", "zookeeper", "guava", "slf4j-api"))


def curator_tracker(tmp_path):
    """Compiles tests/java/EnsembleTrackerCheck.java; a scenario running it."""
    if not shutil.which("javac") or not Path("/usr/share/java/curator-framework.jar").exists():
        raise RuntimeError("javac and Debian's libcurator-framework-java are needed "
                           "(scripts/test.sh installs them)")
    classes = tmp_path / "classes"
    subprocess.run(["javac", "-d", str(classes), "-cp", CURATOR,
                    str(ROOT / "tests" / "java" / "EnsembleTrackerCheck.java")], check=True)

    def scenario_of(ensemble):
        leader = ensemble.wait_leader()
        victim = min(m.sid for m in ensemble.members if m is not leader)
        out = subprocess.run(
            ["java", "-cp", f"{classes}:{CURATOR}", "EnsembleTrackerCheck",
             f"127.0.0.1:{leader.port}", SUPER, str(victim)],
            capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr
        return out.stdout.splitlines()
    return scenario_of


def test_curators_ensemble_tracker_follows_a_reconfig(tmp_path):
    outcomes = both(tmp_path, curator_tracker(tmp_path))
    assert outcomes["paddock"] == outcomes["zookeeper"] == [
        "tracking 3 servers, the first among them: true",
        "after removing one: 2 servers, without it: true",
        "after adding it back: 3 servers, with it: true",
    ]
