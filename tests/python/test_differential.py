"""Differential test: the same randomized operation sequences against
Apache ZooKeeper 3.8.0 and Paddock must give identical transcripts: error
codes, data, children sets, ACLs and Stat fields (zxids compared relative to
the scenario's first zxid, times left out, session ids by their index)."""

import random

import pytest

from conftest import assert_same_transcript
from zkwire import OPEN_ACL, Session

SEEDS = range(100)
OPS_PER_SCENARIO = 120

ZXID_FIELDS = ("czxid", "mzxid", "pzxid")


def digest(user_pw):
    import base64
    import hashlib
    user = user_pw.split(":")[0]
    return user + ":" + base64.b64encode(hashlib.sha1(user_pw.encode()).digest()).decode()


class Normalizer:
    def __init__(self, base, sessions):
        self.base = base
        self.sessions = sessions

    def zxid(self, z):
        return 0 if z == 0 else z - self.base

    def owner(self, o):
        ids = [s.session_id for s in self.sessions]
        return f"session{ids.index(o)}" if o in ids else o

    def __call__(self, v):
        if isinstance(v, dict):
            out = {k: x for k, x in v.items() if k not in ("ctime", "mtime")}
            for f in ZXID_FIELDS:
                out[f] = self.zxid(out[f])
            out["ephemeralOwner"] = self.owner(out["ephemeralOwner"])
            return out
        if isinstance(v, (list, tuple)):
            return type(v)(self(x) for x in v)
        return v


def acl_choices(rng):
    return rng.choice([
        OPEN_ACL,
        OPEN_ACL,
        [(1, "world", "anyone")],
        [(31, "auth", "")],
        [(31, "digest", digest("alice:pw")), (1, "world", "anyone")],
        [(31, "ip", "127.0.0.1")],
        [(31, "ip", "10.0.0.0/8"), (17, "world", "anyone")],
        [(31, "digest", "nocolon")],
        [],
        OPEN_ACL + OPEN_ACL,
    ])


def scenario(seed):
    """A list of (session index, op, args): pure data, replayed on each server."""
    rng = random.Random(seed)
    root = f"/d{seed}"
    names = [root, f"{root}/a", f"{root}/b", f"{root}/a/x", f"{root}/a/y", f"{root}/b/z",
             f"{root}/c", f"{root}/a/x/deep"]
    bad = ["d", f"{root}/", f"{root}//a", f"{root}/.", f"{root}/..", "/zookeeper",
           "/zookeeper/config", "/", "/zookeeper/quota", "", f"{root}/\u0001"]

    def path():
        return rng.choice(names) if rng.random() < 0.9 else rng.choice(bad)

    def data():
        return rng.choice([None, b"", b"x", bytes(rng.randrange(256) for _ in range(rng.randrange(1, 20)))])

    def version():
        return rng.choice([-1, -1, 0, 1, 2, 5])

    def sub_op():
        kind = rng.choice(["create", "create", "delete", "setData", "check"])
        if kind == "create":
            return ("create", (path(), data(), OPEN_ACL, rng.choice([0, 0, 1, 2])))
        if kind == "delete":
            return ("delete", (path(), version()))
        if kind == "setData":
            return ("setData", (path(), data(), version()))
        return ("check", (path(), version()))

    steps = [(0, "create", (root, b"root", OPEN_ACL, 0))]
    for _ in range(OPS_PER_SCENARIO):
        s = rng.randrange(3)
        r = rng.random()
        if r < 0.25:
            op = rng.choice(["create", "create", "create2"])
            p = path()
            if rng.random() < 0.2:
                p = rng.choice(names) + "/s-"
            steps.append((s, op, (p, data(), acl_choices(rng), rng.choice([0, 0, 1, 2, 3, 7]))))
        elif r < 0.35:
            steps.append((s, "delete", (path(), version())))
        elif r < 0.47:
            steps.append((s, "setData", (path(), data(), version())))
        elif r < 0.52:
            steps.append((s, "setACL", (path(), acl_choices(rng), version())))
        elif r < 0.62:
            steps.append((s, rng.choice(["getData", "exists"]), (path(), False)))
        elif r < 0.7:
            steps.append((s, rng.choice(["getChildren", "getChildren2"]), (path(), False)))
        elif r < 0.74:
            steps.append((s, "getACL", (path(),)))
        elif r < 0.84:
            steps.append((s, "multi", ([sub_op() for _ in range(rng.randrange(0, 5))],)))
        elif r < 0.87:
            reads = [(rng.choice(["getData", "getChildren"]), (path(), False)) for _ in range(rng.randrange(1, 4))]
            steps.append((s, "multiRead", (reads,)))
        elif r < 0.9:
            steps.append((s, "getAllChildrenNumber", (path(),)))
        elif r < 0.93:
            steps.append((s, "getEphemerals", (rng.choice([root, f"{root}/a", "/", ""]),)))
        elif r < 0.95:
            steps.append((s, "whoAmI", ()))
        elif r < 0.97:
            steps.append((s, "sync", (path(),)))
        else:
            steps.append((s, "reopen", ()))
    return steps


def edge_cases():
    """Single requests at the corners of the protocol."""
    r = "/edge"
    return [
        (0, "create", (r, None, OPEN_ACL, 0)),
        (0, "create", (f"{r}/flag4", b"", OPEN_ACL, 4)),
        (0, "create", (f"{r}/flag5", b"", OPEN_ACL, 5)),
        (0, "create", (f"{r}/flag6", b"", OPEN_ACL, 6)),
        (0, "create2", (f"{r}/flag-1", b"", OPEN_ACL, -1)),
        (0, "createContainer", (f"{r}/box", b"", OPEN_ACL, 4)),
        (0, "createContainer", (f"{r}/box0", b"", OPEN_ACL, 0)),
        (0, "createTTL", (f"{r}/ttl", b"", OPEN_ACL, 5, 100)),
        (0, "createTTL", (f"{r}/ttl0", b"", OPEN_ACL, 0, 100)),
        (0, "getData", (r, False)),
        (0, "getData", ("/zookeeper/config", False)),
        (0, "getACL", ("/zookeeper/config",)),
        (0, "getChildren2", ("/zookeeper", False)),
        (0, "setData", ("/zookeeper/config", b"x", -1)),
        (0, "create", ("/zookeeper/mine", b"", OPEN_ACL, 0)),
        (0, "delete", ("/zookeeper/mine", -1)),
        (0, "create", ("/\U0001F600", b"", OPEN_ACL, 0)),
        (0, "create", ("/a\u0000b", b"", OPEN_ACL, 0)),
        (0, "exists", ("/a\u0000b", False)),
        (0, "create", (f"{r}/...", b"", OPEN_ACL, 0)),
        (0, "create", (f"{r}/", b"", OPEN_ACL, 2)),
        (0, "create", (f"{r}/e", b"", OPEN_ACL, 1)),
        (0, "create", (f"{r}/e/child", b"", OPEN_ACL, 0)),
        (0, "create", (f"{r}/e/", b"", OPEN_ACL, 3)),
        (0, "getChildren2", (r, False)),
        (0, "sync", ("no/validation",)),
        (0, "getAllChildrenNumber", ("/",)),
        (0, "getAllChildrenNumber", ("",)),
        (0, "getData", ("", False)),
        (0, "setData", (r, b"v", 2147483647)),
        (0, "multi", ([],)),
        (0, "multiRead", ([("getData", ("/nope", False)), ("getChildren", (r, False))],)),
        (0, "multi", ([("create", (f"{r}/m", b"", OPEN_ACL, 0)), ("setData", (f"{r}/m", b"1", 0)),
                       ("check", (f"{r}/m", 1)), ("delete", (f"{r}/m", 1))],)),
        (0, "getChildren2", (r, False)),
        (0, "multi", ([("create", (f"{r}/n", b"", OPEN_ACL, 0)), ("create", (f"{r}/n", b"", OPEN_ACL, 0)),
                       ("delete", (f"{r}/n", -1))],)),
        (0, "getChildren2", (r, False)),
    ]


def run(server, seed):
    """Replays a scenario (a seed, or "edge") and returns its normalized transcript."""
    sessions = [Session(server.port) for _ in range(3)]
    steps = edge_cases() if seed == "edge" else scenario(seed)
    try:
        assert sessions[1].auth("digest", b"alice:pw")[2] == 0
        assert sessions[2].auth("digest", b"bob:pw")[2] == 0
        transcript = []
        norm = None
        for i, (s, op, args) in enumerate(steps):
            if op == "reopen":
                sessions[s].close()
                sessions[s] = Session(server.port)
                transcript.append((i, s, op))
                continue
            err, zxid, body = sessions[s].call(op, *args)
            if op == "whoAmI" and body:
                body = sorted(body)  # ZooKeeper keeps auth ids in a hash set
            if norm is None:
                norm = Normalizer(zxid - 1, sessions)
            transcript.append((i, s, op, repr(args)[:120], err, norm.zxid(zxid), norm(body)))
        return transcript
    finally:
        for sess in sessions:
            sess.close()


@pytest.mark.parametrize("seed", ["edge", *SEEDS])
def test_same_operations_give_the_same_results(zookeeper, paddock, seed):
    assert_same_transcript(run(zookeeper, seed), run(paddock, seed))


def pipelined(server, path):
    """Sends setData/getData/create/exists/delete interleaved, 300 requests
    in one write, and returns every reply (zxids relative to the first)."""
    import struct

    from zkwire import OP, Reader, decode_body, encode_op

    s = Session(server.port)
    try:
        s.call("create", path, b"start", OPEN_ACL, 0)
        ops = []
        for i in range(60):
            child = f"{path}/c{i % 3}"
            ops += [("setData", (path, str(i).encode(), -1)), ("getData", (path, False)),
                    ("create", (child, b"", OPEN_ACL, 0)), ("exists", (child, False)),
                    ("delete", (child, -1))]
        out = b""
        for xid, (op, args) in enumerate(ops, start=100):
            payload = struct.pack(">ii", xid, OP[op]) + encode_op(op, args)
            out += struct.pack(">i", len(payload)) + payload
        s.sock.sendall(out)
        replies, base = [], None
        for op, _ in ops:
            r = Reader(s._recv())
            xid, zxid, err = r.i32(), r.i64(), r.i32()
            base = zxid if base is None else base
            body = decode_body(op, r) if err == 0 else None
            if isinstance(body, dict):
                body = {k: v - base if k in ZXID_FIELDS and v else v
                        for k, v in body.items() if k not in ("ctime", "mtime")}
            elif isinstance(body, tuple):
                data, stat = body
                body = (data, {k: v - base if k in ZXID_FIELDS and v else v
                               for k, v in stat.items() if k not in ("ctime", "mtime")})
            replies.append((xid, op, err, zxid - base, body))
        return replies
    finally:
        s.close()


def test_pipelined_reads_see_exactly_the_writes_sent_before_them(zookeeper, paddock):
    want = pipelined(zookeeper, "/pipelined")
    got = pipelined(paddock, "/pipelined")
    assert [r[0] for r in got] == list(range(100, 400)), "replies in request order"
    assert_same_transcript(want, got)
