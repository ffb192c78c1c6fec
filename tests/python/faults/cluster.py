"""An ensemble of real server processes (Paddock or Apache ZooKeeper 3.8.0)
on 127.0.0.1 whose peer traffic runs through TCP proxies the harness owns:
one per directed pair of servers (and per peer port), so a link can be
blackholed in one direction or both without resetting any connection. What
a blackholed link held flows once it heals, as TCP delivers after a
partition. Clients connect to the servers directly."""

import os
import random
import select
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
ZK_CLASSPATH = ":".join(["/etc/zookeeper/conf", "/usr/share/java/zookeeper.jar"] + [
    f"/usr/share/java/{jar}.jar" for jar in (
        "jetty9-server", "jetty9-servlet", "jetty9-util", "jetty9-util-ajax", "jetty9-http",
        "jetty9-io", "jetty9-security", "servlet-api", "jackson-databind", "jackson-core",
        "jackson-annotations",
        # Netty (Debian's libnetty-java, a dependency of zookeeper): the
        # TLS server and client (NettyServerCnxnFactory, ClientCnxnSocketNetty).
        "netty-buffer", "netty-codec", "netty-common", "netty-handler", "netty-resolver",
        "netty-transport")])


_HANDED_OUT = set()


def free_port(rng=random.SystemRandom()):
    """A loopback port free now, not handed out before by this process, and
    below the kernel's ephemeral range: a port from that range (what binding
    port 0 gives) can meanwhile become the source port of some outgoing
    connection, or be given out twice, and a server started (or restarted)
    on it then cannot listen."""
    low = 32768
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        pass
    if len(_HANDED_OUT) > 10000:
        # A long campaign: the servers that had the first ports are gone.
        _HANDED_OUT.clear()
    while True:
        port = rng.randrange(max(1024, low - 12000), low)
        if port in _HANDED_OUT:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port


def four_letter(port, word, timeout=2.0):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(word.encode())
        out = b""
        while True:
            chunk = s.recv(8192)
            if not chunk:
                return out.decode()
            out += chunk


def server_mode(port):
    """What `srvr` says the server at `port` is (leader, follower, ...),
    or None if it does not answer or does not serve."""
    try:
        for line in four_letter(port, "srvr", timeout=0.5).splitlines():
            if line.startswith("Mode: "):
                return line[len("Mode: "):]
    except OSError:
        pass
    return None


def paddock_binary():
    env = os.environ.get("PADDOCK_BIN")
    if env:
        return env
    for profile in ("release", "debug"):
        p = ROOT / "target" / profile / "paddock"
        if p.exists():
            return str(p)
    raise RuntimeError("paddock binary not found: build it first (cargo build --release)")


class Links:
    """Which directed links (from, to) are blackholed. Shared by every proxy."""

    def __init__(self):
        self.blocked = set()
        self.lock = threading.Lock()

    def set(self, blocked):
        with self.lock:
            self.blocked = set(blocked)

    def open(self, a, b):
        with self.lock:
            return (a, b) not in self.blocked


class Proxy:
    """Listens for server `src` dialling server `dst` and relays to `port`.
    Bytes from src to dst flow only while the link (src, dst) is open, and
    bytes back only while (dst, src) is open; held bytes wait, unread, in
    the sockets' buffers."""

    def __init__(self, src, dst, port, links):
        self.src, self.dst, self.target, self.links = src, dst, port, links
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                inbound, _ = self.listener.accept()
            except OSError:
                return
            try:
                outbound = socket.create_connection(("127.0.0.1", self.target), timeout=2)
            except OSError:
                inbound.close()
                continue
            threading.Thread(target=self._relay, args=(inbound, outbound), daemon=True).start()

    def _relay(self, a, b):
        # a is src's side, b is dst's.
        dirs = {a.fileno(): (a, b, (self.src, self.dst)), b.fileno(): (b, a, (self.dst, self.src))}
        poller = select.poll()
        watched = set()
        try:
            while not self.closed:
                for fd, (_, _, link) in dirs.items():
                    want = self.links.open(*link)
                    if want and fd not in watched:
                        poller.register(fd, select.POLLIN)
                        watched.add(fd)
                    elif not want and fd in watched:
                        poller.unregister(fd)
                        watched.discard(fd)
                for fd, _ in poller.poll(20):
                    src, dst, _ = dirs[fd]
                    data = src.recv(65536)
                    if not data:
                        return
                    dst.sendall(data)
        except OSError:
            pass
        finally:
            a.close()
            b.close()

    def close(self):
        self.closed = True
        self.listener.close()


def disk_shim(workdir):
    """Builds diskfail.c (gcc) into `workdir`: preloaded into a server, it
    fails fsync and fdatasync with EIO while the server's disk-failed flag
    file exists, and writes to data files with ENOSPC while its disk-full
    one does."""
    out = Path(workdir) / "diskfail.so"
    if not out.exists():
        subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", str(out),
                        str(Path(__file__).with_name("diskfail.c")), "-ldl"], check=True)
    return out


class Member:
    def __init__(self, sid, kind, dirpath):
        self.sid, self.kind, self.dir = sid, kind, dirpath
        self.client, self.peer, self.election = (free_port() for _ in range(3))
        self.proc = None
        self.paused = False
        # While these files exist the server's fsyncs fail, or its disk is
        # full (diskfail.c).
        self.disk_failed = dirpath / "disk-failed"
        self.disk_full = dirpath / "disk-full"

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def mode(self):
        return server_mode(self.client)


class Cluster:
    """`size` voters of `kind` ("paddock" or "zookeeper") in `workdir`."""

    def __init__(self, kind, size, workdir, tick_ms=500, disk_faults=False):
        self.kind, self.tick_ms = kind, tick_ms
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.shim = disk_shim(self.workdir) if disk_faults else None
        self.links = Links()
        self.members = {sid: Member(sid, kind, self.workdir / f"s{sid}")
                        for sid in range(1, size + 1)}
        self.proxies = {}
        for a in self.members:
            for b, m in self.members.items():
                if a != b:
                    self.proxies[(a, b, "peer")] = Proxy(a, b, m.peer, self.links)
                    self.proxies[(a, b, "election")] = Proxy(a, b, m.election, self.links)
        for m in self.members.values():
            m.dir.mkdir(parents=True, exist_ok=True)
            (m.dir / "myid").write_text(f"{m.sid}\n")
            (m.dir / "zoo.cfg").write_text(self._config(m))

    def _config(self, me):
        cfg = (f"tickTime={self.tick_ms}\ninitLimit=10\nsyncLimit=2\ndataDir={me.dir}\n"
               f"clientPort={me.client}\nclientPortAddress=127.0.0.1\n"
               "4lw.commands.whitelist=*\nadmin.enableServer=false\n"
               "maxSessionTimeout=60000\n")
        for sid, m in self.members.items():
            if sid == me.sid:
                peer, election = m.peer, m.election
            else:
                peer = self.proxies[(me.sid, sid, "peer")].port
                election = self.proxies[(me.sid, sid, "election")].port
            cfg += f"server.{sid}=127.0.0.1:{peer}:{election};127.0.0.1:{m.client}\n"
        return cfg

    @property
    def hosts(self):
        return ",".join(f"127.0.0.1:{m.client}" for m in self.members.values())

    def start(self, sid):
        m = self.members[sid]
        log = open(m.dir / "server.log", "a")
        if self.kind == "paddock":
            cmd = [paddock_binary(), "server", "--config", str(m.dir / "zoo.cfg")]
        else:
            cmd = ["java", "-Xms128m", "-Xmx256m", "-XX:+UseSerialGC",
                   f"-Dzookeeper.log.dir={m.dir}", "-cp", ZK_CLASSPATH,
                   "org.apache.zookeeper.server.quorum.QuorumPeerMain", str(m.dir / "zoo.cfg")]
        env = dict(os.environ)
        if self.shim:
            env.update(LD_PRELOAD=str(self.shim), FAULTS_FSYNC_FLAG=str(m.disk_failed),
                       FAULTS_FULL_FLAG=str(m.disk_full))
        m.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        m.paused = False
        log.close()

    def start_all(self):
        for sid in self.members:
            self.start(sid)

    def kill(self, sid):
        m = self.members[sid]
        if m.running:
            if m.paused:
                m.proc.send_signal(signal.SIGCONT)
            m.proc.kill()
            m.proc.wait()
        m.paused = False

    def pause(self, sid):
        m = self.members[sid]
        if m.running and not m.paused:
            m.proc.send_signal(signal.SIGSTOP)
            m.paused = True

    def resume(self, sid):
        m = self.members[sid]
        if m.running and m.paused:
            m.proc.send_signal(signal.SIGCONT)
        m.paused = False

    def leader(self):
        """The member that says it leads, if exactly one does."""
        leaders = [sid for sid, m in self.members.items()
                   if m.running and not m.paused and m.mode() == "leader"]
        return leaders[0] if len(leaders) == 1 else None

    def wait_ready(self, deadline_s=60):
        """Waits until one member leads and every running one serves."""
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            modes = {sid: m.mode() for sid, m in self.members.items() if m.running}
            if list(modes.values()).count("leader") == 1 and all(modes.values()):
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.kind}: no leader with every server serving "
                           f"after {deadline_s} s: {modes}")

    def fail_disk(self, sid, how):
        """From now on the server's fsyncs fail ("failed") or its disk is
        full ("full")."""
        m = self.members[sid]
        {"failed": m.disk_failed, "full": m.disk_full}[how].touch()

    def heal(self):
        """Every link open, every disk working, every server running and
        resumed. One whose disk failed or filled up is restarted, as an
        operator would once the disk is replaced or space freed: ZooKeeper
        exits on a failed fsync; Paddock stops taking writes until it is
        restarted."""
        self.links.set(())
        for sid, m in self.members.items():
            flags = [f for f in (m.disk_failed, m.disk_full) if f.exists()]
            for f in flags:
                f.unlink()
            if flags:
                self.kill(sid)
            if not m.running:
                self.start(sid)
            else:
                self.resume(sid)

    def stop(self):
        for sid in self.members:
            self.kill(sid)
        for p in self.proxies.values():
            p.close()
