"""`paddock cli` beyond one-shot parity with zkCli (test_zkcli.py): the
interactive shell driven through a pseudo-terminal (prompt, watch events,
tab completion, history and redo), and Paddock's own commands: tree,
watch, -o json and endpoint status."""

import json
import subprocess

import pexpect

from conftest import free_port, paddock_binary

PROMPT = r"\[zk: 127\.0\.0\.1:\d+\(CONNECTED\) (\d+)\] "


def cli(server, *words, timeout=30):
    return subprocess.run([paddock_binary(), "cli", "-server", server.hosts, *words],
                          capture_output=True, text=True, timeout=timeout)


def test_interactive_shell_through_a_terminal(paddock, tmp_path):
    shell = pexpect.spawn(paddock_binary(), ["cli", "-server", paddock.hosts],
                          env={"HOME": str(tmp_path), "TERM": "xterm"}, encoding="utf-8", timeout=15)
    try:
        shell.expect(PROMPT)
        assert shell.match.group(1) == "0"
        shell.sendline("create -e /tty-eph first")
        shell.expect("Created /tty-eph")
        shell.expect(PROMPT)
        shell.sendline("get -w /tty-eph")
        shell.expect("first")
        shell.expect(PROMPT)
        # Another client changes the node: the watch fires in the shell.
        assert cli(paddock, "set", "/tty-eph", "second").returncode == 0
        shell.expect("WATCHER::")
        shell.expect("WatchedEvent state:SyncConnected type:NodeDataChanged path:/tty-eph")
        # Tab completes a znode path from the server's children.
        shell.send("get /tty-e\t")
        shell.expect("/tty-eph")
        shell.sendline("")
        shell.expect("second")
        shell.expect(PROMPT)
        shell.sendline("get /no-such-node")
        shell.expect("Node does not exist: /no-such-node")
        shell.expect(PROMPT)
        shell.sendline("history")
        shell.expect("0 - create -e /tty-eph first")
        shell.expect("3 - get /no-such-node")
        shell.expect(PROMPT)
        shell.sendline("redo 1")
        shell.expect("second")
        shell.expect(PROMPT)
        shell.sendline("quit")
        shell.expect(pexpect.EOF)
    finally:
        shell.close()
    assert shell.exitstatus == 0
    # quit closed the session, so its ephemeral is gone.
    assert "Node does not exist: /tty-eph" in cli(paddock, "stat", "/tty-eph").stderr
    assert "get /no-such-node" in (tmp_path / ".paddock_cli_history").read_text()


def test_tree_and_json_output(paddock):
    for path, data in [("/tree", "root"), ("/tree/a", "1"), ("/tree/a/x", None), ("/tree/b", "")]:
        assert cli(paddock, "create", path, *([data] if data is not None else [])).returncode == 0
    # zkCli's connection event comes first on stdout, then the tree.
    out = cli(paddock, "tree", "/tree").stdout.split("path:null\n", 1)[1]
    assert out == '/tree = "root"\n├── a = "1"\n│   └── x = null\n└── b = ""\n'
    tree = json.loads(cli(paddock, "-o", "json", "tree", "/tree").stdout)
    assert [c["name"] for c in tree["children"]] == ["a", "b"]
    assert tree["children"][0]["children"][0] == {"name": "x", "data": None, "children": []}
    got = json.loads(cli(paddock, "-o", "json", "get", "-s", "/tree/a").stdout)
    assert got["data"] == "1" and got["stat"]["dataLength"] == 1 and got["stat"]["numChildren"] == 1
    ls = json.loads(cli(paddock, "-o", "json", "ls", "/tree").stdout)
    assert ls == {"path": "/tree", "children": ["a", "b"]}
    created = json.loads(cli(paddock, "-o", "json", "create", "-s", "/tree/s-").stdout)
    assert created == {"created": "/tree/s-0000000002"}
    failed = cli(paddock, "-o", "json", "get", "/tree/none")
    assert failed.returncode == 1 and failed.stdout == ""
    assert failed.stderr.strip() == "Node does not exist: /tree/none"


def test_watch_streams_changes_under_a_path(paddock):
    assert cli(paddock, "create", "/watched").returncode == 0
    proc = subprocess.Popen([paddock_binary(), "cli", "-server", paddock.hosts, "watch", "-n", "3", "/watched"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr.readline().startswith("watching /watched")
        assert cli(paddock, "create", "/watched/child").returncode == 0
        assert cli(paddock, "set", "/watched/child", "x").returncode == 0
        assert cli(paddock, "set", "/elsewhere-not-watched", "x").returncode == 1
        assert cli(paddock, "delete", "/watched/child").returncode == 0
        out, _ = proc.communicate(timeout=15)
    finally:
        proc.kill()
    assert out.splitlines() == [
        "NodeCreated /watched/child",
        "NodeDataChanged /watched/child",
        "NodeDeleted /watched/child",
    ]
    assert proc.returncode == 0


def test_endpoint_status_shows_each_server(paddock):
    dead = f"127.0.0.1:{free_port()}"
    p = subprocess.run([paddock_binary(), "cli", "-server", f"{paddock.hosts},{dead}", "endpoint", "status"],
                       capture_output=True, text=True, timeout=30)
    lines = p.stdout.splitlines()
    assert lines[0].split()[:3] == ["ENDPOINT", "MODE", "ZXID"]
    assert lines[1].split()[:2] == [paddock.hosts, "standalone"]
    assert lines[2].startswith(dead) and "not serving" in lines[2]
    assert p.returncode == 1 and "1 of 2 servers did not answer" in p.stderr
    rows = json.loads(cli(paddock, "-o", "json", "endpoint", "status").stdout)
    assert rows[0]["mode"] == "standalone" and rows[0]["error"] is None
