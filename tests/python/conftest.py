"""Fixtures: a Paddock server (the binary under test) and an Apache
ZooKeeper 3.8.0 server (Debian package), each on a free loopback port with
its own temporary data directory, always stopped at the end."""

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from faults.cluster import (  # noqa: F401 - the tests import these from here
    ROOT, ZK_CLASSPATH, four_letter, free_port, paddock_binary, server_mode)


def wait_until(cond, timeout=30.0):
    """Polls `cond` until it holds or `timeout` seconds pass; its last answer."""
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.1)
    return cond()


def wait_serving(port, proc, what, deadline_s=30):
    end = time.time() + deadline_s
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited early with code {proc.returncode}")
        try:
            if "Mode:" in four_letter(port, "srvr", timeout=0.5):
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not start serving on port {port}")


class Server:
    def __init__(self, name, port, proc, log):
        self.name, self.port, self.proc, self.log = name, port, proc, log

    @property
    def hosts(self):
        return f"127.0.0.1:{self.port}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def start_paddock(tmp, *extra):
    port = free_port()
    log = open(tmp / "paddock.log", "w")
    proc = subprocess.Popen(
        [paddock_binary(), "server", "--port", str(port), "--data-dir", str(tmp / "paddock-data"),
         "--tick-time", "2000", *extra],
        stdout=log, stderr=subprocess.STDOUT)
    server = Server("paddock", port, proc, log)
    try:
        wait_serving(port, proc, "paddock")
    except Exception:
        server.stop()
        raise
    return server


def start_zookeeper(tmp, extra_cfg="", jvm_flags=()):
    if not shutil.which("java") or not Path("/usr/share/java/zookeeper.jar").exists():
        raise RuntimeError("Apache ZooKeeper is not installed (apt-get install zookeeper)")
    port = free_port()
    data = tmp / "zk-data"
    data.mkdir()
    cfg = tmp / "zoo.cfg"
    cfg.write_text(
        f"tickTime=2000\ndataDir={data}\nclientPort={port}\nclientPortAddress=127.0.0.1\n"
        "4lw.commands.whitelist=*\n" + ("" if "admin.enableServer" in extra_cfg else "admin.enableServer=false\n") + extra_cfg)
    log = open(tmp / "zookeeper.log", "w")
    proc = subprocess.Popen(
        ["java", "-Xms256m", "-Xmx256m", *jvm_flags, "-cp", ZK_CLASSPATH,
         "org.apache.zookeeper.server.quorum.QuorumPeerMain", str(cfg)],
        stdout=log, stderr=subprocess.STDOUT)
    server = Server("zookeeper", port, proc, log)
    try:
        wait_serving(port, proc, "zookeeper", deadline_s=60)
    except Exception:
        server.stop()
        raise
    return server


@pytest.fixture(scope="module")
def paddock(tmp_path_factory):
    server = start_paddock(tmp_path_factory.mktemp("paddock"))
    yield server
    server.stop()


@pytest.fixture
def zk(paddock):
    """A started Kazoo client on the module's Paddock server."""
    from kazoo.client import KazooClient
    client = KazooClient(hosts=paddock.hosts, timeout=10)
    client.start(timeout=10)
    yield client
    client.stop()
    client.close()


@pytest.fixture(scope="module")
def zookeeper(tmp_path_factory):
    server = start_zookeeper(tmp_path_factory.mktemp("zookeeper"))
    yield server
    server.stop()


def assert_same_transcript(want, got):
    """Compares two servers' transcripts entry by entry, reporting the first
    difference (ZooKeeper's first)."""
    for w, g in zip(want, got):
        assert g == w, f"first difference:\nzookeeper: {w}\npaddock:   {g}"
    assert len(got) == len(want)


class Member:
    """One server of an ensemble: its process can be killed and started again."""

    def __init__(self, kind, sid, port, cfg, tmp, jvm_flags=()):
        self.kind, self.sid, self.port, self.cfg, self.tmp = kind, sid, port, cfg, tmp
        self.jvm_flags = list(jvm_flags)
        self.proc = None
        self.log = None

    def start(self):
        self.log = open(self.tmp / f"{self.kind}{self.sid}.log", "a")
        if self.kind == "paddock":
            cmd = [paddock_binary(), "server", "--config", str(self.cfg)]
        else:
            cmd = ["java", "-Xms256m", "-Xmx256m", *self.jvm_flags, "-cp", ZK_CLASSPATH,
                   "org.apache.zookeeper.server.quorum.QuorumPeerMain", str(self.cfg)]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.log:
            self.log.close()
            self.log = None

    def mode(self):
        return server_mode(self.port)


class Ensemble:
    def __init__(self, members):
        self.members = members

    @property
    def hosts(self):
        return ",".join(f"127.0.0.1:{m.port}" for m in self.members)

    def running(self):
        return [m for m in self.members if m.proc and m.proc.poll() is None]

    def wait_leader(self, deadline_s=60):
        """The leader, once every running member serves."""
        end = time.time() + deadline_s
        while time.time() < end:
            modes = [(m, m.mode()) for m in self.running()]
            leaders = [m for m, mode in modes if mode == "leader"]
            if len(leaders) == 1 and all(mode for _, mode in modes):
                return leaders[0]
            time.sleep(0.05)
        raise RuntimeError("the ensemble has no leader")

    def stop(self):
        for m in self.members:
            m.kill()


def start_ensemble(tmp, kind, size=3, tick_ms=2000, extra_cfg="", jvm_flags=()):
    """`size` voters of `kind` ("paddock" or "zookeeper") on loopback;
    `extra_cfg` goes into every zoo.cfg, `jvm_flags` to ZooKeeper's JVM."""
    ports = [(free_port(), free_port(), free_port()) for _ in range(size)]
    lines = "".join(
        f"server.{i + 1}=127.0.0.1:{peer}:{election};127.0.0.1:{client}\n"
        for i, (client, peer, election) in enumerate(ports))
    members = []
    for i, (client, _, _) in enumerate(ports):
        sid = i + 1
        data = tmp / f"{kind}{sid}-data"
        data.mkdir()
        (data / "myid").write_text(f"{sid}\n")
        cfg = tmp / f"{kind}{sid}.cfg"
        cfg.write_text(
            f"tickTime={tick_ms}\ninitLimit=10\nsyncLimit=5\ndataDir={data}\n"
            f"clientPort={client}\nclientPortAddress=127.0.0.1\n4lw.commands.whitelist=*\n"
            "admin.enableServer=false\n" + extra_cfg + lines)
        members.append(Member(kind, sid, client, cfg, tmp, jvm_flags))
    ensemble = Ensemble(members)
    for m in members:
        m.start()
    try:
        ensemble.wait_leader()
    except Exception:
        ensemble.stop()
        raise
    return ensemble
