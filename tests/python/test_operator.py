"""Operator outputs against Apache ZooKeeper 3.8.0: four-letter words and
admin HTTP commands, on servers in the same state (one session with an
ephemeral node and a data watch), compared shape for shape. Values that
differ by nature (ids, ports, times, sizes, versions) are masked; the
admin comparison checks that every key ZooKeeper's JSON has, Paddock's
has too (ZooKeeper reports more Java-specific fields)."""

import json
import re
import urllib.error
import urllib.request

import pytest
from kazoo.client import KazooClient

from conftest import four_letter, free_port, start_paddock, start_zookeeper

WORDS = ["ruok", "isro", "wchs", "wchc", "wchp", "dump", "gtmk", "srvr", "crst", "srst"]

MASKS = [
    (r"0x[0-9a-f]{6,}", "0xSESSION"),
    (r"127\.0\.0\.1:\d+", "127.0.0.1:PORT"),
    (r"[A-Z][a-z]{2} [A-Z][a-z]{2} \d\d \d\d:\d\d:\d\d UTC \d{4}", "DATE"),
    (r"Zookeeper version: .*", "Zookeeper version: VERSION"),
    (r"\d+/\d+(\.\d+)?/\d+", "N/N/N"),
    (r"(?m)(\t|: |=)\d+(\.\d+)?$", r"\1N"),
    (r"(?m)^\d+ expire at", "N expire at"),
    (r"(?m)^\d+$", "N"),
]


def mask(text):
    for pattern, repl in MASKS:
        text = re.sub(pattern, repl, text)
    return text


def without_empty_buckets(dump):
    """dump with its empty expiry buckets left out and the set counts
    fixed: ZooKeeper drops a bucket a session left only when its expirer
    next runs, so whether one shows is a matter of timing."""
    lines = dump.splitlines()
    kept, dropped = [], {}
    section = None
    for i, line in enumerate(lines):
        if line.startswith(("Session Sets", "Connections Sets")):
            section = line.split()[0]
        following = lines[i + 1] if i + 1 < len(lines) else ""
        if line.endswith(" expire at DATE:") and not following.startswith("\t"):
            dropped[section] = dropped.get(section, 0) + 1
            continue
        kept.append(line)
    def recount(m):
        return f"{m.group(1)} Sets ({int(m.group(2)) - dropped.get(m.group(1), 0)})"
    return re.sub(r"(Session|Connections) Sets \((\d+)\)", recount, "\n".join(kept) + "\n")


class Busy:
    """A server with admin HTTP on, holding one client session."""

    def __init__(self, server, admin_port):
        self.server, self.admin_port = server, admin_port
        self.client = KazooClient(hosts=server.hosts, timeout=10)
        self.client.start(timeout=30)
        self.client.create("/op", b"x", ephemeral=True)
        self.client.get("/op", watch=lambda e: None)

    def admin(self, name):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/commands/{name}", timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, None

    def stop(self):
        self.client.stop()
        self.client.close()
        self.server.stop()


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    zk_admin = free_port()
    zk = Busy(start_zookeeper(tmp_path_factory.mktemp("zk"),
                              f"admin.enableServer=true\nadmin.serverAddress=127.0.0.1\nadmin.serverPort={zk_admin}\n"),
              zk_admin)
    tmp = tmp_path_factory.mktemp("paddock")
    cfg = tmp / "zoo.cfg"
    cfg.write_text("4lw.commands.whitelist=*\nadmin.sensitiveCommands=true\n")
    pd_admin = free_port()
    pd = Busy(start_paddock(tmp, "--config", str(cfg), "--admin-port", str(pd_admin)), pd_admin)
    yield zk, pd
    zk.stop()
    pd.stop()


@pytest.mark.parametrize("word", WORDS)
def test_four_letter_word_shapes_match_zookeeper(both, word):
    zk, pd = both
    want, got = mask(four_letter(zk.server.port, word)), mask(four_letter(pd.server.port, word))
    if word == "dump":
        want, got = without_empty_buckets(want), without_empty_buckets(got)
        # ZooKeeper lists connections in hash-set order.
        head_w, _, conns_w = want.partition("Connections dump:")
        head_g, _, conns_g = got.partition("Connections dump:")
        want, got = (head_w, sorted(conns_w.splitlines())), (head_g, sorted(conns_g.splitlines()))
    assert got == want, f"{word}:\nzookeeper:\n{want}\npaddock:\n{got}"


def test_mntr_conf_envi_keys_are_zookeepers(both):
    zk, pd = both
    extra = {"zk_epoch", "zk_last_zxid"}  # ZooKeeper's quorum mntr has zk_epoch.
    for word, sep, own in [("mntr", "\t", extra), ("conf", "=", set()), ("envi", "=", set())]:
        keys = lambda port: {l.split(sep)[0] for l in four_letter(port, word).splitlines() if sep in l}
        ours, theirs = keys(pd.server.port), keys(zk.server.port)
        assert ours - own <= theirs, f"{word}: keys ZooKeeper does not have: {sorted(ours - own - theirs)}"
        assert len(ours) >= 7


def test_admin_commands_have_zookeepers_keys(both):
    zk, pd = both
    status, listing = pd.admin("ruok")
    assert status == 200 and listing == {"command": "ruok", "error": None}
    compared = 0
    for name in ["configuration", "connections", "dirs", "dump", "environment", "get_trace_mask",
                 "is_read_only", "monitor", "server_stats", "stats", "watch_summary", "watches",
                 "watches_by_path", "stat_reset", "connection_stat_reset", "srvr", "mntr"]:
        zs, zj = zk.admin(name)
        ps, pj = pd.admin(name)
        assert (ps, pj["command"]) == (zs, zj["command"]), name
        assert pj["error"] is None
        # Keys whose values are Java runtime facts Paddock has no equivalent of.
        java_only = {k for k in zj if k.startswith("java.") or k.startswith("os.memory")}
        java_only |= {"client_response", "fsync_threshold_exceed_count", "provider_null",
                      "non_mtlsremote_conn_count", "non_mtlslocal_conn_count", "secure_connections"}
        missing = set(zj) - set(pj) - java_only
        if name in ("monitor", "mntr"):
            # ZooKeeper's monitor lists hundreds of JVM and processor
            # metrics; Paddock has the ones mntr documents for clients.
            missing &= {"version", "server_state", "znode_count", "watch_count", "ephemerals_count",
                        "num_alive_connections", "outstanding_requests", "avg_latency",
                        "packets_received", "packets_sent", "approximate_data_size", "uptime"}
        assert not missing, f"{name}: ZooKeeper has {sorted(missing)}"
        compared += 1
    assert compared == 17
    _, pj = pd.admin("watches_by_path")
    assert list(pj["path_to_session_ids"]) == ["/op"]
    _, zj = zk.admin("dump")
    _, pj = pd.admin("dump")
    assert list(pj["session_id_to_ephemeral_paths"].values()) == list(zj["session_id_to_ephemeral_paths"].values())
    assert pd.admin("no_such_command")[0] == zk.admin("no_such_command")[0]
