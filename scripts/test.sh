#!/bin/sh
# The test command: install what is missing, build with -Wall -Wextra -Werror
# (gcc, and clang as a second compiler), run the suite with ctest, then build
# and run it again under AddressSanitizer + UndefinedBehaviorSanitizer, then
# a short end-to-end run under valgrind memcheck (SS_SKIP_VALGRIND=1 skips it).
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ]; then ./scripts/install-deps.sh; fi
JOBS=${JOBS:-2}

echo "== gcc, Release, -Werror"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DSS_WERROR=ON >/dev/null
cmake --build build -j"$JOBS"
(cd build && ctest --output-on-failure -j"$JOBS")

echo "== clang, -Werror (compile check)"
CC=clang cmake -S . -B build-clang -DCMAKE_BUILD_TYPE=Release -DSS_WERROR=ON >/dev/null
cmake --build build-clang -j"$JOBS"

echo "== gcc, AddressSanitizer + UndefinedBehaviorSanitizer"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSS_SANITIZE=ON -DSS_WERROR=ON >/dev/null
cmake --build build-asan -j"$JOBS"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    SS_SANITIZED=1 ctest --output-on-failure -j"$JOBS")
if [ -z "${SS_SKIP_VALGRIND:-}" ]; then
    echo "== valgrind memcheck: short pretrain + fine-tune + resume + eval (scripts/valgrind.sh)"
    ./scripts/valgrind.sh
fi
echo "== all tests passed"
