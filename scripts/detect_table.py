#!/usr/bin/env python3
"""Markdown table of detection results: mean +- std over seeds of mAP@0.5 and
mAP@[.5:.95] per (init, labelled scenes), from RUN_DIR/*/result.json.
usage: scripts/detect_table.py RUNS_DIR"""
import glob, json, os, statistics, sys

runs = {}
for p in sorted(glob.glob(os.path.join(sys.argv[1], "*", "result.json"))):
    r = json.load(open(p))
    init = "scratch" if r["init"] == "scratch" else "SimCLR-pretrained"
    runs.setdefault((init, r["n_train"]), []).append(r)

def ms(v):
    return f"{100*statistics.mean(v):.1f} ± {100*statistics.stdev(v):.1f}" if len(v) > 1 else f"{100*v[0]:.1f}"

print("| encoder init | labelled scenes | mAP@0.5 (%) | mAP@[.5:.95] (%) | seeds | per-seed mAP@0.5 | train s / run |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for (init, n), rs in sorted(runs.items(), key=lambda k: (k[0][1], k[0][0] != "scratch")):
    rs.sort(key=lambda r: r["seed"])
    per = ", ".join(f"{100*r['map50']:.1f}" for r in rs)
    secs = statistics.mean(r["train_seconds"] for r in rs)
    print(f"| {init} | {n} | {ms([r['map50'] for r in rs])} | {ms([r['map'] for r in rs])} | "
          f"{len(rs)} | {per} | {secs:.0f} |")
