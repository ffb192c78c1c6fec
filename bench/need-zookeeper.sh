# Sourced by the comparison scripts: installs Apache ZooKeeper 3.8.0 and a
# Java runtime (Debian packages) when missing, then builds Paddock.
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
need=()
[ -f /usr/share/java/zookeeper.jar ] || need+=(zookeeper)
command -v java >/dev/null || need+=(default-jre-headless)
if [ ${#need[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
cargo build --release -q -p paddock
# The charts are drawn with matplotlib.
python3 -c "import matplotlib" 2>/dev/null || python3 -m pip install -q matplotlib==3.9.2
