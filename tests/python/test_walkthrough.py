"""The README's first five minutes: scripts/walkthrough.sh runs them
against a fresh server, and every command the README shows there is one
the script runs."""

import os
import re
import signal
import subprocess

from conftest import ROOT, free_port, paddock_binary


def walkthrough_lines():
    """The commands of the README's "first five minutes" code blocks, with
    their comments and a trailing `&` dropped, the admin port as the script
    spells it, and shell prompts as the line the script types."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## The first five minutes", 1)[1].split("\n## ", 1)[0]
    lines = []
    for block in re.findall(r"```sh\n(.*?)```", section, re.S):
        for line in block.splitlines():
            line = re.sub(r"\s+#.*$", "", line).rstrip(" &")
            prompt = re.match(r"\[zk: [^]]*\] (.*)", line)
            if prompt:
                lines.append(f'echo "{prompt.group(1)}" >&3')
            elif line.startswith(("paddock ", "curl ")):
                lines.append(line.replace("8080", '"$admin"'))
    return lines


def runs(script_line, command):
    """Whether `script_line` runs `command` as written: the same words,
    then at most redirections, a pipe, `&` or `||`."""
    line = script_line.strip()
    if line == command:
        return True
    rest = line[len(command):] if line.startswith(command + " ") else None
    return rest is not None and rest.lstrip().startswith((">", "<", "|", "&", "2>"))


def test_the_script_runs_every_command_the_readme_shows():
    script = (ROOT / "scripts" / "walkthrough.sh").read_text().splitlines()
    lines = walkthrough_lines()
    assert len(lines) >= 12, lines
    missing = [l for l in lines if not any(runs(s, l) for s in script)]
    assert missing == [], f"README lines the walkthrough script does not run: {missing}"
    assert not runs("paddock cli watch /service >w", "paddock cli"), "a bare command is matched whole"


def test_the_walkthrough_works_on_a_fresh_server():
    env = dict(os.environ, PORT=str(free_port()), ADMIN_PORT=str(free_port()))
    # Its own process group, so a timeout stops the servers it started too.
    p = subprocess.Popen(["bash", str(ROOT / "scripts" / "walkthrough.sh"), paddock_binary()],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    try:
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    assert p.returncode == 0, out + err
    assert out.strip().endswith("walkthrough: every step worked"), out
