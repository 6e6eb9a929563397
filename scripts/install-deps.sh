#!/bin/sh
# Installs what selfsup needs on Debian 12 (run as root). Idempotent: only
# missing packages are installed. The one list of apt package names.
set -eu
PKGS="build-essential cmake pkg-config libopenblas-openmp-dev libstb-dev libcjson-dev
zlib1g-dev dataset-fashion-mnist python3-pattern clang libclang-rt-14-dev valgrind
libopenmpi-dev openmpi-bin"
# Optional, for reference vectors and the PyTorch comparison (not needed by tests).
OPT_PKGS="python3-torch python3-numpy"
missing=""
for p in $PKGS ${SS_WITH_TORCH:+$OPT_PKGS}; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "install-deps: installing:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends $missing
fi
