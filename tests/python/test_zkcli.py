"""Shell differential tests. zkCli.sh (Apache ZooKeeper's own shell) is run
against Apache ZooKeeper 3.8.0; the same one-shot commands are run with
zkCli.sh against Paddock and with `paddock cli` against a fresh Paddock.
stdout, stderr and the exit code of each command must match (times,
session ids and zxids aside)."""

import re
import subprocess

import pytest

from conftest import paddock_binary, start_paddock

ZKCLI = "/usr/share/zookeeper/bin/zkCli.sh"

COMMANDS = [
    "create /cli hello",
    "create /cli/child",
    "get /cli/child",
    "create -s /cli/seq- data",
    "create -s /cli/seq- data",
    "create -e /cli/eph x",
    "create -c /cli/box",
    "create -t 10 /cli/ttl",
    "create -c -e /cli/bad",
    "create /cli hello",
    "create /nope/child",
    "create /cli/",
    "create",
    "get /cli",
    "get -s /cli",
    "get cli",
    "get -w /cli",
    "ls /cli",
    "ls -s /cli",
    "ls -R /cli",
    "ls -w /cli",
    "ls /nope",
    "stat /cli",
    "stat -w /cli",
    "stat /nope",
    "set /cli world",
    "set -s /cli again",
    "set -v 0 /cli stale",
    "set /cli",
    "get /cli",
    "getAcl /cli",
    "getAcl -s /cli",
    "setAcl /cli world:anyone:cdrwa",
    "setAcl -R /cli world:anyone:cdrwa",
    "setAcl /cli foo",
    "getAcl /zookeeper/config",
    "getAllChildrenNumber /cli",
    "getEphemerals /",
    "addWatch /cli",
    "addWatch -m PERSISTENT /cli",
    "addWatch -m FOO /cli",
    "removewatches /cli",
    "removewatches",
    "printwatches",
    "delete /cli",
    "delete /cli/child",
    "delete -v 7 /cli/seq-0000000001",
    "delete /",
    "deleteall /cli",
    "deleteall /nope",
    "stat /cli",
    "ls /",
    "create /cli2 x",
    "create /cli3 d world:anyone:xyz",
    "setAcl /cli2 ip:127.0.0.1:r",
    "get /cli2",
    "set /cli2 y",
    "getAcl /cli2",
    "create /d d digest:u:X1:cdrwa",
    "getAcl /d",
    "whoami",
    "sync /",
    "sync /nope",
    "config",
    "reconfig -add 4=127.0.0.1:2888:3888",
    "redo 3",
    ["create", "/q", "a b"],
]

LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d|log4j|SLF4J|\s+at |WatchedEvent|WATCHER::|Connecting to)")


def normalize(text):
    # zkCli.sh prints its connection event ("\nWATCHER::" and
    # "\nWatchedEvent ...", each on a line of its own) from another thread,
    # and it can land in the middle of a command's output ("[" ... "a, b]"):
    # it is cut out before the text is split into lines.
    text = re.sub(r"\nWATCHER::\n|\nWatchedEvent [^\n]*\n", "", text)
    out = []
    for line in text.splitlines():
        if not line.strip() or LOG_LINE.match(line):
            continue
        line = re.sub(r"^(ctime|mtime) = .*", r"\1 = <time>", line)
        # zkCli.sh may exit before its session is established, so how many
        # zxids the sessions of fast-failing commands take varies by run.
        line = re.sub(r"^([cmp]Zxid) = 0x[0-9a-f]+$", r"\1 = <zxid>", line)
        line = re.sub(r"^ephemeralOwner = 0x[1-9a-f][0-9a-f]*$", "ephemeralOwner = <session>", line)
        line = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:<port>", line)
        out.append(line)
    return out


def words(cmd):
    return cmd if isinstance(cmd, list) else cmd.split()


def run_all(argv_prefix):
    """(command, stdout lines, stderr lines, exit code) for each command."""
    transcript = []
    for cmd in COMMANDS:
        p = subprocess.run([*argv_prefix, *words(cmd)], capture_output=True, text=True, timeout=60)
        transcript.append((cmd, normalize(p.stdout), normalize(p.stderr), p.returncode))
    return transcript


@pytest.fixture(scope="module")
def zookeeper_transcript(zookeeper):
    want = run_all([ZKCLI, "-server", zookeeper.hosts])
    assert sum(len(out) + len(err) for _, out, err, _ in want) > 100, f"zkCli printed too little: {want}"
    assert any(rc != 0 for *_, rc in want) and any(rc == 0 for *_, rc in want)
    return want


def assert_same(want, got, what):
    for (cmd, *w), (_, *g) in zip(want, got):
        assert g == w, f"{what}: {cmd!r}\nzookeeper (stdout, stderr, rc): {w}\npaddock:   {g}"
    assert len(got) == len(want)


def test_zkcli_against_paddock_matches_zookeeper(zookeeper_transcript, paddock):
    assert_same(zookeeper_transcript, run_all([ZKCLI, "-server", paddock.hosts]), "zkCli.sh")


def test_paddock_cli_matches_zkcli(zookeeper_transcript, tmp_path):
    server = start_paddock(tmp_path)
    try:
        got = run_all([paddock_binary(), "cli", "-server", server.hosts])
    finally:
        server.stop()
    assert_same(zookeeper_transcript, got, "paddock cli")


def test_unknown_command_exits_127_with_help(paddock):
    p = subprocess.run([paddock_binary(), "cli", "-server", paddock.hosts, "frobnicate", "/"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 127
    assert "Command not found: Command not found frobnicate" in p.stderr
    assert "\tget [-s] [-w] path" in p.stderr
