#!/usr/bin/env bash
# Runs every test of the project, installing what the suite needs first:
# Apache ZooKeeper 3.8.0, its C client and redis-server (Debian), Kazoo,
# pure-sasl and pytest (PyPI, into .venv). The Rust toolchain is the one
# rust-toolchain.toml names.
# Usage: scripts/test.sh            (from anywhere in the checkout)
set -euo pipefail
cd "$(dirname "$0")/.."

# Each stage prints its time when it ends, so a slow stage shows in CI's log.
stage_end() {
  [ -z "${stage_name:-}" ] || echo "   ($stage_name: $((SECONDS - stage_start)) s)"
}
stage() {
  stage_end
  stage_name="$1"; stage_start=$SECONDS
  echo "== $1"
}
trap stage_end EXIT

need_apt=()
[ -f /usr/share/java/zookeeper.jar ] || need_apt+=(zookeeper)
[ -x /usr/lib/zookeeper/bin/cli_mt ] || need_apt+=(zookeeper-bin)
command -v java >/dev/null || need_apt+=(default-jre-headless)
command -v javac >/dev/null || need_apt+=(default-jdk-headless)
[ -f /usr/share/java/curator-framework.jar ] || need_apt+=(libcurator-framework-java)
command -v redis-server >/dev/null || need_apt+=(redis-server)
command -v openssl >/dev/null || need_apt+=(openssl)
# scripts/walkthrough.sh (the README's first five minutes) uses these.
command -v curl >/dev/null || need_apt+=(curl)
command -v pgrep >/dev/null || need_apt+=(procps)
command -v python3 >/dev/null || need_apt+=(python3)
# Debian's python3 makes virtual environments only with python3-venv.
python3 -c "import ensurepip, venv" 2>/dev/null || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  stage "installing ${need_apt[*]} (apt)"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
# The differential tests hold Paddock to ZooKeeper 3.8.0's behaviour.
zk_version=$(dpkg-query -W -f='${Version}' zookeeper 2>/dev/null || echo none)
case "$zk_version" in
  3.8.0*) ;;
  *) echo "scripts/test.sh: the tests compare against ZooKeeper 3.8.0; Debian's zookeeper package here is $zk_version" >&2
     exit 1 ;;
esac

# Python test dependencies go into a virtual environment of the
# checkout's own (Debian's system Python refuses pip installs).
venv="${PADDOCK_VENV:-$PWD/.venv}"
if ! "$venv/bin/python" -c "import kazoo, pytest, puresasl, jks, OpenSSL" 2>/dev/null; then
  stage "installing kazoo, pytest, pexpect, pure-sasl, pyjks, pyOpenSSL into $venv (pip)"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
fi

# Incremental caches roughly double target/ and buy nothing on a one-off run.
export CARGO_INCREMENTAL=0

stage "cargo fmt --check"
cargo fmt --all -- --check
stage "cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
# The tests build with the `checked` profile (Cargo.toml): release speed,
# with debug assertions and overflow checks on. One build of the
# dependencies instead of two keeps the suite well inside CI's time. It
# also builds target/checked/paddock, which the end-to-end tests and
# pytest run (a separate build would build it a second time, with the
# dependencies' features unified differently).
stage "cargo test --profile checked"
cargo test --profile checked --workspace --quiet
# (tests/python/test_package.py builds the Debian package with
# scripts/package.sh, which installs cargo-deb the first time.)
stage "pytest (Kazoo, zkCli.sh, C client, differential against ZooKeeper 3.8.0)"
PADDOCK_BIN="$PWD/target/checked/paddock" "$venv/bin/python" -m pytest -q tests/python
