"""Fixtures: a Paddock server (the binary under test) and an Apache
ZooKeeper 3.8.0 server (Debian package), each on a free loopback port with
its own temporary data directory, always stopped at the end."""

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ZK_CLASSPATH = "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def four_letter(port, word, timeout=2.0):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(word.encode())
        out = b""
        while True:
            chunk = s.recv(8192)
            if not chunk:
                return out.decode()
            out += chunk


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


def paddock_binary():
    env = os.environ.get("PADDOCK_BIN")
    if env:
        return env
    for profile in ("release", "debug"):
        p = ROOT / "target" / profile / "paddock"
        if p.exists():
            return str(p)
    raise RuntimeError("paddock binary not found: build it first (cargo build --release)")


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


def start_zookeeper(tmp, extra_cfg=""):
    if not shutil.which("java") or not Path("/usr/share/java/zookeeper.jar").exists():
        raise RuntimeError("Apache ZooKeeper is not installed (apt-get install zookeeper)")
    port = free_port()
    data = tmp / "zk-data"
    data.mkdir()
    cfg = tmp / "zoo.cfg"
    cfg.write_text(
        f"tickTime=2000\ndataDir={data}\nclientPort={port}\nclientPortAddress=127.0.0.1\n"
        "4lw.commands.whitelist=*\nadmin.enableServer=false\n" + extra_cfg)
    log = open(tmp / "zookeeper.log", "w")
    proc = subprocess.Popen(
        ["java", "-Xms256m", "-Xmx256m", "-cp", ZK_CLASSPATH,
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
