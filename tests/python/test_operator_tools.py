"""The operator's tools, as a new user meets them: the shell against a
server that is not there, `paddock status` on a standalone server, an
ensemble (Paddock's and ZooKeeper's) and one with a member down, `paddock
version`, completions and man pages, `paddock bench` stopped with Ctrl-C
and its cleanup, and `paddock inspect` on a running server's files."""

import json
import re
import signal
import socket
import subprocess
import time

import pexpect
import pytest

from conftest import free_port, paddock_binary, start_ensemble, start_paddock, wait_until


def run(*words, timeout=30):
    return subprocess.run([paddock_binary(), *words], capture_output=True, text=True,
                          timeout=timeout)


def test_the_shell_says_at_once_that_no_server_is_there():
    dead = f"127.0.0.1:{free_port()}"
    start = time.monotonic()
    p = run("cli", "--server", dead, "ls", "/")
    assert time.monotonic() - start < 5
    assert p.returncode == 1
    assert p.stderr.splitlines()[0] == (
        f"KeeperErrorCode = ConnectionLoss for /: cannot connect to {dead}: "
        "Connection refused (os error 111)")
    # zkCli's spelling, and a port left out, are taken too.
    p = run("cli", "-server", "127.0.0.1", "-timeout", "2000", "version")
    assert p.returncode == 0 and "ZooKeeper CLI version" in p.stdout


def test_a_server_that_never_answers_costs_the_timeout_shared_among_the_servers():
    """Two listeners that take connections and never answer the handshake
    (a paused or blackholed server): 2 s of session timeout gives each
    1 s, as ZooKeeper's client divides it."""
    silent = [socket.socket() for _ in range(2)]
    try:
        for s in silent:
            s.bind(("127.0.0.1", 0))
            s.listen(8)
        servers = ",".join(f"127.0.0.1:{s.getsockname()[1]}" for s in silent)
        start = time.monotonic()
        p = run("cli", "--server", servers, "--timeout", "2000", "ls", "/")
        took = time.monotonic() - start
    finally:
        for s in silent:
            s.close()
    assert p.returncode == 1
    first = p.stderr.splitlines()[0]
    assert first.startswith("KeeperErrorCode = ConnectionLoss for /: cannot connect to "), first
    assert first.count("no answer within 1000 ms") == 2, first
    assert 1.8 < took < 8, took


def test_the_shells_help_lists_every_command_and_exits_0():
    p = run("cli", "--help")
    assert p.returncode == 0, p.stderr
    assert "--server host[:port]" in p.stdout
    for command in ("create", "deleteall", "getAcl", "addWatch", "reconfig", "tree", "endpoint"):
        assert re.search(rf"^  {command} ", p.stdout, re.M), command
    assert run("cli", "-timeout").returncode == 2


def test_ctrl_c_stops_a_command_and_the_shell_goes_on(tmp_path):
    server = start_paddock(tmp_path)
    shell = pexpect.spawn(paddock_binary(), ["cli", "--server", server.hosts],
                          env={"HOME": str(tmp_path), "TERM": "xterm"}, encoding="utf-8",
                          timeout=15)
    try:
        shell.expect(r"\(CONNECTED\) 0\] ")
        # A server that stops answering: the command waits...
        server.proc.send_signal(signal.SIGSTOP)
        shell.sendline("ls /")
        # The line is read (the terminal is no longer raw)...
        shell.expect(r"ls /[^\n]*\r\n")
        # ...and the command waits until Ctrl-C, which ends it, not the shell.
        shell.sendintr()
        shell.expect_exact("^C (command interrupted)")
        server.proc.send_signal(signal.SIGCONT)
        shell.expect(r"\) 1\] ")
        shell.sendline("ls /")
        shell.expect_exact("[zookeeper]")
        shell.sendline("quit")
        shell.expect(pexpect.EOF)
    finally:
        server.proc.send_signal(signal.SIGCONT)
        shell.close()
        server.stop()
    assert shell.exitstatus == 0


def test_the_interactive_shell_says_when_it_cannot_connect(tmp_path):
    dead = f"127.0.0.1:{free_port()}"
    shell = pexpect.spawn(paddock_binary(), ["cli", "--server", dead],
                          env={"HOME": str(tmp_path), "TERM": "xterm"}, encoding="utf-8",
                          timeout=5)
    try:
        shell.expect_exact(f"cannot connect to {dead}: Connection refused (os error 111); "
                           "still trying")
        shell.expect_exact(f"[zk: {dead}(CONNECTING) 0] ")
        shell.sendline("ls /")
        shell.expect_exact(f"KeeperErrorCode = ConnectionLoss for /: cannot connect to {dead}")
        shell.sendline("quit")
        shell.expect(pexpect.EOF)
    finally:
        shell.close()


def test_status_of_a_standalone_server(paddock):
    p = run("status", "--server", paddock.hosts)
    assert p.returncode == 0, p.stdout + p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].split()[:5] == ["ENDPOINT", "MODE", "ZXID", "LAG", "TERM"]
    assert lines[1].split()[:2] == [paddock.hosts, "standalone"]
    assert lines[-1].startswith("healthy: 1 of 1 serving")


def test_status_of_a_zookeeper_server(zookeeper):
    """The same tool reads ZooKeeper's own answers."""
    p = run("status", "--server", zookeeper.hosts, "-o", "json")
    assert p.returncode == 0, p.stdout + p.stderr
    report = json.loads(p.stdout)
    assert report["healthy"] and report["members"][0]["mode"] == "standalone"


@pytest.mark.parametrize("kind", ["paddock", "zookeeper"])
def test_status_of_an_ensemble_finds_every_member_and_fails_when_one_is_down(tmp_path, kind):
    ensemble = start_ensemble(tmp_path, kind, tick_ms=500)
    try:
        one = ensemble.members[0]
        # Asked of one member, the status covers every member its
        # configuration lists.
        def healthy():
            p = run("status", "--server", f"127.0.0.1:{one.port}", "-o", "json")
            return p.returncode == 0 and json.loads(p.stdout)
        assert wait_until(lambda: healthy() is not False, timeout=30)
        # A write, so that every member has a zxid of the leader's term
        # (a ZooKeeper follower says 0x0 until it has applied one).
        assert run("cli", "--server", f"127.0.0.1:{one.port}", "create", "/probe").returncode == 0

        def caught_up():
            report = healthy()
            members = report["members"] if report else []
            return len(members) == 3 and all(
                m["zxid"] not in (None, "0x0") and m["term"] and isinstance(m["lag"], int)
                for m in members)
        assert wait_until(caught_up, timeout=30), healthy()
        report = healthy()
        members = report["members"]
        assert sorted(m["id"] for m in members) == [1, 2, 3]
        assert [m["mode"] for m in members].count("leader") == 1
        assert re.fullmatch(r"healthy: 3 of 3 serving, leader \d, term \d+", report["summary"])
        # A member down: still a table, the member named, exit status 1.
        leader = next(m["id"] for m in members if m["mode"] == "leader")
        down = next(m for m in ensemble.members if m.sid != leader)
        down.kill()
        serving = next(m for m in ensemble.members if m is not down)
        p = run("status", "--server", f"127.0.0.1:{serving.port}")
        assert p.returncode == 1, p.stdout
        row = next(line for line in p.stdout.splitlines()
                   if line.startswith(f"127.0.0.1:{down.port} "))
        assert "not serving: Connection refused" in row
        assert p.stdout.splitlines()[-1].startswith("NOT HEALTHY: 2 of 3 serving, leader")
    finally:
        ensemble.stop()


def test_version_completions_and_man_pages(tmp_path):
    p = run("version")
    assert p.returncode == 0
    assert re.fullmatch(r"paddock \d+\.\d+\.\d+ \(commit [0-9a-f]+(-dirty)?, "
                        r"\d{4}-\d\d-\d\d \d\d:\d\d UTC; speaks ZooKeeper 3\.8\.0\)\n", p.stdout), p.stdout
    assert run("--version").stdout == p.stdout
    shells = {"bash": "complete -F _paddock", "zsh": "#compdef paddock", "fish": "complete -c paddock"}
    for shell, marker in shells.items():
        out = run("completions", shell).stdout
        assert marker in out and "status" in out, shell
    bad = run("completions", "tcsh")
    assert bad.returncode == 2 and "invalid value 'tcsh'" in bad.stderr
    assert run("man", "--out-dir", str(tmp_path)).returncode == 0
    pages = {p.name for p in tmp_path.glob("*.1")}
    assert {"paddock.1", "paddock-server.1", "paddock-status.1", "paddock-bench.1"} <= pages
    assert (tmp_path / "paddock-status.1").read_text().startswith(".ie")
    assert ".TH paddock-status 1" in (tmp_path / "paddock-status.1").read_text()


def test_bench_stopped_with_ctrl_c_reports_what_it_measured_and_cleanup_removes_its_nodes(paddock):
    bench = subprocess.Popen(
        [paddock_binary(), "bench", "--server", paddock.hosts, "-w", "create", "-d", "60",
         "-c", "2", "--warmup", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Its progress line says it is running.
        first = bench.stderr.readline()
        assert "ops/s" in first, first
        bench.send_signal(signal.SIGINT)
        out, err = bench.communicate(timeout=15)
    finally:
        bench.kill()
    assert bench.returncode == 0, err
    head = out.splitlines()[0]
    assert re.match(r"create against 127\.0\.0\.1:\d+: \d+ ops/s over \d+\.\d s "
                    r"\(\d+ ops, 0 errors\), interrupted$", head), head
    assert float(re.search(r"over (\S+) s", head).group(1)) < 30
    p = run("bench", "--server", paddock.hosts, "-w", "create", "-d", "1", "-c", "2", "--cleanup")
    assert p.returncode == 0, p.stderr
    assert re.search(r"^cleanup: deleted \d+ znodes under /paddock-bench$", p.stdout, re.M)
    assert "paddock-bench" not in run("cli", "--server", paddock.hosts, "ls", "/").stdout


def test_inspect_shows_the_running_servers_tree_and_log_readably(tmp_path):
    server = start_paddock(tmp_path)
    data = str(tmp_path / "paddock-data")
    try:
        assert run("cli", "--server", server.hosts, "create", "/inspected", "hello").returncode == 0
        # No snapshot yet: the tree comes from the log.
        tree = run("inspect", "tree", "--data-dir", data)
        assert tree.returncode == 0, tree.stderr
        node = next(line for line in tree.stdout.splitlines() if line.startswith("/inspected\t"))
        assert node.endswith('"hello"') and re.search(r"mtime \w{3} \w{3} \d\d ", node), node
        log = run("inspect", "log", "--data-dir", data)
        create = next(line for line in log.stdout.splitlines() if "/inspected" in line)
        assert re.search(r"\t\w{3} \w{3} \d\d \d\d:\d\d:\d\d UTC \d{4}\t", create), create
        listed = run("inspect", "list", "--data-dir", data).stdout
        segment = next(line for line in listed.splitlines() if line.startswith("segment"))
        used, file = re.search(r"\t(\d+) bytes \(file (\d+)\)\t", segment).groups()
        assert 0 < int(used) < int(file), segment
    finally:
        server.stop()
