"""`paddock import`: a tree written by Apache ZooKeeper 3.8.0 (snapshots and
transaction logs, the server killed with SIGKILL) comes back in Paddock with
the same data, ACLs, children and every Stat field, including zxids and
times, and ZooKeeper's sessions keep their ephemeral nodes."""

import random
import re
import shutil
import subprocess
import time

from kazoo.client import KazooClient
from kazoo.security import make_digest_acl

import zkwire
from conftest import paddock_binary, start_paddock, start_zookeeper

STAT_FIELDS = ("czxid", "mzxid", "ctime", "mtime", "version", "cversion", "aversion",
               "ephemeralOwner", "dataLength", "numChildren", "pzxid")


def dump(client, path="/"):
    """Every node under `path`: data, ACL, sorted children and the full Stat."""
    out = {}
    data, stat = client.get(path)
    acl, _ = client.get_acls(path)
    children = sorted(client.get_children(path))
    out[path] = (data, sorted((a.perms, a.id.scheme, a.id.id) for a in acl), children,
                 tuple(getattr(stat, f) for f in STAT_FIELDS))
    for child in children:
        out.update(dump(client, path.rstrip("/") + "/" + child))
    return out


def write_history(port, rng):
    """A varied history: every node type, data and ACL changes, deletes, a
    multi, and a session that closes (its ephemerals go)."""
    main = KazooClient(hosts=f"127.0.0.1:{port}", timeout=30)
    main.start(timeout=20)
    main.add_auth("digest", "alice:secret")
    main.create("/app", b"root data")
    main.create("/app/null")  # empty data
    main.create("/app/secret", b"s", acl=[make_digest_acl("alice", "secret", all=True)])
    for i in range(40):
        main.create(f"/app/n{i}", str(i).encode())
    for _ in range(120):
        i = rng.randrange(40)
        path = f"/app/n{i}"
        if not main.exists(path):
            main.create(path, b"again")
            continue
        action = rng.choice(["set", "set", "child", "seq", "delete"])
        if action == "set":
            main.set(path, rng.randbytes(rng.randrange(0, 50)))
        elif action == "child":
            main.create(f"{path}/c", b"", makepath=False) if not main.exists(f"{path}/c") else None
        elif action == "seq":
            main.create(f"{path}/s-", b"seq", sequence=True)
        elif not main.get_children(path):
            main.delete(path)
    main.set_acls("/app/n1", [make_digest_acl("alice", "secret", read=True, write=True)]) \
        if main.exists("/app/n1") else None
    tx = main.transaction()
    tx.create("/app/multi-a", b"a")
    tx.create("/app/multi-b", b"b")
    tx.set_data("/app", b"changed in a multi")
    tx.commit()
    main.create("/app/eph", b"mine", ephemeral=True)
    main.create("/app/eph-seq-", b"", ephemeral=True, sequence=True)

    gone = KazooClient(hosts=f"127.0.0.1:{port}", timeout=30)
    gone.start(timeout=20)
    gone.create("/app/short-lived", ephemeral=True)
    gone.stop()  # closeSession: the node is deleted in the log
    gone.close()

    raw = zkwire.Session(port)
    assert raw.call("createContainer", "/box", b"", zkwire.OPEN_ACL, 4)[0] == 0
    assert raw.call("create", "/box/item", b"x", zkwire.OPEN_ACL, 0)[0] == 0
    assert raw.call("createTTL", "/ttl", b"t", zkwire.OPEN_ACL, 5, 3_600_000)[0] == 0
    return main, raw


def leave_a_log_tail(client, data_dir):
    """Writes until ZooKeeper's newest snapshot is older than its last write,
    so the import has log entries to replay after it: with snapCount=10 and
    ZooKeeper's random roll point, a history can end exactly on a snapshot."""
    for i in range(10):
        zxid = client.set("/app", f"tail {i}".encode()).mzxid
        time.sleep(0.5)  # ZooKeeper writes a snapshot on a thread of its own
        snapshots = (data_dir / "version-2").glob("snapshot.*")
        if max(int(p.suffix[1:], 16) for p in snapshots) < zxid:
            return
    raise AssertionError("ZooKeeper took a snapshot after each of 10 writes")


def test_import_reproduces_a_zookeeper_tree(tmp_path):
    zk_dir = tmp_path / "zk"
    zk_dir.mkdir()
    zookeeper = start_zookeeper(zk_dir, "snapCount=10\nextendedTypesEnabled=true\n")
    try:
        main, raw = write_history(zookeeper.port, random.Random(4))
        leave_a_log_tail(main, zk_dir / "zk-data")
        before = dump(main)
        eph_owner = main.exists("/app/eph").ephemeralOwner
        # A crash, not a clean stop: sessions stay open in ZooKeeper's files.
        zookeeper.proc.kill()
        zookeeper.proc.wait()
        main.stop()
        main.close()
        raw.sock.close()
    finally:
        zookeeper.stop()

    # Once from the newest snapshot plus the log tail, once from ZooKeeper's
    # first (empty) snapshot replaying the whole log.
    replay_all = tmp_path / "zk-replay"
    shutil.copytree(zk_dir / "zk-data", replay_all)
    for snap in (replay_all / "version-2").glob("snapshot.*"):
        if snap.name != "snapshot.0":
            snap.unlink()
    for source, name in ((zk_dir / "zk-data", "newest"), (replay_all, "replay")):
        report, after = import_and_dump(source, tmp_path / name)
        assert int(report.group(2)) > 0, report.group(0)
        if name == "newest":
            assert int(report.group(1), 16) > 0, report.group(0)
        else:
            assert int(report.group(1), 16) == 0 and int(report.group(3)) > 5, report.group(0)
        assert set(after) == set(before), name
        for path in before:
            assert after[path] == before[path], (name, path)
        assert after["/app/eph"][3][STAT_FIELDS.index("ephemeralOwner")] == eph_owner


def import_and_dump(source, workdir):
    """Imports `source`, checks a second import is refused, starts Paddock on
    the result and dumps its tree; also checks the zxid goes on from
    ZooKeeper's."""
    workdir.mkdir()
    target = workdir / "paddock-data"
    command = [paddock_binary(), "import", str(source), "--data-dir", str(target)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    report = re.search(r"from \S+/snapshot\.([0-9a-f]+) and (\d+) transactions of (\d+) log",
                       run.stdout)
    assert report, run.stdout
    again = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert again.returncode != 0 and "already holds Paddock data" in again.stderr

    paddock = start_paddock(workdir, "--extended-types")
    try:
        client = KazooClient(hosts=paddock.hosts, timeout=30)
        client.start(timeout=20)
        client.add_auth("digest", "alice:secret")
        after = dump(client)
        last = max(v[3][STAT_FIELDS.index("mzxid")] for v in after.values())
        stat = client.create("/after-import", b"", include_data=True)[1]
        assert stat.czxid > last
        client.stop()
        client.close()
    finally:
        paddock.stop()
    return report, after


def test_import_refuses_a_directory_without_a_snapshot(tmp_path):
    (tmp_path / "version-2").mkdir()
    run = subprocess.run([paddock_binary(), "import", str(tmp_path),
                          "--data-dir", str(tmp_path / "out")],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode != 0
    assert "no ZooKeeper snapshot" in run.stderr
