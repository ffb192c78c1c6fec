"""The C client (cli_mt from Debian's zookeeper-bin) behaves the same against
Paddock as against Apache ZooKeeper 3.8.0."""

import re
import subprocess
import time

CLI_MT = "/usr/lib/zookeeper/bin/cli_mt"

SCRIPT = [
    "create /cc",
    "create /cc/a",
    "create +s /cc/seq-",
    "create +e /cc/eph",
    "create /cc",
    "create /missing/x",
    "ls /cc",
    "ls2 /cc",
    "set /cc payload",
    "get /cc",
    "exists /cc/a",
    "exists /cc/none",
    "delete /cc",
    "delete /cc/a",
    "sync /cc",
    "get /cc/a",
]

NOISE = re.compile(r"^(time = |Got a new session id|Watcher |\s*$)")


def run_script(server):
    proc = subprocess.Popen([CLI_MT, server.hosts], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(1.0)  # cli_mt reads commands as they come; let it connect first
    for line in SCRIPT:
        proc.stdin.write(line + "\n")
        proc.stdin.flush()
        time.sleep(0.15)
    out, _ = proc.communicate("quit\n", timeout=30)
    lines = []
    for line in out.splitlines():
        if NOISE.match(line) or line.startswith("20"):  # timestamped log lines
            continue
        line = re.sub(r"^(\s*[cm]time\s*=).*", r"\1 <time>", line)
        line = re.sub(r"^(\s*ephemeralOwner\s*=).*", r"\1 <session>", line)
        lines.append(line)
    return lines


def test_c_client_sees_the_same_results(zookeeper, paddock):
    want = run_script(zookeeper)
    got = run_script(paddock)
    assert any("rc = 0" in line for line in want), want
    assert got == want
