#!/bin/sh
# A short end-to-end run under valgrind memcheck: SimCLR pretraining, then
# fine-tuning from its checkpoint, a resume of the fine-tune and an
# evaluation, on 32 Fashion-MNIST images (16 for testing). Fails (exit 99)
# on any memory error or any definitely/indirectly lost block. About a
# minute of CPU time plus the build.
#
#   scripts/valgrind.sh            (builds build-valgrind: -O1 -g, no -march=native,
#                                   since valgrind lacks AVX-512)
#
# Needs valgrind (scripts/install-deps.sh) and dataset-fashion-mnist.
set -eu
cd "$(dirname "$0")/.."
BUILD=${VALGRIND_BUILD:-build-valgrind}
FMNIST=${FMNIST:-/usr/share/datasets/fashion-mnist}
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
    cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g" \
        -DSS_NATIVE=OFF -DSS_MPI=OFF -DSS_WERROR=ON >/dev/null
fi
cmake --build "$BUILD" -j"${JOBS:-2}" --target selfsup
WORK=$(mktemp -d /tmp/ss_valgrind_XXXXXX)
trap 'rm -rf "$WORK"' EXIT

# 32 training and 16 test images as plain IDX files (no gzip under valgrind).
/usr/bin/python3 - "$FMNIST" "$WORK/data" <<'EOF'
import gzip, os, struct, sys
src, dst = sys.argv[1], sys.argv[2]
os.makedirs(dst)
for split, n in (("train", 32), ("t10k", 16)):
    with gzip.open(f"{src}/{split}-images-idx3-ubyte.gz") as f:
        magic, _, h, w = struct.unpack(">IIII", f.read(16))
        pix = f.read(n * h * w)
    with open(f"{dst}/{split}-images-idx3-ubyte", "wb") as f:
        f.write(struct.pack(">IIII", magic, n, h, w) + pix)
    with gzip.open(f"{src}/{split}-labels-idx1-ubyte.gz") as f:
        magic, _ = struct.unpack(">II", f.read(8))
        lab = f.read(n)
    with open(f"{dst}/{split}-labels-idx1-ubyte", "wb") as f:
        f.write(struct.pack(">II", magic, n) + lab)
EOF

VG="valgrind --quiet --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,indirect
    --errors-for-leak-kinds=definite,indirect --suppressions=scripts/valgrind.supp"
# OpenBLAS's Haswell sgemm kernel runs ~25x slower under valgrind than its
# SSE3 one (a whole pretraining step: 265 s vs 10 s); the results differ
# only in rounding, which this run does not check.
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 OPENBLAS_CORETYPE=Prescott GOMP_SPINCOUNT=10000
COMMON="--data $WORK/data --batch 16 --threads 1 --quiet"
run() {
    echo "== valgrind: selfsup $*"
    # shellcheck disable=SC2086
    $VG "$BUILD/selfsup" "$@"
}
run pretrain --method simclr $COMMON --epochs 1 --knn-every 0 --out "$WORK/pre"
run finetune --model "$WORK/pre/last.safetensors" $COMMON --labels 100% --epochs 2 --max-steps 3 \
    --checkpoint-every 1 --eval-images 16 --out "$WORK/ft"
run finetune --model "$WORK/pre/last.safetensors" $COMMON --labels 100% --epochs 2 --eval-images 16 \
    --out "$WORK/ft" --resume
run eval --model "$WORK/ft/last.safetensors" --data "$WORK/data" --threads 1 --json
echo "== valgrind: no memory errors, no leaks"
