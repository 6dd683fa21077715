"""Print the tables of experiments/quality/select.md from select_run.py's JSON lines.

    python experiments/quality/select_table.py results/select.jsonl
"""

import json
import sys
from collections import defaultdict

import numpy as np

# jump_score and jumps_per_beat: select_run.py's first scorer; jump_score_exact and jumps_exact: framegen's own
# (transitions.path_metrics), the same kind of number on the transition measure's features
COLUMNS = [("transition_jumps", "at jumps"), ("jump_score", "exact jumps"), ("jumps_per_beat", "jumps/beat"),
           ("jump_score_exact", "exact jumps (framegen)"), ("jump_score_min", "worst jump"),
           ("jumps_exact", "jumps/beat (framegen)"),
           ("longest_copy_s", "longest copy s"), ("pulse_ratio", "pulse ratio"),
           ("rhythm_similarity", "rhythm sim"), ("frechet_ratio", "Fréchet"), ("novelty", "novelty")]


def cell(values):
    v = [x for x in values if x is not None]
    if not v:
        return "-"
    return f"{np.mean(v):.2f}" if len(v) == 1 else f"{np.mean(v):.2f} [{min(v):.2f}-{max(v):.2f}]"


def main(path):
    rows = [json.loads(line) for line in open(path)]
    groups = defaultdict(list)
    for r in rows:
        groups[(r["song"], r["mechanism"])].append(r)
    print("| song | mechanism | seeds | " + " | ".join(c[1] for c in COLUMNS) + " | flags |")
    print("|---" * (len(COLUMNS) + 4) + "|")
    for (song, mech), rs in groups.items():
        flags = defaultdict(int)
        for r in rs:
            for f in r["flags"]:
                flags[f] += 1
        flag_text = ", ".join(f"{k} {v}" for k, v in sorted(flags.items())) or "none"
        print(f"| {song} | {mech} | {len(rs)} | " + " | ".join(cell([r.get(c) for r in rs]) for c, _ in COLUMNS)
              + f" | {flag_text} |")
    refs = {r["song"]: (r.get("transition_real"), r.get("transition_shuffled")) for r in rows}
    print("\nReferences from evaluate (the song's own excerpts / its beats re-sequenced at random), at jumps:")
    for song, (real, shuffled) in refs.items():
        print(f"- {song}: real {cell([real])}, shuffled {cell([shuffled])}")


if __name__ == "__main__":
    main(sys.argv[1])
