"""Collect experiments/quality/results/*.json (written by 'framegen evaluate --json') into a markdown table.

    python experiments/quality/table.py            # prints the clip table for README.md
    python experiments/quality/table.py main       # README.md's main table (the rows in MAIN)
    python experiments/quality/table.py runs       # the trained runs: steps, validation numbers
    python experiments/quality/table.py seeds      # VQ settings over sampling seeds 0-2
"""

import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
COLUMNS = [("audible_ratio", "audible", ".2f"), ("loudness_ratio", "loudness", ".2f"),
           ("noise_likeness", "noise-like", ".2f"), ("frechet_ratio", "Fréchet ratio", ".2f"),
           ("novelty", "novelty", ".2f"), ("loop_period_s", "loop (s)", ".3f"), ("loop_score", "loop score", ".3f"),
           ("clipping_ratio", "clipping", ".3f")]


# The rows of README.md's main table: per song the trivial references, the MSE options, the VQ options.
MAIN = """
demo-song-ref-silence demo-song-ref-white-noise demo-song-ref-real-excerpt
demo-mse-xf0 demo-mse-ss-xf0 demo-mse-ss25-xf0 demo-mse-ss-xf2
demo-vq-exemplar demo-vq-exemplar-xf25-s0 demo-vq-centroid
demo-vq-plain-exemplar demo-vq-plain-centroid demo-vq-plain-scaled demo-vq-plain-exemplar-xf25-s0
demo-vq-plain-k1024-exemplar-xf25-s0
demo-vq-plain-k2048-exemplar-xf0-s0 demo-vq-plain-k2048-exemplar-xf25-s0 demo-vq-plain-k2048-exemplar-xf50-s0
drascula-track1-ref-silence drascula-track1-ref-white-noise drascula-track1-ref-real-excerpt
track1-mse-xf0 track1-mse-ss-xf0 track1-mse-ss25-xf0 track1-mse-ss-xf2
track1-vq-exemplar track1-vq-exemplar-xf25-s0 track1-vq-centroid track1-vq-exemplar-t0.8 track1-vq-exemplar-top50
track1-vq-plain-exemplar track1-vq-plain-centroid track1-vq-plain-scaled
drascula-track11-ref-silence drascula-track11-ref-white-noise drascula-track11-ref-real-excerpt
track11-mse-xf0 track11-mse-ss-xf0 track11-mse-ss25-xf0
track11-vq-exemplar track11-vq-exemplar-xf25-s0 track11-vq-centroid track11-vq-exemplar-t0.8
""".split()


def fmt(v, spec):
    return "–" if v is None else format(v, spec)


def rows(names=None):
    out = []
    paths = [HERE / "results" / f"{n}.json" for n in names] if names else sorted((HERE / "results").glob("*.json"))
    for path in paths:
        d = json.loads(path.read_text())
        cells = [path.stem] + [fmt(d[k], spec) for k, _, spec in COLUMNS]
        cells.append(", ".join(d["flags"]) or "**none**")
        out.append("| " + " | ".join(cells) + " |")
    return out


def main(argv):
    if argv[:1] == ["runs"]:
        return runs_table()
    if argv[:1] == ["seeds"]:
        return seeds_table()
    if argv[:1] == ["main"]:
        argv = MAIN
    head = ["clip (song-mode-options)"] + [label for _, label, _ in COLUMNS] + ["flags"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    print("\n".join(rows(argv or None)))




def runs_table(root: Path = HERE.parent.parent / "runs" / "quality") -> None:
    """One row per trained run: mode, options, steps reached in its budget and its last validation numbers."""
    print("| run | song | mode | options | steps (epochs) | train min | val MSE (zero) | val CE / acc | sample flags |")
    print("|---|---|---|---|---|---|---|---|---|")
    for cfg_path in sorted(root.glob("*/config.json")):
        cfg = json.loads(cfg_path.read_text())
        rows = [json.loads(line) for line in (cfg_path.parent / "metrics.jsonl").read_text().splitlines()]
        last = rows[-1]
        m, t = cfg["model"], cfg["train"]
        if m["output"] == "vq":
            opts = f"K={m['codebook']} {m['codebook_kind']}"
            ce = f"{last['val_ce']:.2f} / {last['val_acc']:.2f}"
        else:
            opts = f"feedback {t['feedback_prob']:g}, noise {t['input_noise']:g}"
            ce = "–"
        flags = ", ".join(last.get("sample_flags", [])) or "none"
        print(f"| {cfg_path.parent.name} | {Path(cfg['song']).stem} | {m['output']} | {opts} | {last['step']} "
              f"({last['step'] / rows[0]['step']:.1f}) | {last['seconds'] / 60:.1f} | {last['val_mse']:.3f} "
              f"({last['zero_mse']:.3f}) | {ce} | {flags} |")


def seeds_table() -> None:
    """Mean [min-max] over sampling seeds 0-2 of each VQ setting (results named <run>-<setting>-s<seed>.json)."""
    import statistics

    groups = {}
    for path in sorted((HERE / "results").glob("*-s[0-9].json")):
        groups.setdefault(path.stem[:-3], []).append(json.loads(path.read_text()))
    print("| run - setting | seeds | Fréchet ratio, mean [min-max] | noise-like | audible (min) | loudness | novelty | "
          "flagged clips |")
    print("|---|---|---|---|---|---|---|---|")
    for name, ds in groups.items():
        fr = [d["frechet_ratio"] for d in ds]
        flagged = [", ".join(d["flags"]) for d in ds if d["flags"]]
        print(f"| {name} | {len(ds)} | {statistics.mean(fr):.2f} [{min(fr):.2f}-{max(fr):.2f}] | "
              f"{statistics.mean(d['noise_likeness'] for d in ds):.2f} | {min(d['audible_ratio'] for d in ds):.2f} | "
              f"{statistics.mean(d['loudness_ratio'] for d in ds):.2f} | "
              f"{statistics.mean(d['novelty'] for d in ds):.2f} "
              f"| {len(flagged)} of {len(ds)}{': ' + '; '.join(flagged) if flagged else ''} |")


if __name__ == "__main__":
    main(sys.argv[1:])
