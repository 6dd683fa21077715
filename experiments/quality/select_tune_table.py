"""The variants table of select.md's MSE tuning section: for each select_tune.py variant (tag) and song, the trained
model's clips (mean over seeds): at jumps, exact jumps, jump rate, longest copy, novelty, Fréchet ratio, flags;
the one-step model's at-jumps beside it where the variant was run on it.

    python experiments/quality/select_tune_table.py results/select_tune.jsonl results/select.jsonl [--tags a,b]

--tags: only these variants (units.py as it is: "base"), in this order, song by song.
"""

import json
import sys
from collections import defaultdict

import numpy as np


def main(paths, tags=None):
    rows = [json.loads(line) for p in paths for line in open(p)]
    rows = [r for r in rows if r["mechanism"] in ("model", "onestep")]
    g = defaultdict(list)
    for r in rows:
        g[(r.get("tag") or "-base", r["song"], r["mechanism"])].append(r)
    print("| variant | song | seeds | at jumps | one-step at jumps | exact jumps | one-step exact | jumps/beat | "
          "longest copy s | novelty | Fréchet | flags |")
    print("|---" * 12 + "|")
    order = (lambda k: (k[1], tags.index(k[0][1:]))) if tags else (lambda k: (k[0] != "-base", k[0], k[1]))
    tuned = {k[1] for k in g if k[0] != "-base" and (not tags or k[0][1:] in tags)}  # songs a variant ran on
    for tag, song, mech in sorted(g, key=order) if not tags else sorted(
            (k for k in g if k[0][1:] in tags and k[1] in tuned), key=order):
        if mech != "model":
            continue
        rs, one = g[(tag, song, mech)], g.get((tag, song, "onestep")) or g.get(("-base", song, "onestep"), [])
        m = lambda rr, k: f"{np.mean([r[k] for r in rr if r.get(k) is not None]):.2f}" if rr else "-"  # noqa: E731
        flags = defaultdict(int)
        for r in rs:
            for f in r["flags"]:
                flags[f] += 1
        print(f"| {tag[1:]} | {song} | {len(rs)} | {m(rs, 'transition_jumps')} | {m(one, 'transition_jumps')} | "
              f"{m(rs, 'jump_score')} | {m(one, 'jump_score')} | {m(rs, 'jumps_per_beat')} | "
              f"{m(rs, 'longest_copy_s')} | {m(rs, 'novelty')} | {m(rs, 'frechet_ratio')} | "
              + (", ".join(f"{k} {v}" for k, v in sorted(flags.items())) or "none") + " |")


if __name__ == "__main__":
    args = sys.argv[1:]
    tags = None
    if "--tags" in args:
        i = args.index("--tags")
        tags, args = args[i + 1].split(","), args[:i] + args[i + 2:]
    main(args, tags)
