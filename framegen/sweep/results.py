"""Sweep results: ``results.json`` (the record of every trial), results.csv, results.md, heatmap.png and the ``best``
link, each rewritten atomically; reading them back and choosing the best trial.
"""

import csv
import io
import json
import math
from pathlib import Path

from framegen.atomic import atomic_path, write_text
from framegen.errors import RunError
from framegen.sweep.spec import grid_cells, grid_rows

RESULTS_ROOT = Path("experiments/results")
RESULTS_FILE = "results.json"
RESULTS_VERSION = 1


def gb(n: float) -> str:
    if n >= 1e12:
        return f"{n / 1e12:.1f} TB"
    return f"{n / 1e9:.2f} GB" if n < 10e9 else f"{n / 1e9:.0f} GB"


def load_results(sweep_dir) -> dict:
    path = Path(sweep_dir) / RESULTS_FILE
    if not path.is_file():
        raise RunError(f"{sweep_dir} has no {RESULTS_FILE}: pass the directory of a sweep "
                       f"(e.g. experiments/results/quick)")
    try:
        doc = json.loads(path.read_text())
        if doc.get("results_version", RESULTS_VERSION) > RESULTS_VERSION:
            raise RunError(f"{path} was written by a newer framegen: upgrade framegen to read it")
        doc["trials"]  # noqa: B018 - must exist
        return doc
    except (ValueError, KeyError, TypeError) as e:
        raise RunError(f"{path} is not a framegen sweep results file ({e})") from None


def _clean(v):
    return None if isinstance(v, float) and not math.isfinite(v) else v


CSV_COLUMNS = ("frame_size", "seq_len", "status", "score", "vs_copy", "val_snr_db", "val_mse", "zero_mse", "copy_mse",
               "best_val_mse", "train_mse", "budget_kind", "budget", "samples_seen", "steps", "max_steps",
               "epochs", "batch_size", "batch_reduced_from", "samples_per_step", "train_seconds", "compile_seconds",
               "peak_rss_bytes", "peak_device_bytes", "est_memory_bytes", "hidden", "layers", "tiers", "lr", "seed",
               "sample_pulse_ratio", "sample_rhythm_similarity", "sample_continuity_ratio", "sample_frechet_ratio",
               "sample_novelty", "sample_transition_jumps", "sample_jump_rate", "sample_transition_shuffled",
               "sample_change_ratio", "sample_flags", "run_dir", "reason", "error")


def best_trial(doc: dict) -> dict | None:
    done = [r for r in doc["trials"] if r.get("status") == "done" and r.get("score") is not None]
    return min(done, key=lambda r: r["score"]) if done else None


def write_results(sweep_dir, doc: dict) -> None:
    """results.json, results.csv, results.md, heatmap.png and the best link, each replaced atomically."""
    sweep_dir = Path(sweep_dir)
    doc = json.loads(json.dumps(doc, default=str), parse_constant=lambda c: None)
    doc["trials"] = [{k: _clean(v) for k, v in r.items()} for r in doc["trials"]]
    write_text(sweep_dir / RESULTS_FILE, json.dumps(doc, indent=2, allow_nan=False) + "\n")
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in doc["trials"]:
        w.writerow({k: "" if r.get(k) is None else (" ".join(r[k]) if k == "sample_flags" else r[k])
                    for k in CSV_COLUMNS})
    write_text(sweep_dir / "results.csv", buf.getvalue())
    write_text(sweep_dir / "results.md", results_markdown(doc))
    _write_best(sweep_dir, best_trial(doc))
    try:
        from framegen.plots import plot_sweep_heatmap

        plot_sweep_heatmap(sweep_dir / "heatmap.png", doc)
    except OSError:
        pass  # a missing plot must never lose a result


def _write_best(sweep_dir: Path, best: dict | None) -> None:
    link, txt = sweep_dir / "best", sweep_dir / "best.txt"
    if best is None:
        return
    write_text(txt, f"{best['run_dir']}\n")
    try:
        with atomic_path(link) as tmp:
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(best["run_dir"], target_is_directory=True)
    except OSError:
        pass  # no symlinks here (some filesystems): best.txt names it


def fmt(v, spec=".3f", none="-") -> str:
    return none if v is None else format(v, spec)


def cell_text(r: dict | None) -> str:
    if r is None:
        return ""
    if r["status"] == "done":
        return f"{r['score']:.3f} ({r['val_snr_db']:+.1f} dB)"
    return r["status"]


def sample_text(r: dict) -> str:
    """A trial's last scored sample clip: pulse ratio, rhythm similarity, transition at its jumps (shuffled
    reference) and flags ('-' when none was scored)."""
    if r.get("sample_flags") is None:
        return "-"
    return (f"{fmt(r.get('sample_pulse_ratio'))}, {fmt(r.get('sample_rhythm_similarity'))}, "
            f"{fmt(r.get('sample_transition_jumps'), '.2f')} ({fmt(r.get('sample_transition_shuffled'), '.2f')}), "
            f"{', '.join(r['sample_flags']) or 'no flags'}")


def results_markdown(doc: dict) -> str:
    """A table F x T of the main score, then one row per trial and why cells were not run."""
    cells = grid_cells(doc)
    best = best_trial(doc)
    b = doc["budget"]
    budget = (f"{int(b['amount']):,} training samples per trial" if b["kind"] == "samples"
              else f"{b['amount']:g} s of training per trial")
    lines = [
        f"# Sweep `{doc['sweep']}`", "",
        f"Song `{Path(doc['song']).name}`: {doc['song_samples']:,} samples at {doc['sample_rate']} Hz "
        f"({doc['song_samples'] / doc['sample_rate']:.1f} s), validation on its last {doc['val_samples']:,}. "
        f"Budget: {budget}. Machine: {doc.get('machine', '?')}. Updated {doc.get('updated', '?')}.",
    ]
    if doc.get("command"):
        lines += ["", f"Command: `{doc['command']}`"]
    lines += [
        "",
        "Score: validation MSE / zero-predictor MSE on the same held-out samples (lower is better; 1.0 = "
        "predicting silence), with the SNR in dB.",
        "",
        "| F \\ T | " + " | ".join(str(t) for t in doc["seq_lens"]) + " |",
        "|---:|" + "---:|" * len(doc["seq_lens"]),
    ]
    for f, tiers, label in grid_rows(doc):
        row = []
        for t in doc["seq_lens"]:
            text = cell_text(cells.get((f, t, tiers)))
            row.append(f"**{text}**" if best and cells.get((f, t, tiers)) is best else text)
        lines.append(f"| {label} | " + " | ".join(row) + " |")
    lines.append("")
    if best:
        lines.append(f"Best: `{best['run_dir']}` (score {best['score']:.3f}): "
                     f"`framegen generate --run <this directory>/best --seconds 30`")
        lines.append("")
    lines += ["## Trials", "",
              "| trial | status | batch | steps | samples seen | train s | compile s | val MSE | zero MSE | copy MSE "
              "| /zero | /copy | SNR dB | peak RSS | sample: pulse ratio, rhythm, at jumps (shuffled), flags |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in doc["trials"]:
        batch = fmt(r.get("batch_size"), "d") + (f" (from {r['batch_reduced_from']})"
                                                  if r.get("batch_reduced_from") else "")
        rss = gb(r["peak_rss_bytes"]) if r.get("peak_rss_bytes") else "-"
        lines.append(
            f"| {r['key']} | {r['status']} | {batch} | {fmt(r.get('steps'), ',')} | "
            f"{fmt(r.get('samples_seen'), ',')} | {fmt(r.get('train_seconds'), '.1f')} | "
            f"{fmt(r.get('compile_seconds'), '.1f')} | {fmt(r.get('val_mse'), '.4f')} | "
            f"{fmt(r.get('zero_mse'), '.4f')} | {fmt(r.get('copy_mse'), '.4f')} | {fmt(r.get('score'))} | "
            f"{fmt(r.get('vs_copy'))} | {fmt(r.get('val_snr_db'), '+.2f')} | {rss} | {sample_text(r)} |")
    notes = [r for r in doc["trials"] if r.get("reason") or r.get("error")]
    if notes:
        lines += ["", "## Not run or failed", ""]
        lines += [f"- {r['key']} ({r['status']}): {r.get('error') or r.get('reason')}" for r in notes]
    return "\n".join(lines) + "\n"


def report(sweep_dir) -> dict:
    """Re-draw results.csv/.md, heatmap.png and the best link from results.json; returns the document."""
    doc = load_results(sweep_dir)
    write_results(sweep_dir, doc)
    return doc
