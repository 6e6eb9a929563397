#!/bin/sh
# The main job: install what is missing, build, and run `selfsup demo`
# (pretrain on Fashion-MNIST without labels, fine-tune on 1% labels, compare
# with scratch, robustness, report). Extra arguments go to `selfsup demo`.
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ]; then ./scripts/install-deps.sh; fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j2
exec ./build/selfsup demo "$@"
