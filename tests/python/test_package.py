"""The Debian package (scripts/package.sh, made by cargo-deb from
crates/paddock/Cargo.toml's [package.metadata.deb]): it is built from the
binary under test, installed with dpkg, started the way its systemd unit
starts it (this machine runs no systemd, so the test runs the unit's
ExecStart= as the unit's User= itself), used, stopped, removed and purged.

It changes the machine (a package, a system user, /etc/paddock,
/var/lib/paddock), so it needs root, and whatever happens it leaves the
machine as it found it: the `machine` fixture kills the server, purges the
package, and deletes or restores what the package left behind."""

import grp
import os
import pwd
import re
import shlex
import shutil
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

from conftest import ROOT, four_letter, free_port, paddock_binary, wait_until

PKG = "paddock"
USER = "paddock"
BIN = Path("/usr/bin/paddock")
UNIT = Path("/lib/systemd/system/paddock.service")
CONF_DIR = Path("/etc/paddock")
CONF = CONF_DIR / "zoo.cfg"
DATA = Path("/var/lib/paddock")
MAN1 = Path("/usr/share/man/man1")
COMPLETIONS = [
    Path("/usr/share/bash-completion/completions/paddock"),
    Path("/usr/share/zsh/vendor-completions/_paddock"),
    Path("/usr/share/fish/vendor_completions.d/paddock.fish"),
]
# Where deb-systemd-helper keeps the enable and mask symlinks and its state.
SYSTEMD_STATE = [Path("/etc/systemd/system"), Path("/var/lib/systemd")]

# A system user, as adduser --system makes them (/etc/adduser.conf).
SYSTEM_UID_MAX = 999


def run(*cmd, timeout=120, check=True, **kw):
    """Runs `cmd`; on failure the assertion shows its output."""
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check:
        assert p.returncode == 0, (
            f"{shlex.join(map(str, cmd))} exited {p.returncode}\n"
            f"stdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    return p


def dpkg_status():
    """The package's dpkg status ("install ok installed", "deinstall ok
    config-files", ...), or None when dpkg does not know it."""
    p = subprocess.run(["dpkg-query", "-W", "-f=${Status}", PKG],
                       capture_output=True, text=True)
    return p.stdout.strip() if p.returncode == 0 and p.stdout.strip() else None


def user_exists(name=USER):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def group_exists(name=USER):
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def systemd_leftovers():
    """Every path naming the unit under systemd's and deb-systemd-helper's
    directories: enable and mask symlinks, state files."""
    return sorted(str(p) for d in SYSTEMD_STATE if d.exists()
                  for p in d.rglob("*paddock*"))


def unit_settings(text):
    """The [Service] settings of a unit file, the last of each key winning."""
    settings, section = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line:
            key, value = line.split("=", 1)
            settings[key.strip()] = value.strip()
    return settings


def data_tree(binary):
    """The znodes in /var/lib/paddock as `paddock inspect tree` reads them."""
    return run(binary, "inspect", "tree", "--data-dir", str(DATA), timeout=60).stdout


class Machine:
    """What the test starts and what it must put back."""

    def __init__(self, backup):
        self.server = None
        self.log = None
        self.backup = backup


@pytest.fixture
def machine(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("installs a Debian package: needs root")
    if not shutil.which("dpkg") or not shutil.which("dpkg-query"):
        pytest.skip("installs a Debian package: needs dpkg")
    # Never touch a paddock that is not this test's: say what is in the way.
    assert dpkg_status() is None, (
        f"the {PKG} package is already known to dpkg ({dpkg_status()}); this test "
        f"installs and purges it, so purge it first: dpkg -P {PKG}")
    assert not user_exists() and not group_exists(), (
        f"a '{USER}' user or group exists already; this test's package creates "
        "and deletes it, so remove it first (userdel paddock; groupdel paddock)")
    assert not CONF_DIR.exists(), f"{CONF_DIR} exists already; move it away first"
    # Data kept by an earlier purge (on purpose: see packaging/debian/postrm)
    # is moved aside for the test and put back afterwards.
    backup = None
    if DATA.exists() or DATA.is_symlink():
        backup = DATA.with_name(f"paddock.before-test-{os.getpid()}")
        DATA.rename(backup)
    m = Machine(backup)
    try:
        yield m
    finally:
        if m.server is not None and m.server.poll() is None:
            m.server.kill()
            m.server.wait()
        if m.log is not None:
            m.log.close()
        if dpkg_status() is not None:
            subprocess.run(["dpkg", "--purge", PKG], capture_output=True, timeout=120)
        # Whatever a failed purge left behind.
        if user_exists():
            subprocess.run(["userdel", USER], capture_output=True)
        if group_exists():
            subprocess.run(["groupdel", USER], capture_output=True)
        shutil.rmtree(CONF_DIR, ignore_errors=True)
        shutil.rmtree(DATA, ignore_errors=True)
        if backup is not None:
            backup.rename(DATA)


def test_debian_package_installs_serves_and_purges(machine, tmp_path):
    times = {}
    t = time.monotonic()

    # Package the binary under test (target/PROFILE/paddock) without
    # building anything: package.sh runs cargo deb --profile PROFILE
    # --no-build (installing cargo-deb first if it is missing).
    binary = Path(paddock_binary()).resolve()
    profile, target_dir = binary.parent.name, binary.parent.parent
    env = dict(os.environ, CARGO_TARGET_DIR=str(target_dir))
    built = run("bash", str(ROOT / "scripts" / "package.sh"), "--profile", profile,
                "--no-build", "--fast", cwd=ROOT, env=env, timeout=900)
    deb = Path(built.stdout.strip().splitlines()[-1])
    assert deb.suffix == ".deb" and deb.is_file(), built.stdout
    fields = run("dpkg-deb", "--field", str(deb), "Package", "Depends").stdout
    assert "Package: paddock" in fields and "adduser" in fields and "libc6" in fields, fields
    times["package"] = time.monotonic() - t
    t = time.monotonic()

    # Install: the binary, the system user, the data directory, the config.
    run("dpkg", "--install", str(deb), env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    assert dpkg_status() == "install ok installed"
    version = run(str(BIN), "version").stdout
    assert version.startswith("paddock "), version

    user = pwd.getpwnam(USER)
    assert user.pw_uid <= SYSTEM_UID_MAX, f"not a system user: {user}"
    assert user.pw_gid == grp.getgrnam(USER).gr_gid
    assert user.pw_dir == str(DATA)
    assert user.pw_shell in ("/usr/sbin/nologin", "/bin/false"), user.pw_shell
    st = DATA.stat()
    assert (st.st_uid, st.st_gid) == (user.pw_uid, user.pw_gid)
    assert stat.S_IMODE(st.st_mode) == 0o750, oct(st.st_mode)

    assert CONF.is_file()
    conffiles = run("dpkg-query", "-W", "-f=${Conffiles}", PKG).stdout
    assert str(CONF) in conffiles, conffiles
    assert UNIT.is_file()
    if shutil.which("systemd-analyze"):
        # Checks the unit's syntax, its ExecStart binary and its man: link
        # offline (systemd need not be running).
        run("systemd-analyze", "verify", str(UNIT), timeout=60)
    for page in ("paddock", "paddock-server", "paddock-cli"):
        assert (MAN1 / f"{page}.1.gz").is_file(), page
    if shutil.which("man"):
        assert run("man", "-w", "paddock-server").stdout.strip() == str(MAN1 / "paddock-server.1.gz")
    for f in COMPLETIONS:
        assert f.is_file() and f.stat().st_size > 0, f
    assert "paddock" in COMPLETIONS[0].read_text()
    assert Path("/usr/share/doc/paddock/README.md").is_file()
    assert Path("/usr/share/doc/paddock/copyright").is_file()
    times["install"] = time.monotonic() - t
    t = time.monotonic()

    # An admin moves the client port (to one free here); the rest of the
    # shipped config stays as it is.
    port = free_port()
    shipped = CONF.read_text()
    assert re.search(r"^clientPortAddress=127\.0\.0\.1$", shipped, re.M), shipped
    edited, n = re.subn(r"^clientPort=\d+$", f"clientPort={port}", shipped, flags=re.M)
    assert n == 1, shipped
    CONF.write_text(edited)

    # Start the server as systemd would: the unit's ExecStart= as its
    # User=/Group=, in its WorkingDirectory=, with a bare environment.
    unit = unit_settings(UNIT.read_text())
    assert unit["User"] == USER and unit["Group"] == USER, unit
    command = shlex.split(unit["ExecStart"])
    assert command[0] == str(BIN) and str(CONF) in command, command
    gid = grp.getgrnam(unit["Group"]).gr_gid
    machine.log = open(tmp_path / "server.log", "w")
    machine.server = subprocess.Popen(
        ["setpriv", f"--reuid={pwd.getpwnam(unit['User']).pw_uid}", f"--regid={gid}",
         "--init-groups", "--", *command],
        cwd=unit.get("WorkingDirectory", "/"), stdout=machine.log, stderr=subprocess.STDOUT,
        env={"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
             "LANG": "C.UTF-8"})

    def serving():
        assert machine.server.poll() is None, (
            f"the server exited with {machine.server.returncode}:\n"
            + (tmp_path / "server.log").read_text())
        try:
            return "Mode:" in four_letter(port, "srvr", timeout=0.5)
        except OSError:
            return False

    assert wait_until(serving, timeout=30), (
        "not serving after 30 s:\n" + (tmp_path / "server.log").read_text())
    # It runs as the paddock user, not as root.
    status = Path(f"/proc/{machine.server.pid}/status").read_text()
    assert re.search(rf"^Uid:\s+{user.pw_uid}\s", status, re.M), status
    times["start"] = time.monotonic() - t
    t = time.monotonic()

    server = f"127.0.0.1:{port}"
    run(str(BIN), "cli", "--server", server, "create", "/pkg", "hello", timeout=30)
    got = run(str(BIN), "cli", "--server", server, "get", "/pkg", timeout=30).stdout
    assert "hello" in got.splitlines(), got
    # The data is in /var/lib/paddock, written by the paddock user.
    written = [p for p in DATA.rglob("*") if p.is_file()]
    assert written, "nothing written to /var/lib/paddock"
    assert all(p.stat().st_uid == user.pw_uid for p in written), [
        (str(p), p.stat().st_uid) for p in written]
    assert "/pkg" in data_tree(BIN)

    # SIGTERM, as systemctl stop sends: a clean exit, promptly.
    machine.server.send_signal(signal.SIGTERM)
    try:
        code = machine.server.wait(10)
    except subprocess.TimeoutExpired:
        pytest.fail("the server did not exit within 10 s of SIGTERM:\n"
                    + (tmp_path / "server.log").read_text())
    assert code == 0, f"exit code {code} after SIGTERM:\n" + (tmp_path / "server.log").read_text()
    times["use and stop"] = time.monotonic() - t
    t = time.monotonic()

    # Remove: the program and the unit go, the edited conffile stays.
    run("dpkg", "--remove", PKG)
    assert dpkg_status() == "deinstall ok config-files"
    assert not BIN.exists() and not UNIT.exists()
    assert CONF.read_text() == edited
    assert user_exists(), "the user goes with the purge, not the removal"

    # Purge: the config, the user and group, and the unit's enable/mask
    # symlinks go; the data stays (Debian keeps a database's data),
    # handed to root so no later holder of the freed uid can read it.
    run("dpkg", "--purge", PKG)
    assert dpkg_status() is None
    assert not CONF_DIR.exists()
    assert not user_exists() and not group_exists()
    assert systemd_leftovers() == []
    st = DATA.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o700), (
        st.st_uid, st.st_gid, oct(st.st_mode))
    assert "/pkg" in data_tree(binary), "the data did not survive the purge"
    times["remove and purge"] = time.monotonic() - t

    print("timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in times.items()))
