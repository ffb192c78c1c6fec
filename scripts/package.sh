#!/usr/bin/env bash
# Builds the Debian package of paddock with cargo-deb (installing
# cargo-deb first if it is missing), after writing the man pages and shell
# completions that the package ships (crates/paddock/Cargo.toml,
# [package.metadata.deb]). The last line printed is the .deb's path.
#
# Usage: scripts/package.sh [--profile NAME] [--no-build] [--fast]
#   --profile NAME  the Cargo profile to package (default: release);
#                   the binary is target/NAME/paddock
#   --no-build      package target/NAME/paddock as it is instead of
#                   building it (the test suite packages the `checked`
#                   build it has already made)
#   --fast          lighter compression: a ~20% larger .deb made in a
#                   third of the time (for tests, not for distribution)
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
build=1
fast=0
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) [ $# -ge 2 ] || { echo "--profile needs a name" >&2; exit 2; }
               profile="$2"; shift 2 ;;
    --profile=*) profile="${1#--profile=}"; shift ;;
    --no-build) build=0; shift ;;
    --fast) fast=1; shift ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$profile" in
  dev|debug) echo "cargo-deb does not package the dev profile; use release or a custom one" >&2
             exit 2 ;;
esac

# A debug build of cargo-deb: half the build time of a release one (about
# 40 s here), and it still packages in seconds.
if ! cargo deb --version >/dev/null 2>&1; then
  echo "== installing cargo-deb (cargo install cargo-deb --locked --debug)" >&2
  cargo install cargo-deb --locked --debug --quiet
fi

target_dir="${CARGO_TARGET_DIR:-target}"
bin="$target_dir/$profile/paddock"
if [ "$build" = 1 ]; then
  echo "== cargo build --profile $profile -p paddock" >&2
  cargo build --profile "$profile" -p paddock --locked
elif [ ! -x "$bin" ]; then
  echo "--no-build: $bin does not exist; build it first (cargo build --profile $profile -p paddock)" >&2
  exit 1
fi

# The man pages and completions come from the binary being packaged, so
# they describe exactly its options. The asset paths in Cargo.toml name
# target/package-assets, so they are written there whatever
# CARGO_TARGET_DIR is.
assets=target/package-assets
rm -rf "$assets"
mkdir -p "$assets/man" "$assets/completions"
"$bin" man --out-dir "$assets/man"
"$bin" completions bash >"$assets/completions/paddock.bash"
"$bin" completions zsh >"$assets/completions/_paddock"
"$bin" completions fish >"$assets/completions/paddock.fish"

# --strip: the `checked` profile keeps line tables for backtraces
# (~120 MB); a package wants the stripped binary (~20 MB), and cargo-deb
# strips a copy, never the binary in target/. For `release`, which Cargo
# already strips, it changes nothing.
# Always --no-build: the binary was built above (or given), and had to be
# before cargo deb, for the man pages and completions.
args=(--package paddock --profile "$profile" --no-build --strip)
[ "$fast" = 0 ] || args+=(--fast)
echo "== cargo deb ${args[*]}" >&2
# cargo-deb warns about every asset path outside the crate that contains
# /target/ other than target/release/ (it cannot tell generated files from
# build products); those warnings about target/package-assets are dropped,
# any other warning is shown.
deb="$(cargo deb "${args[@]}" \
  2> >(grep -v "^warning: Only source paths starting with exactly 'target/release/' .*/target/package-assets/" >&2) \
  | tail -n 1)"
[ -f "$deb" ] || { echo "cargo deb did not report a .deb (got: $deb)" >&2; exit 1; }
echo "$deb"
