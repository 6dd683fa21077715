"""Markdown tables of rhythm_run.py's JSON lines: one row per song x mechanism, mean [min-max] over sampling seeds.

    python experiments/quality/rhythm_table.py experiments/quality/results/rhythm-h200.jsonl
"""

import json
import sys
from collections import defaultdict

COLUMNS = ("pulse_ratio", "rhythm_similarity", "continuity_ratio", "frechet_ratio", "novelty")


def main(path):
    rows = [json.loads(line) for line in open(path)]
    trains = [r["train"] for r in rows if "train" in r]
    clips = defaultdict(list)
    for r in rows:
        if "mechanism" in r:
            clips[(r["song"], r["mechanism"])].append(r)
    print("| song | model | steps | best val_ce | val_acc | train s |\n|---|---|---|---|---|---|")
    for t in trains:
        print(f"| {t['song']} | {t['model']} | {t['steps']} | {t['best_val_ce']:.3f} | {t['val_acc']:.3f} | "
              f"{t['seconds']} |")
    print()
    tail = " | tempo (song) | flags (of 3 seeds) | real: pulse, rhythm |"
    print("| song | mechanism | " + " | ".join(COLUMNS) + tail)
    print("|---|---|" + "---|" * (len(COLUMNS) + 3))
    for (song, mech), rs in clips.items():
        cells = []
        for c in COLUMNS:
            v = [r[c] for r in rs]
            cells.append(f"{sum(v) / len(v):.2f} [{min(v):.2f}-{max(v):.2f}]")
        flags = defaultdict(int)
        for r in rs:
            for f in r["flags"]:
                flags[f] += 1
        flag_text = ", ".join(f"{f} {n}" for f, n in flags.items()) or "none"
        tempo = "/".join(f"{r['tempo']:.0f}" for r in rs)
        real = f"{rs[0]['pulse_real']:.2f}, {rs[0]['rhythm_similarity_real']:.2f}"
        print(f"| {song} | {mech} | " + " | ".join(cells) + f" | {tempo} ({rs[0]['tempo_song']:.0f}) | {flag_text} | "
              f"{real} |")


if __name__ == "__main__":
    main(sys.argv[1])
