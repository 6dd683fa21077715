"""The table of shape.md from OUT/shape.jsonl (shape_run.py): per run and ask, medians [min-max] over seeds.

    python experiments/quality/shape_table.py OUT/shape.jsonl
"""

import json
import sys
from collections import defaultdict

import numpy as np

COLUMNS = [("exact length", "exact_length"), ("time vs plain", "time_vs_plain"), ("jumps", "jumps"),
           ("jump score (median)", "jump_score_exact"), ("pulse", "pulse_ratio"), ("Fréchet", "frechet_ratio"),
           ("novelty", "novelty"), ("ending = song's (s)", "ending_equal_s"), ("into the ending", "ending_entry_score"),
           ("last 30 s pulse", "last30_pulse_ratio"), ("wrap: song's audio", "wrap_is_song"),
           ("wrap clip pulse", "wrap_pulse_ratio"), ("wrap clip at jumps", "wrap_transition_jumps"),
           ("arrival off (beats)", "arrival_off_beats"), ("likeness thirds", "similarity_thirds"),
           ("approach jumps min / median", "approach")]


def cell(rows, key):
    if key == "approach":
        lo = [r["approach_jump_min"] for r in rows if r.get("approach_jump_min") is not None]
        med = [r["approach_jump_median"] for r in rows if r.get("approach_jump_median") is not None]
        return f"{min(lo):.2f} / {np.median(med):.2f}" if lo else ""
    vals = [r.get(key) for r in rows if r.get(key) is not None]
    if not vals:
        return ""
    if isinstance(vals[0], bool):
        return f"{sum(vals)}/{len(vals)}"
    if isinstance(vals[0], list):
        return " → ".join(f"{np.median([v[i] for v in vals]):.2f}" for i in range(len(vals[0])))
    if key == "time_vs_plain":
        vals = [r[key] for r in rows if r["seed"] > 0] or vals  # seed 0's plain run paid for compilation
    v = np.asarray(vals, float)
    return f"{np.median(v):.2f} [{v.min():.2f}-{v.max():.2f}]" if len(v) > 1 else f"{v[0]:.2f}"


def main():
    rows = [json.loads(line) for line in open(sys.argv[1])]
    asks = sys.argv[2].split(",") if len(sys.argv) > 2 else None
    groups = defaultdict(list)
    for r in rows:
        if asks is None or r["ask"] in asks:
            groups[(r["run"], r["ask"])].append(r)
    keys = [k for _, k in COLUMNS if any(r.get(k) is not None for rs in groups.values() for r in rs)
            or k == "approach" and any(r.get("approach_jump_min") is not None for rs in groups.values() for r in rs)]
    names = [n for n, k in COLUMNS if k in keys]
    print("| run | ask | seeds | " + " | ".join(names) + " | flags |")
    print("|" + "---|" * (len(names) + 4))
    for (run, ask), rs in groups.items():
        flags = defaultdict(int)
        for r in rs:
            for f in r["flags"]:
                flags[f] += 1
        print(f"| {run} | {ask} | {len(rs)} | " + " | ".join(cell(rs, k) for k in keys) + " | "
              + (", ".join(f"{k} {v}" for k, v in flags.items()) or "none") + " |")


if __name__ == "__main__":
    main()
