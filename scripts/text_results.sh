#!/bin/bash
# rt-polarity results for docs/TEXT_RESULTS.md: MLM pretraining of text-s on
# movie-review-polarity-v2 + the rt-polarity train text (labels dropped),
# then fine-tune and linear probe vs the same encoder trained from scratch,
# at 1%, 10% and 100% of the train labels, seeds 0 1 2, on the fixed 90/10
# split of docs/rt-polarity-split.txt (split seed 0).
#
#   scripts/text_results.sh [OUT_DIR (runs/text_results)]
#
# Env: SS_BIN (build/selfsup), DATA (../shared/data), PRE_SEQS (12800:
# packed 64-token sequences of MLM pretraining, one pass = 200 steps of 64;
# 0 = the whole corpus), PRE_EPOCHS (1: passes over them),
# LANES (3: jobs run in parallel lanes of THREADS threads each), THREADS (1),
# METHOD (mlm | docbow: the pretext; docbow reads the reviews as documents,
# 2 passes by default, and uses the rt-polarity text for the tokenizer only),
# VOCAB (4096), EPOCHS_100 (1: classifier epochs at 100% labels),
# PRE_THREADS (THREADS: threads of the docbow pretraining, which runs alone).
# EMB_WEIGHT: docbow's --emb-weight (default 0).
# Restartable: a job whose result.json exists is skipped. Summary table:
# OUT_DIR/summary.md (SUMMARY_ONLY=1 rebuilds it without running anything).
set -euo pipefail
cd "$(dirname "$0")/.."
B=${SS_BIN:-build/selfsup}
D=${DATA:-../shared/data}
OUT=${1:-runs/text_results}
PRE_SEQS=${PRE_SEQS:-12800}
LANES=${LANES:-3}
THREADS=${THREADS:-1}
SEEDS="0 1 2"
VOCAB=${VOCAB:-4096}
METHOD=${METHOD:-mlm}
PRE=$OUT/$METHOD
SEQ=64
RT=$D/rt-polarity
MR=$D/movie-review-polarity-v2
mkdir -p "$OUT/claims" "$OUT/logs"

# Same recipe for fine-tune and scratch: AdamW lr 5e-4, wd 0.01, batch 32,
# 1 warm-up epoch, cosine to 0, clip 1, mean pooling; epochs by label count.
epochs_for() { case $1 in 1%) echo 40 ;; 10%) echo 8 ;; 100%) echo "${EPOCHS_100:-1}" ;; esac; }
COMMON="--text $RT --threads $THREADS --quiet --json"

job_pretrain() {
    [ -f "$PRE/result.json" ] && return 0
    if [ "$METHOD" = docbow ]; then
        "$B" pretrain --method docbow --text "$MR" --add-text "$RT" --vocab $VOCAB --seq-len $SEQ \
            --epochs "${PRE_EPOCHS:-2}" --batch 64 --lr 2e-3 --warmup 0.1 --threads "${PRE_THREADS:-$THREADS}" \
            --emb-weight "${EMB_WEIGHT:-0}" --quiet --json \
            --out "$PRE" > "$OUT/logs/pretrain.json" 2> "$OUT/logs/pretrain.err"
        return
    fi
    "$B" pretrain --method mlm --text "$MR" --add-text "$RT" --vocab $VOCAB --seq-len $SEQ \
        --epochs "${PRE_EPOCHS:-1}" --max-sequences "$PRE_SEQS" --batch 64 --lr 2e-3 --warmup 0.1 --threads "$THREADS" --quiet --json \
        --out "$PRE" > "$OUT/logs/pretrain.json" 2> "$OUT/logs/pretrain.err"
}

job_scratch() { # LABELS SEED
    local d="$OUT/scratch-${1%\%}-s$2"
    [ -f "$d/result.json" ] && return 0
    while [ ! -f "$PRE/tokenizer.json" ]; do sleep 5; done
    "$B" train $COMMON --tokenizer "$PRE/tokenizer.json" --seq-len $SEQ --labels "$1" --seed "$2" \
        --epochs "$(epochs_for "$1")" --out "$d" > /dev/null 2> "$OUT/logs/scratch-${1%\%}-s$2.err"
}

job_finetune() { # LABELS SEED
    local d="$OUT/ft-${1%\%}-s$2"
    [ -f "$d/result.json" ] && return 0
    while [ ! -f "$PRE/result.json" ]; do sleep 10; done
    "$B" finetune $COMMON --model "$PRE/last.safetensors" --labels "$1" --seed "$2" \
        --epochs "$(epochs_for "$1")" --out "$d" > /dev/null 2> "$OUT/logs/ft-${1%\%}-s$2.err"
}

job_probe() { # LABELS SEED
    local f="$OUT/probe-${1%\%}-s$2.json"
    [ -s "$f" ] && return 0
    while [ ! -f "$PRE/result.json" ]; do sleep 10; done
    "$B" probe $COMMON --model "$PRE/last.safetensors" --labels "$1" --seed "$2" > "$f.tmp" \
        2> "$OUT/logs/probe-${1%\%}-s$2.err" && mv "$f.tmp" "$f"
}

# The job list; a lane claims a job with mkdir (atomic), so lanes never
# run the same job. Lane 0 starts with pretraining; the others start with
# scratch runs (which need only the tokenizer) while it runs.
JOBS=()
for L in 1% 10% 100%; do for s in $SEEDS; do JOBS+=("scratch $L $s"); done; done
for L in 1% 10% 100%; do for s in $SEEDS; do JOBS+=("finetune $L $s" "probe $L $s"); done; done

lane() {
    local id=$1
    if [ "$id" = 0 ]; then mkdir "$OUT/claims/pretrain" 2>/dev/null && job_pretrain; fi
    local order=("${JOBS[@]}")
    if [ "$id" = 0 ]; then # after pretraining, fine-tune first
        order=(); for j in "${JOBS[@]}"; do [[ $j == scratch* ]] || order+=("$j"); done
        for j in "${JOBS[@]}"; do [[ $j == scratch* ]] && order+=("$j"); done
    fi
    for j in "${order[@]}"; do
        set -- $j
        mkdir "$OUT/claims/$1-${2%\%}-$3" 2>/dev/null || continue
        echo "$(date -u +%H:%M:%S) lane $id: $j" >> "$OUT/logs/lanes.log"
        "job_$1" "$2" "$3" || echo "$(date -u +%H:%M:%S) lane $id: FAILED $j" >> "$OUT/logs/lanes.log"
    done
}

if [ -z "${SUMMARY_ONLY:-}" ]; then # SUMMARY_ONLY=1: just rebuild summary.md
    rm -rf "$OUT/claims"; mkdir -p "$OUT/claims"
    for ((i = 0; i < LANES; i++)); do lane $i & done
    wait
fi

/usr/bin/python3 - "$OUT" "$METHOD" <<'EOF'
import json, os, statistics, sys
out, method = sys.argv[1], sys.argv[2]
M = method.upper() if method == "mlm" else method
def load(p):
    try:
        with open(p) as f: return json.load(f)
    except Exception: return None
rows = []
pre = load(os.path.join(out, method, "result.json"))
for lab in ("1", "10", "100"):
    cell = {}
    for arm, key, pat in (("finetune", "test_acc", "ft-%s-s%d/result.json"), ("scratch", "test_acc", "scratch-%s-s%d/result.json"),
                          ("probe", "probe_acc", "probe-%s-s%d.json")):
        v = [load(os.path.join(out, pat % (lab, s))) for s in (0, 1, 2)]
        v = [100 * x[key] for x in v if x and key in x]
        cell[arm] = v
    rows.append((lab, cell))
def ms(v):
    if not v: return "-"
    return "%.1f ± %.1f (n=%d)" % (statistics.mean(v), statistics.stdev(v) if len(v) > 1 else 0.0, len(v))
lines = ["| labels | %s fine-tune | %s linear probe | scratch | fine-tune − scratch |" % (M, M), "| --- | --- | --- | --- | --- |"]
for lab, c in rows:
    d = statistics.mean(c["finetune"]) - statistics.mean(c["scratch"]) if c["finetune"] and c["scratch"] else float("nan")
    lines.append("| %s%% | %s | %s | %s | %+.1f |" % (lab, ms(c["finetune"]), ms(c["probe"]), ms(c["scratch"]), d))
if pre:
    lines.append("")
    lines.append("Pretraining (" + method + "): %d epochs, %d steps, final loss %.3f, %.0f s training + %.0f s tokenizer, %d corpus samples." % (
        pre["epochs"], pre["steps"], pre["final_loss"], pre["train_seconds"], pre["tokenizer_seconds"], pre["corpus_samples"]))
text = "\n".join(lines) + "\n"
open(os.path.join(out, "summary.md"), "w").write(text)
print(text)
EOF
