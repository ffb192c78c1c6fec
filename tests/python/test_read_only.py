"""Read-only mode, Paddock against Apache ZooKeeper 3.8.0: a member cut off
from its quorum serves reads to clients that asked for read-only sessions,
refuses everything else the way ZooKeeper does, and hands its clients back
once the quorum is whole again."""

import socket
import struct
import time

from kazoo.client import KazooClient
from kazoo.exceptions import NotReadOnlyCallError
from kazoo.protocol.states import KeeperState

from conftest import assert_same_transcript, four_letter, start_ensemble
from zkwire import OPEN_ACL, Buf, Session

NOT_READ_ONLY = -119


def wait_for(what, check, deadline_s=30):
    end = time.time() + deadline_s
    while time.time() < end:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def connect_answer(port, read_only, session_id=0, passwd=b"\0" * 16):
    """What the server does with one ConnectRequest: 'closed' without an
    answer, or the answer's (timeout > 0, readOnly) fields."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        req = Buf().i32(0).i64(0).i32(10000).i64(session_id).buf(passwd).bool(read_only).bytes()
        s.sendall(struct.pack(">i", len(req)) + req)
        head = s.recv(4)
        if len(head) < 4:
            return "closed"
        body = b""
        (n,) = struct.unpack(">i", head)
        while len(body) < n:
            chunk = s.recv(n - len(body))
            if not chunk:
                break
            body += chunk
        timeout = struct.unpack(">i", body[4:8])[0]
        return (timeout > 0, body[-1] == 1)


def mode_lines(port):
    return [line for line in four_letter(port, "srvr").splitlines()
            if line.startswith(("Mode:", "READ-ONLY"))]


def read_only_transcript(tmp, kind):
    # ZooKeeper 3.8.0 creates sessions in read-only mode only when local
    # sessions are enabled: otherwise it answers the ConnectRequest with a
    # bare NotReadOnly reply header. Paddock needs no such setting.
    extra = "readonlymode.enabled=true\n" if kind == "paddock" else (
        "localSessionsEnabled=true\nlocalSessionsUpgradingEnabled=true\n")
    e = start_ensemble(tmp, kind, tick_ms=500, extra_cfg=extra,
                       jvm_flags=("-Dreadonlymode.enabled=true",))
    out = []
    try:
        leader = e.wait_leader()
        survivor = next(m for m in e.members if m is not leader)
        rw = Session(survivor.port)
        assert rw.call("create", "/ro", b"data", OPEN_ACL, 0)[0] == 0
        assert rw.call("create", "/ro/child", b"", OPEN_ACL, 0)[0] == 0
        # An ephemeral makes the session global in ZooKeeper too.
        assert rw.call("create", "/eph", b"", OPEN_ACL, 1)[0] == 0
        quorum_session = (rw.session_id, rw.passwd)
        out.append(("read-write connect", rw.read_only))
        rw.drop()

        for m in e.members:
            if m is not survivor:
                m.kill()
        wait_for("read-only mode", lambda: four_letter(survivor.port, "isro") == "ro")
        out.append(("srvr", mode_lines(survivor.port)))
        out.append(("client without readOnly", connect_answer(survivor.port, False)))
        sid, pw = quorum_session
        out.append(("session of the quorum", connect_answer(survivor.port, True, sid, pw)))

        ro = Session(survivor.port, read_only=True)
        out.append(("read-only connect", ro.read_only, ro.timeout_ms > 0))
        requests = [
            ("getData", ("/ro",)),
            ("exists", ("/ro", True)),
            ("getChildren", ("/ro",)),
            ("multiRead", ([("getData", ("/ro",))],)),
            ("create", ("/new", b"", OPEN_ACL, 0)),
            ("setData", ("/ro", b"x", -1)),
            ("delete", ("/ro/child", -1)),
            ("setACL", ("/ro", OPEN_ACL, -1)),
            ("multi", ([("setData", ("/ro", b"x", -1))],)),
            ("check", ("/ro", 0)),
            ("sync", ("/ro",)),
            ("getData", ("/missing",)),
        ]
        for op, args in requests:
            err, _, body = ro.call(op, *args)
            if op == "getData" and body is not None:
                body = body[0]
            elif op == "getChildren":
                body = sorted(body or [])
            elif op in ("exists", "multiRead"):
                body = body is not None
            out.append((op, err, body))

        client = KazooClient(hosts=f"127.0.0.1:{survivor.port}", read_only=True, timeout=6)
        client.start(timeout=15)
        try:
            out.append(("kazoo", client.client_state, client.get("/ro")[0]))
            try:
                client.create("/kazoo")
                out.append(("kazoo create", "accepted"))
            except NotReadOnlyCallError:
                out.append(("kazoo create", "NotReadOnlyCallError"))
        finally:
            client.stop()
            client.close()

        closed_sid, closed_pw = ro.session_id, ro.passwd
        out.append(("closeSession", ro.call("closeSession")[0]))
        ro.drop()
        out.append(("closed read-only session",
                    connect_answer(survivor.port, True, closed_sid, closed_pw)))

        # The quorum comes back: read-only connections are closed and
        # read-write clients are served again.
        waiting = Session(survivor.port, read_only=True)
        for m in e.members:
            if m is not survivor:
                m.start()
        wait_for("the quorum", lambda: four_letter(survivor.port, "isro") == "rw"
                 and mode_lines(survivor.port) in (["Mode: follower"], ["Mode: leader"]),
                 deadline_s=60)
        try:
            waiting.sock.settimeout(10)
            waiting.call("exists", "/ro")
            out.append(("read-only connection after the quorum is back", "open"))
        except (ConnectionError, OSError, EOFError):
            out.append(("read-only connection after the quorum is back", "closed"))
        wait_for("read-write service", lambda: connect_answer(survivor.port, False) != "closed")
        again = Session(survivor.port, read_only=True)
        out.append(("connect after", again.read_only, again.call("getData", "/ro")[2][0]))
        again.close()
    finally:
        e.stop()
    return out


def test_read_only_mode_answers_as_zookeeper_does(tmp_path):
    (tmp_path / "zk").mkdir()
    (tmp_path / "paddock").mkdir()
    want = read_only_transcript(tmp_path / "zk", "zookeeper")
    got = read_only_transcript(tmp_path / "paddock", "paddock")
    assert_same_transcript(want, got)
    # The transcript itself says what both did; pin the key facts too.
    facts = dict((entry[0], entry[1:]) for entry in got)
    assert facts["srvr"] == (["READ-ONLY mode; serving only read-only clients", "Mode: read-only"],)
    assert facts["client without readOnly"] == ("closed",)
    assert facts["read-only connect"] == (True, True)
    assert facts["create"][0] == NOT_READ_ONLY
    assert facts["kazoo"] == (KeeperState.CONNECTED_RO, b"data")
    assert facts["read-only connection after the quorum is back"] == ("closed",)
