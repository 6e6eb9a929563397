#!/bin/sh
# Fuzz every parser with libFuzzer (clang + ASan/UBSan), SECONDS each.
#
#   scripts/fuzz.sh SECONDS [TARGET ...]     e.g. scripts/fuzz.sh 600
#   (or: cmake --build build-fuzz --target fuzz, SS_FUZZ_SECONDS each, 60 by default)
#
# Targets are fuzz/fuzz_*.c (all by default). Each starts from the committed
# seeds in fuzz/corpus/<name> (the target name without "fuzz_") and grows a
# scratch corpus in fuzz/corpus-work/<name> (git-ignored). A crash leaves
# its input in fuzz/corpus-work/artifacts/ and the script exits non-zero;
# turn it into a regression case in tests/test_hostile.c. Seconds fuzzed
# are appended to fuzz/corpus-work/fuzz-seconds.tsv (target, seconds, runs).
# Needs clang and libFuzzer (Debian: clang, libclang-rt-14-dev).
set -eu
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-60}
[ $# -gt 0 ] && shift
BUILD=${FUZZ_BUILD:-build-fuzz}
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
    CC=clang cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DSS_FUZZ=ON -DSS_SANITIZE=ON \
        -DSS_NATIVE=OFF -DSS_MPI=OFF -DSS_WERROR=ON >/dev/null
fi
if [ $# -eq 0 ]; then
    set -- $(ls fuzz/fuzz_*.c | sed 's|fuzz/||; s|\.c$||')
fi
[ -n "${FUZZ_NO_BUILD:-}" ] || cmake --build "$BUILD" -j"${JOBS:-2}" --target "$@"
WORK=fuzz/corpus-work
mkdir -p "$WORK/artifacts"
status=0
for t in "$@"; do
    name=${t#fuzz_}
    mkdir -p "$WORK/$name"
    seeds=""
    [ -d "fuzz/corpus/$name" ] && seeds="fuzz/corpus/$name"
    dict=""
    [ -f "fuzz/$t.dict" ] && dict="-dict=fuzz/$t.dict"
    echo "== $t: $SECONDS_EACH s"
    log="$WORK/$name.log"
    # -rss_limit_mb / -malloc_limit_mb: an over-allocation on hostile input
    # is a finding too.
    if ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
        UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 OMP_NUM_THREADS=1 \
        "$BUILD/$t" "$WORK/$name" $seeds $dict -max_total_time="$SECONDS_EACH" -timeout=20 \
        -rss_limit_mb=2048 -malloc_limit_mb=1024 -max_len=65536 -print_final_stats=1 \
        -artifact_prefix="$WORK/artifacts/$name-" >"$log" 2>&1; then
        runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
        printf '%s\t%s\t%s\n' "$t" "$SECONDS_EACH" "$runs" >>"$WORK/fuzz-seconds.tsv"
        echo "   ok: $runs runs, corpus $(ls "$WORK/$name" | wc -l) inputs"
    else
        echo "   CRASH: see $log and $WORK/artifacts/"
        tail -30 "$log"
        status=1
    fi
done
exit $status
