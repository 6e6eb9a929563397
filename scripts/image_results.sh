#!/bin/bash
# Image results for docs/RESULTS.md (issue 4's tables): one self-supervised
# pretraining, then for each label seed the same labelled subset for scratch
# (`selfsup train`), fine-tune, linear probe and k-NN, and a summary table
# with mean ± std over the seeds, every number named by its protocol.
#
#   scripts/image_results.sh [OUT_DIR (runs/image_results)]
#
# Env: SS_BIN (build/selfsup); DATA (the training images: an image folder,
# IDX file or CIFAR binary; empty = Debian's Fashion-MNIST); TEST_DATA
# (empty = found beside DATA, as `selfsup train` does); METHOD (vicreg);
# PRE_EPOCHS (3); PRE_ARGS (more `pretrain` flags); LABELS (10%); EPOCHS
# (scratch and fine-tune epochs; empty = the commands' defaults); CLS_ARGS
# (more `train` / `finetune` flags, both arms); SEEDS ("0 1 2"); THREADS (2);
# FT_TAG + FT_ARGS: a fine-tune variant (e.g. FT_TAG=lr05 FT_ARGS="--encoder-
# lr-scale 0.5"), written as ft-TAG-* beside the plain one and summarised as
# its own row; a rerun with a new tag reuses the pretraining and the others;
# JOBS ("scratch ft probe knn"): which per-seed jobs to run; SCRATCH_FROM:
# another OUT_DIR whose scratch rows this table reads instead of training
# its own (scratch does not depend on the method; a relative path is from
# the repository root). It must have been run with the same LABELS, SEEDS,
# EPOCHS and CLS_ARGS: that is not checked; a missing scratch file is said
# on stderr and shows as "-".
# One job at a time (the figures are wall times on a quiet machine).
# One OUT_DIR holds one pretraining: another METHOD needs another OUT_DIR.
# Restartable: a job whose result file exists is skipped. A failed job is
# logged and the rest go on; the exit status is then 1. SUMMARY_ONLY=1
# rebuilds OUT_DIR/summary.md without running anything.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${SS_BIN:-build/selfsup}
OUT=${1:-runs/image_results}
METHOD=${METHOD:-vicreg}
LABELS=${LABELS:-10%}
SEEDS=${SEEDS:-0 1 2}
THREADS=${THREADS:-2}
PRE=$OUT/$METHOD
mkdir -p "$OUT/logs"

DATA_ARGS=()
[ -n "${DATA:-}" ] && DATA_ARGS+=(--data "$DATA")
[ -n "${TEST_DATA:-}" ] && DATA_ARGS+=(--test-data "$TEST_DATA")
CLS=(--labels "$LABELS" --threads "$THREADS" --json)
[ -n "${EPOCHS:-}" ] && CLS+=(--epochs "$EPOCHS")
# shellcheck disable=SC2206
CLS+=(${CLS_ARGS:-})
L=$(printf '%s' "${LABELS%\%}" | tr -c 'A-Za-z0-9.' '_') # file-name part: 10% -> 10, 60/class -> 60_class
if [ -s "$OUT/pretrain.json" ] && ! grep -q "\"method\":\"$METHOD\"" "$OUT/pretrain.json"; then
    echo "image_results.sh: $OUT holds another method's pretraining ($OUT/pretrain.json); use a new OUT_DIR for METHOD=$METHOD" >&2
    exit 2
fi

if [ -n "${SCRATCH_FROM:-}" ] && [ ! -d "$SCRATCH_FROM" ]; then
    echo "image_results.sh: SCRATCH_FROM=$SCRATCH_FROM is not a folder (relative paths are from the repository root)" >&2
    exit 2
fi

FAILED=0
run() { # NAME RESULT_FILE COMMAND...: runs COMMAND unless RESULT_FILE exists
    local name=$1 res=$2; shift 2
    [ -s "$res" ] && return 0
    echo "$(date -u +%H:%M:%S) $name" >> "$OUT/logs/jobs.log"
    if "$@" > "$res.tmp" 2> "$OUT/logs/$name.err"; then mv "$res.tmp" "$res"
    else # log it, say it, and go on with the other jobs; the script exits 1 after the summary
        echo "$(date -u +%H:%M:%S) FAILED $name (see $OUT/logs/$name.err)" | tee -a "$OUT/logs/jobs.log" >&2
        rm -f "$res.tmp"; FAILED=1; fi
}

if [ -z "${SUMMARY_ONLY:-}" ]; then
    # shellcheck disable=SC2086
    run pretrain "$OUT/pretrain.json" "$B" pretrain --method "$METHOD" "${DATA_ARGS[@]}" --epochs "${PRE_EPOCHS:-3}" \
        --knn-every 0 --seed 0 --threads "$THREADS" --json ${PRE_ARGS:-} --out "$PRE"
    has() { [[ " ${JOBS:-scratch ft probe knn} " == *" $1 "* ]]; }
    for s in $SEEDS; do
        if has scratch && [ -z "${SCRATCH_FROM:-}" ]; then run "scratch-$L-s$s" "$OUT/scratch-$L-s$s.json" "$B" train "${DATA_ARGS[@]}" "${CLS[@]}" --seed "$s" \
            --out "$OUT/scratch-$L-s$s"; fi
        FT=ft${FT_TAG:+-$FT_TAG}-$L-s$s
        if [ -n "${FT_TAG:-}" ]; then echo "${FT_ARGS:-}" > "$OUT/ft-$FT_TAG.args"; fi
        # shellcheck disable=SC2086
        if has ft; then run "$FT" "$OUT/$FT.json" "$B" finetune --model "$PRE/last.safetensors" "${DATA_ARGS[@]}" "${CLS[@]}" \
            ${FT_ARGS:-} --seed "$s" --out "$OUT/$FT"; fi
        if has probe; then run "probe-$L-s$s" "$OUT/probe-$L-s$s.json" "$B" probe --model "$PRE/last.safetensors" "${DATA_ARGS[@]}" \
            --labels "$LABELS" --seed "$s" --threads "$THREADS" --json; fi
        if has knn; then run "knn-$L-s$s" "$OUT/knn-$L-s$s.json" "$B" knn --model "$PRE/last.safetensors" "${DATA_ARGS[@]}" \
            --labels "$LABELS" --seed "$s" --threads "$THREADS" --json; fi
    done
fi

/usr/bin/python3 - "$OUT" "$METHOD" "$L" "$SEEDS" "${SCRATCH_FROM:-}" <<'EOF'
import glob, json, os, re, statistics, sys
out, method, lab, seeds = sys.argv[1], sys.argv[2], sys.argv[3], [int(s) for s in sys.argv[4].split()]
scratch_dir = sys.argv[5] or out
def load(p):
    try:
        with open(p) as f: return json.load(f)
    except Exception: return None
pre = load(os.path.join(out, "pretrain.json"))
def scale_note(run):  # the encoder learning-rate scale a fine-tune ran with (its config.json)
    c = load(os.path.join(out, run, "config.json"))
    return " (encoder lr x%g)" % c["encoder_lr_scale"] if c and "encoder_lr_scale" in c else ""
# fine-tune variants (FT_TAG): ft-TAG-LABELS-sSEED.json
tags = sorted({m.group(1) for m in (re.match(r"ft-(.+)-%s-s\d+\.json$" % re.escape(lab), os.path.basename(f))
                                    for f in glob.glob(os.path.join(out, "ft-*.json"))) if m})
rows = [("scratch", "test_acc", "scratch-%s-s%d.json", "train_seconds"),
        ("%s + fine-tune%s" % (method, scale_note("ft-%s-s%d" % (lab, seeds[0]))), "test_acc", "ft-%s-s%d.json", "train_seconds"),
        ] + [("%s + fine-tune (%s)" % (method, (open(a).read().strip() if os.path.exists(a) else t)),
              "test_acc", "ft-" + t + "-%s-s%d.json", "train_seconds")
             for t in tags for a in [os.path.join(out, "ft-%s.args" % t)]] + [
        ("%s + linear probe" % method, "probe_acc", "probe-%s-s%d.json", "total_seconds"),
        ("%s + k-NN, k = 20" % method, "knn20_acc", "knn-%s-s%d.json", "total_seconds"),
        ("%s + k-NN, k = 200" % method, "knn200_acc", "knn-%s-s%d.json", "total_seconds")]
head = "| model | protocol | " + " | ".join("seed %d" % s for s in seeds) + " | mean ± std | vs scratch | seconds per seed |"
lines = [head, "|" + " --- |" * (len(seeds) + 5)]
base = None
for name, key, pat, tkey in rows:
    r = [load(os.path.join(scratch_dir if name == "scratch" else out, pat % (lab, s))) for s in seeds]
    if name == "scratch" and scratch_dir != out:
        for s, x in zip(seeds, r):
            if x is None: print("image_results.sh: no %s in SCRATCH_FROM" % os.path.join(scratch_dir, pat % (lab, s)), file=sys.stderr)
    v = [100 * x[key] if x and key in x else None for x in r]
    got = [x for x in v if x is not None]
    m = statistics.mean(got) if got else None
    sd = statistics.stdev(got) if len(got) > 1 else 0.0
    if name == "scratch": base = m
    cells = ["%.2f" % x if x is not None else "-" for x in v]
    diff = "-" if name == "scratch" or m is None or base is None else "%+.2f" % (m - base)
    secs = ", ".join("%.0f" % x[tkey] if x and tkey in x else "-" for x in r)
    lines.append("| %s | %s | %s | %s | %s | %s |" % (name, key, " | ".join(cells),
                 "%.2f ± %.2f" % (m, sd) if m is not None else "-", diff, secs))
if scratch_dir != out:
    lines += ["", "Scratch rows read from %s." % scratch_dir]
if pre:
    lines += ["", "Pretraining (%s, %s): %d epochs, final loss %.4f, %.0f s training." % (
        method, pre.get("encoder", "?"), pre["epochs"], pre["final_loss"], pre["train_seconds"])]
text = "\n".join(lines) + "\n"
with open(os.path.join(out, "summary.md"), "w") as f: f.write(text)
print(text, end="")
EOF
exit "$FAILED"
