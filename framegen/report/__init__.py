"""The listening report: one static HTML page per run and per sweep, with audio players, spectrograms beside the
song's, onset envelopes, loss curves and every metric, built only from what is on disk.

``write_report`` is the entry: ``collect`` reads a run (config.json, metrics.jsonl, samples/, generated/) or a
sweep (results.json and its trials), scoring unscored clips once and having ``figures`` draw the missing ones into
RUN/report/; ``pages`` lays that out in ``html``'s blocks. Nothing is trained or generated. A page needs no
server and no network: audio and images are relative paths, or inlined with ``embed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from framegen import runs
from framegen.config import CONFIG_FILE
from framegen.errors import FramegenError, RunError
from framegen.report.collect import (ASSETS_DIR, CLIPS_FILE, REPORT_FILE, Clip, RunView, _Songs, collect_run,
                                     collect_sweep)
from framegen.report.pages import metric_docs, run_page, sweep_page

__all__ = ["ASSETS_DIR", "CLIPS_FILE", "REPORT_FILE", "Clip", "Page", "RunView", "collect_run", "collect_sweep",
           "metric_docs", "open_in_browser", "run_page", "sweep_page", "target_kind", "write_report"]


@dataclass
class Page:
    path: Path
    kind: str  # "run" or "sweep"
    missing: list[str]


def target_kind(path) -> str:
    """"run" or "sweep" for a directory framegen made; a RunError that says what to pass otherwise."""
    from framegen.sweep import RESULTS_FILE

    path = Path(path)
    what = "pass a run directory (made by 'framegen train') or a sweep directory (made by 'framegen sweep')"
    if not path.exists():
        raise RunError(f"{path} not found: {what}")
    if not path.is_dir():
        raise RunError(f"{path} is not a directory: {what}")
    if (path / RESULTS_FILE).is_file():
        return "sweep"
    if (path / CONFIG_FILE).is_file():
        return "run"
    raise RunError(f"{path} is neither a run (no {CONFIG_FILE}) nor a sweep (no {RESULTS_FILE}): {what}")


def write_report(target=None, *, out=None, embed: bool = False, clips: dict | None = None) -> Page:
    """Write the listening report of ``target`` (a run or sweep directory; default: the latest run) to ``out``
    (default TARGET/report.html) and return it. ``embed`` inlines audio and images (one file that can be mailed).
    ``clips``: {WAV path: {"evaluation": dict | None, "settings": dict}} of clips just generated, so they are not
    scored again. A sweep's page comes with each trial's run page; a trial's page refreshes its sweep's."""
    from framegen.sweep import RESULTS_FILE

    target = Path(target) if target is not None else runs.latest_run()
    kind = target_kind(target)
    out = Path(out) if out is not None else target / REPORT_FILE
    if out.is_dir():
        out = out / REPORT_FILE
    songs = _Songs()
    if kind == "sweep":
        return Page(out, kind, _write_sweep(target, out, embed=embed, songs=songs))
    view = collect_run(target, songs=songs, clips=clips)
    sweep = target.parent
    if all((sweep / f).is_file() for f in (RESULTS_FILE, REPORT_FILE)):  # a clip of SWEEP/best belongs there too
        _write_page(out, run_page(view, out.parent, embed=embed, back_to=sweep / REPORT_FILE))
        try:
            _write_sweep(sweep, sweep / REPORT_FILE, embed=False, songs=songs)
        except FramegenError as e:
            view.missing.append(f"the sweep's page {sweep / REPORT_FILE} was not refreshed: {e}")
    else:
        _write_page(out, run_page(view, out.parent, embed=embed))
    return Page(out, kind, view.missing)


def _write_sweep(sweep_dir: Path, out: Path, *, embed: bool, songs: _Songs) -> list[str]:
    """The sweep's page at ``out`` and each trial's run page in its directory (linking back to ``out``)."""
    doc, trials, missing = collect_sweep(sweep_dir, songs=songs)
    for r, view in trials:
        if view is not None:
            try:
                _write_page(view.run_dir / REPORT_FILE, run_page(view, view.run_dir, back_to=out))
            except FramegenError as e:
                missing.append(f"trial {r.get('key')}: {e}")
    _write_page(out, sweep_page(sweep_dir, doc, trials, missing, out.parent, embed=embed))
    return missing


def open_in_browser(path) -> None:
    import webbrowser

    webbrowser.open(Path(path).resolve().as_uri())


def _write_page(out: Path, text: str) -> None:
    from framegen.atomic import atomic_path

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(out) as tmp:
            tmp.write_text(text, encoding="utf-8")
    except OSError as e:
        raise RunError(f"cannot write the report {out} ({e.strerror or e}): pass --out FILE in a writable place") \
            from None
