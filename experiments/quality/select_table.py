"""Print the tables of experiments/quality/select.md from select_run.py's (and jukebox_run.py's) JSON lines.

    python experiments/quality/select_table.py results/select.jsonl [more.jsonl ...] [--tag TAG] [--summary]

Rows of one --tag (default "": the context score as units.py has it; select_tune.py's variants carry their
own), with the rows that do not depend on the context score (uniform, off, the jukebox: tag "") beside them.
--summary: one line per song and mode, the trained model against the one-step model, uniform scores and the
jukebox, at jumps and exactly.
"""

import argparse
import json
from collections import defaultdict

import numpy as np

# jump_score and jumps_per_beat: select_run.py's first scorer; jump_score_exact and jumps_exact: framegen's own
# (transitions.path_metrics), the same kind of number on the transition measure's features
COLUMNS = [("transition_jumps", "at jumps"), ("jump_score", "exact jumps"), ("jumps_per_beat", "jumps/beat"),
           ("jump_score_exact", "exact jumps (framegen)"), ("jump_score_min", "worst jump"),
           ("jumps_exact", "jumps/beat (framegen)"),
           ("longest_copy_s", "longest copy s"), ("pulse_ratio", "pulse ratio"),
           ("rhythm_similarity", "rhythm sim"), ("frechet_ratio", "Fréchet"), ("novelty", "novelty")]
ORDER = ("model", "onestep", "uniform", "off", "jukebox")


def cell(values):
    v = [x for x in values if x is not None]
    if not v:
        return "-"
    return f"{np.mean(v):.2f}" if len(v) == 1 else f"{np.mean(v):.2f} [{min(v):.2f}-{max(v):.2f}]"


def mean(rs, key):
    v = [r.get(key) for r in rs if r.get(key) is not None]
    return float(np.mean(v)) if v else None


def fmt(x):
    return "-" if x is None else f"{x:.2f}"


def load(paths, tag):
    rows = [json.loads(line) for p in paths for line in open(p)]
    # uniform scores, the old path and the jukebox do not depend on the context score: a variant shares them
    return [r for r in rows if r.get("tag", "") == tag
            or (tag and not r.get("tag") and r["mechanism"] in ("uniform", "off", "jukebox"))
            or (not tag and r["mechanism"] == "jukebox" and not r.get("tag"))]


def full(rows):
    groups = defaultdict(list)
    for r in rows:
        groups[(r["song"], r["mechanism"])].append(r)
    keys = sorted(groups, key=lambda k: (k[0].split("-")[1], k[0], ORDER.index(k[1])))
    print("| song | mechanism | seeds | " + " | ".join(c[1] for c in COLUMNS) + " | flags |")
    print("|---" * (len(COLUMNS) + 4) + "|")
    for song, mech in keys:
        rs = groups[(song, mech)]
        flags = defaultdict(int)
        for r in rs:
            for f in r["flags"]:
                flags[f] += 1
        flag_text = ", ".join(f"{k} {v}" for k, v in sorted(flags.items())) or "none"
        name = song.split("-")[0] if mech == "jukebox" else song
        print(f"| {name} | {mech} | {len(rs)} | " + " | ".join(cell([r.get(c) for r in rs]) for c, _ in COLUMNS)
              + f" | {flag_text} |")
    refs = {r["song"].split("-")[0]: (r.get("transition_real"), r.get("transition_shuffled")) for r in rows}
    print("\nReferences from evaluate (the song's own excerpts / its beats re-sequenced at random), at jumps:")
    for song, (real, shuffled) in refs.items():
        print(f"- {song}: real {cell([real])}, shuffled {cell([shuffled])}")


def summary(rows):
    by = defaultdict(list)
    for r in rows:
        by[(r["song"].split("-")[0], r["output"] if r["mechanism"] != "jukebox" else "-", r["mechanism"])].append(r)
    songs = sorted({(s, o) for s, o, m in by if m == "model"}, key=lambda k: (k[1], k[0]))
    print("| song | mode | at jumps: model / one-step / uniform / jukebox | model - one-step | "
          "exact jumps: model / one-step / uniform / jukebox | model - one-step | model flags |")
    print("|---|---|---|---|---|---|---|")
    for s, o in songs:
        g = {m: by.get((s, o, m), []) for m in ORDER[:3]}
        g["jukebox"] = by.get((s, "-", "jukebox"), [])
        parts = []
        for key in ("transition_jumps", "jump_score"):
            v = {m: mean(rs, key) for m, rs in g.items()}
            d = v["model"] - v["onestep"] if v["model"] is not None and v["onestep"] is not None else None
            parts += [" / ".join(fmt(v[m]) for m in ("model", "onestep", "uniform", "jukebox")), fmt(d)]
        flags = defaultdict(int)
        for r in g["model"]:
            for f in r["flags"]:
                flags[f] += 1
        print(f"| {s} | {o} | " + " | ".join(parts) + " | "
              + (", ".join(f"{k} {n}/{len(g['model'])}" for k, n in sorted(flags.items())) or "none") + " |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("paths", nargs="+")
    ap.add_argument("--tag", default="")
    ap.add_argument("--summary", action="store_true")
    a = ap.parse_args()
    rows = load(a.paths, a.tag)
    summary(rows) if a.summary else full(rows)


if __name__ == "__main__":
    main()
