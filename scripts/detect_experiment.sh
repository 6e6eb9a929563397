#!/bin/bash
# Detection from an SSL-pretrained encoder vs from scratch (docs/DETECTION.md).
# usage: scripts/detect_experiment.sh [OUT_DIR] [SEEDS...]
# Needs a built selfsup (build/selfsup) and Fashion-MNIST at /usr/share/datasets/fashion-mnist.
set -e
B=${SELFSUP:-$(dirname "$0")/../build/selfsup}
OUT=${1:-runs/detect}; shift || true
SEEDS=${*:-0 1 2}
FM=/usr/share/datasets/fashion-mnist
mkdir -p "$OUT"
# 1. Scenes: 1,000 labelled training scenes from Fashion-MNIST train items,
#    500 test scenes from the (unseen) test items, 48x48, 1-4 objects.
[ -f "$OUT/s48-train/annotations.json" ] || $B scenes --data $FM --n 1000 --size 48 --seed 1 --out "$OUT/s48-train"
[ -f "$OUT/s48-test/annotations.json" ] || $B scenes --data $FM --split test --n 500 --size 48 --seed 2 --out "$OUT/s48-test"
# 2. SimCLR pretraining of convnet-s on the 60,000 unlabelled Fashion-MNIST images (2 epochs).
[ -f "$OUT/simclr/last.safetensors" ] || $B pretrain --method simclr --data $FM --epochs 2 --knn-every 0 --seed 0 --out "$OUT/simclr"
# 3. Detector from scratch and from the SimCLR encoder, 100 and 1,000 labelled scenes.
for seed in $SEEDS; do
  for init in scratch simclr; do
    for n in 100 1000; do
      if [ $n = 100 ]; then ep=25; wu=1; else ep=2; wu=0.1; fi
      run="$OUT/$init-n$n-s$seed"
      [ -f "$run/result.json" ] && continue
      model=""; [ $init = simclr ] && model="--model $OUT/simclr/last.safetensors"
      $B detect train --data "$OUT/s48-train" --val-data "$OUT/s48-test" --n-train $n --epochs $ep --warmup $wu \
        --batch 16 --lr 2e-3 --wd 1e-4 --seed $seed $model --out "$run" --json | tee -a "$OUT/results.jsonl"
    done
  done
done
