"""zkCli.sh (Apache ZooKeeper's own shell) one-shot commands give the same
output against Paddock as against Apache ZooKeeper 3.8.0."""

import re
import subprocess

ZKCLI = "/usr/share/zookeeper/bin/zkCli.sh"

COMMANDS = [
    "create /cli hello",
    "create /cli/child",
    "create -s /cli/seq- data",
    "create -s /cli/seq- data",
    "create /cli hello",
    "create /nope/child",
    "get /cli",
    "get -s /cli",
    "ls /cli",
    "ls -s /cli",
    "ls -R /cli",
    "stat /cli",
    "set /cli world",
    "set -s /cli again",
    "set -v 0 /cli stale",
    "get /cli",
    "getAcl /cli",
    "setAcl /cli world:anyone:cdrwa",
    "getAcl /zookeeper/config",
    "getAllChildrenNumber /cli",
    "getEphemerals /",
    "delete /cli",
    "delete /cli/child",
    "delete -v 7 /cli/seq-0000000001",
    "deleteall /cli",
    "stat /cli",
    "ls /",
    "create /cli2 x",
    "setAcl /cli2 ip:127.0.0.1:r",
    "get /cli2",
    "set /cli2 y",
    "getAcl /cli2",
    "whoami",
    "sync /",
    "config",
]

LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d|log4j|SLF4J|\s+at |WatchedEvent|WATCHER::|Connecting to)")


def normalize(text):
    out = []
    for line in text.splitlines():
        if not line.strip() or LOG_LINE.match(line):
            continue
        line = re.sub(r"^(ctime|mtime) = .*", r"\1 = <time>", line)
        line = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:<port>", line)
        out.append(line)
    return out


def run_all(server):
    transcript = []
    for cmd in COMMANDS:
        p = subprocess.run([ZKCLI, "-server", server.hosts, *cmd.split()],
                           capture_output=True, text=True, timeout=60)
        transcript.append((cmd, normalize(p.stdout + p.stderr)))
    return transcript


def test_zkcli_one_shot_commands_match_zookeeper(zookeeper, paddock):
    want = run_all(zookeeper)
    got = run_all(paddock)
    assert sum(len(lines) for _, lines in want) > 60, f"zkCli printed too little: {want}"
    for (cmd, w), (_, g) in zip(want, got):
        assert g == w, f"zkCli {cmd!r}:\nzookeeper: {w}\npaddock:   {g}"
