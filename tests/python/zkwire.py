"""A small raw ZooKeeper protocol client for tests.

It sends exactly the bytes the tests ask for and returns error codes as
numbers instead of exceptions, so that Paddock and Apache ZooKeeper can be
compared reply by reply.
"""

import socket
import struct

OP = dict(create=1, delete=2, exists=3, getData=4, setData=5, getACL=6, setACL=7,
          getChildren=8, sync=9, ping=11, getChildren2=12, check=13, multi=14,
          create2=15, createContainer=19, createTTL=21, multiRead=22, auth=100,
          getEphemerals=103, getAllChildrenNumber=104, whoAmI=107, closeSession=-11,
          checkWatches=17, removeWatches=18, addWatch=106)

OPEN_ACL = [(31, "world", "anyone")]


class Buf:
    def __init__(self):
        self.parts = []

    def i32(self, v):
        self.parts.append(struct.pack(">i", v))
        return self

    def i64(self, v):
        self.parts.append(struct.pack(">q", v))
        return self

    def bool(self, v):
        self.parts.append(b"\x01" if v else b"\x00")
        return self

    def buf(self, b):
        if b is None:
            return self.i32(-1)
        self.i32(len(b))
        self.parts.append(b)
        return self

    def str(self, s):
        return self.buf(None if s is None else s.encode("utf-8"))

    def acl(self, acl):
        self.i32(len(acl))
        for perms, scheme, ident in acl:
            self.i32(perms).str(scheme).str(ident)
        return self

    def bytes(self):
        return b"".join(self.parts)


class Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, n):
        out = self.data[self.pos:self.pos + n]
        if len(out) != n:
            raise EOFError("truncated reply")
        self.pos += n
        return out

    def i32(self):
        return struct.unpack(">i", self.take(4))[0]

    def i64(self):
        return struct.unpack(">q", self.take(8))[0]

    def bool(self):
        return self.take(1) != b"\x00"

    def buf(self):
        n = self.i32()
        return None if n < 0 else self.take(n)

    def str(self):
        b = self.buf()
        return None if b is None else b.decode("utf-8")

    def strings(self):
        n = self.i32()
        return [self.str() for _ in range(max(n, 0))]

    def stat(self):
        names = ["czxid", "mzxid", "ctime", "mtime", "version", "cversion", "aversion",
                 "ephemeralOwner", "dataLength", "numChildren", "pzxid"]
        kinds = "qqqqiiiqiiq"
        return {n: (self.i64() if k == "q" else self.i32()) for n, k in zip(names, kinds)}

    def acl(self):
        return [(self.i32(), self.str(), self.str()) for _ in range(self.i32())]


def encode_op(op, args):
    """The request body of one op (also used inside multi)."""
    b = Buf()
    if op in ("create", "create2", "createContainer"):
        path, data, acl, flags = args
        b.str(path).buf(data).acl(acl).i32(flags)
    elif op == "createTTL":
        path, data, acl, flags, ttl = args
        b.str(path).buf(data).acl(acl).i32(flags).i64(ttl)
    elif op in ("delete", "check", "checkWatches", "removeWatches", "addWatch"):
        b.str(args[0]).i32(args[1])
    elif op in ("exists", "getData", "getChildren", "getChildren2"):
        b.str(args[0]).bool(args[1] if len(args) > 1 else False)
    elif op == "setData":
        b.str(args[0]).buf(args[1]).i32(args[2])
    elif op == "setACL":
        b.str(args[0]).acl(args[1]).i32(args[2])
    elif op in ("getACL", "sync", "getEphemerals", "getAllChildrenNumber"):
        b.str(args[0])
    elif op in ("multi", "multiRead"):
        for sub, sub_args in args[0]:
            b.i32(OP[sub]).bool(False).i32(-1)
            b.parts.append(encode_op(sub, sub_args))
        b.i32(-1).bool(True).i32(-1)
    elif op in ("whoAmI", "closeSession", "ping"):
        pass
    else:
        raise ValueError(op)
    return b.bytes()


def decode_body(op, r):
    if op == "create":
        return r.str()
    if op in ("create2", "createContainer", "createTTL"):
        return (r.str(), r.stat())
    if op in ("exists", "setData", "setACL"):
        return r.stat()
    if op == "getData":
        return (r.buf(), r.stat())
    if op == "getACL":
        return (r.acl(), r.stat())
    if op == "getChildren":
        return sorted(r.strings())
    if op == "getChildren2":
        return (sorted(r.strings()), r.stat())
    if op in ("sync",):
        return r.str()
    if op == "getEphemerals":
        return sorted(r.strings())
    if op == "getAllChildrenNumber":
        return r.i32()
    if op == "whoAmI":
        return [(r.str(), r.str()) for _ in range(r.i32())]
    if op in ("multi", "multiRead"):
        out = []
        while True:
            t, done, err = r.i32(), r.bool(), r.i32()
            if done:
                return out
            if t == -1:
                out.append(("error", r.i32()))
            elif t == 1:
                out.append(("create", r.str()))
            elif t == 15:
                out.append(("create2", r.str(), r.stat()))
            elif t == 5:
                out.append(("setData", r.stat()))
            elif t == 4:
                out.append(("getData", r.buf(), r.stat()))
            elif t == 8:
                out.append(("getChildren", sorted(r.strings())))
            else:
                out.append((t,))
    return None


class Session:
    """One connection with one session."""

    def __init__(self, port, timeout_ms=10000, session_id=0, passwd=b"\0" * 16,
                 read_only=False):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.xid = 0
        req = Buf().i32(0).i64(0).i32(timeout_ms).i64(session_id).buf(passwd)
        self._send(req.bool(read_only).bytes())
        r = Reader(self._recv())
        self.protocol, self.timeout_ms, self.session_id = r.i32(), r.i32(), r.i64()
        self.passwd = r.buf()
        # Whether the server answered from read-only mode.
        self.read_only = r.bool()
        self.notifications = []

    def _send(self, payload):
        self.sock.sendall(struct.pack(">i", len(payload)) + payload)

    def _recv_exact(self, n):
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError("closed by server")
            out += chunk
        return out

    def _recv(self):
        n = struct.unpack(">i", self._recv_exact(4))[0]
        return self._recv_exact(n)

    def call(self, op, *args, xid=None):
        """Returns (err, zxid, body) for one request."""
        if xid is None:
            self.xid += 1
            xid = self.xid
        self._send(struct.pack(">ii", xid, OP[op]) + encode_op(op, args))
        while True:
            r = Reader(self._recv())
            rxid, zxid, err = r.i32(), r.i64(), r.i32()
            if rxid == -1:
                self.notifications.append((r.i32(), r.i32(), r.str()))
                continue
            assert rxid == xid, f"reply xid {rxid} for request {xid}"
            body = decode_body(op, r) if err == 0 else None
            return err, zxid, body

    def auth(self, scheme, data):
        self._send(struct.pack(">ii", -4, OP["auth"]) + Buf().i32(0).str(scheme).buf(data).bytes())
        r = Reader(self._recv())
        return r.i32(), r.i64(), r.i32()

    def take_notifications(self):
        out, self.notifications = self.notifications, []
        return out

    def close(self):
        try:
            self.call("closeSession")
        except (ConnectionError, OSError, EOFError):
            pass
        self.sock.close()

    def drop(self):
        self.sock.close()
