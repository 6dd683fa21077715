"""The listening report: one static HTML page per run and per sweep, with audio players, spectrograms beside the
song's, onset envelopes, loss curves and every metric, built only from what is on disk.

``write_report`` is the entry. A run's page reads config.json, metrics.jsonl, samples/*.wav and generated/*.wav; a
sweep's page reads results.json and writes each trial's run page. Figures are drawn (framegen.plots) into RUN/report/
only when missing or older than their audio; generated clips are scored once and the scores kept in
RUN/report/clips.json. Nothing is trained or generated. The page needs no server and no network: audio and images
are relative paths, or inlined with ``embed``.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import math
import os
import re
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from framegen import runs
from framegen.config import CONFIG_FILE, RunConfig, load_config
from framegen.errors import FramegenError, RunError

REPORT_FILE = "report.html"
ASSETS_DIR = "report"  # RUN/report/: the page's figures, the seed WAV and the scores of generated clips
CLIPS_FILE = "clips.json"
CLIPS_VERSION = 1
SAMPLE_SEED_FRAMES = 50  # train.py warms its sample clips on min(T, 50) frames from the held-out tail's start
COLLAPSE_FLAGS = ("silent", "stuck", "noise_like", "nonfinite")  # shown red; every other flag amber


# ---------------------------------------------------------------------------------------------------- what a page shows


@dataclass
class Clip:
    """One WAV on a page, with what is known about it."""

    kind: str  # "seed", "sample" or "generated"
    title: str  # e.g. "epoch 3 sample", "best-10s.wav"
    path: Path  # the WAV
    seconds: float | None = None  # None when missing or unreadable
    metrics: dict | None = None  # framegen.evaluate metrics (every key but flags); None when not scored
    flags: tuple[str, ...] | None = None
    note: str = ""  # why it is missing or not scored
    figure: Path | None = None
    facts: dict = field(default_factory=dict)  # shown under the title: epoch, val MSE, generation settings
    compare_start: int | None = None  # song sample where the stretch it is compared with starts

    @property
    def exists(self) -> bool:
        return self.seconds is not None


@dataclass
class RunView:
    """Everything a run page shows, read from the run directory."""

    run_dir: Path
    config: dict  # config.json as stored (every field shown, even ones this version does not know)
    cfg: RunConfig
    rows: list[dict]
    seed: Clip | None
    samples: list[Clip]
    generated: list[Clip]
    training_figure: Path | None
    missing: list[str]  # one sentence per thing the page cannot show, and what to do

    def best_generated(self) -> Clip | None:
        """The generated clip with the fewest flags, then the lowest Frechet ratio; unscored clips last."""
        clips = [c for c in self.generated if c.exists]

        def rank(c):
            scored = c.metrics is not None
            fr = c.metrics.get("frechet_ratio") if scored else None
            return (not scored, len(c.flags or ()), fr if isinstance(fr, (int, float)) else math.inf, c.title)

        return min(clips, key=rank) if clips else None

    def last_sample(self) -> Clip | None:
        clips = [c for c in self.samples if c.exists]
        return clips[-1] if clips else None


@dataclass
class Page:
    path: Path
    kind: str  # "run" or "sweep"
    missing: list[str]


# ---------------------------------------------------------------------------------------------------- entry points


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
    scored again."""
    target = Path(target) if target is not None else runs.latest_run()
    kind = target_kind(target)
    out = Path(out) if out is not None else target / REPORT_FILE
    if out.is_dir():
        out = out / REPORT_FILE
    songs = _Songs()
    if kind == "sweep":
        doc, trials, missing = collect_sweep(target, songs=songs)
        _write_page(out, sweep_page(target, doc, trials, missing, out.parent, embed=embed))
        return Page(out, kind, missing)
    from framegen.sweep import RESULTS_FILE

    view = collect_run(target, songs=songs, clips=clips)
    # a sweep's trial links back to the sweep's page, when there is one, and refreshes it (a clip generated from
    # the sweep's best run belongs in its table)
    sweep = target.parent if all((target.parent / f).is_file() for f in (RESULTS_FILE, REPORT_FILE)) else None
    _write_page(out, run_page(view, out.parent, embed=embed, sweep=sweep))
    if sweep is not None:
        try:
            doc, trials, missing = collect_sweep(sweep, songs=songs)
            _write_page(sweep / REPORT_FILE, sweep_page(sweep, doc, trials, missing, sweep))
        except FramegenError as e:
            view.missing.append(f"the sweep's page {sweep / REPORT_FILE} was not refreshed: {e}")
    return Page(out, kind, view.missing)


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


# ---------------------------------------------------------------------------------------------------- reading a run


class _Songs:
    """Each song loaded once per report (a sweep's trials share theirs): (raw mono at the rate, loudest mel cell)."""

    def __init__(self):
        self._cache = {}

    def get(self, cfg: RunConfig) -> tuple[np.ndarray | None, float | None, str]:
        key = (cfg.song, cfg.data.sample_rate)
        if key not in self._cache:
            self._cache[key] = self._load(cfg)
        return self._cache[key]

    @staticmethod
    def _load(cfg: RunConfig):
        from framegen import audio
        from framegen.spectral import mel_power

        if not cfg.song or not Path(cfg.song).is_file():
            return None, None, (f"the run's song {cfg.song or '(none recorded)'} is missing: put it back at that path "
                                f"to see the song's spectrograms, the seed, and scores of unscored clips")
        try:
            y, _ = audio.load_song(cfg.song, cfg.data.sample_rate)
        except FramegenError as e:
            return None, None, f"cannot read the run's song: {e}"
        note = ""
        if cfg.song_samples and len(y) != cfg.song_samples:
            note = (f"the song {cfg.song} has changed since training ({len(y):,} samples at "
                    f"{cfg.data.sample_rate} Hz, the run saw {cfg.song_samples:,}): comparisons may not line up")
        return y, float(mel_power(y, cfg.data.sample_rate).max()) or 1.0, note


def _load_scores(assets: Path) -> dict:
    try:
        doc = json.loads((assets / CLIPS_FILE).read_text())
        return doc["clips"] if doc.get("version") == CLIPS_VERSION else {}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _save_scores(assets: Path, scores: dict) -> None:
    from framegen.atomic import write_text

    try:
        write_text(assets / CLIPS_FILE,
                   json.dumps({"version": CLIPS_VERSION, "clips": scores}, indent=1, default=_jsonable) + "\n")
    except OSError:
        pass  # scores are a cache: the next report recomputes them


def _current(entry: dict) -> bool:
    """A kept score has every metric framegen.evaluate measures today; one from an older framegen is scored again."""
    from framegen.evaluate import METRICS

    d = entry.get("evaluation")
    return d is None or set(METRICS) <= set(d)


def _jsonable(v):
    if isinstance(v, np.generic):
        return v.item()
    return str(v)


def _stamp(path: Path) -> dict:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _key(run_dir: Path, path: Path) -> str:
    try:
        return Path(os.path.abspath(path)).relative_to(Path(os.path.abspath(run_dir))).as_posix()
    except ValueError:
        return os.path.abspath(path)


def _split_evaluation(d: dict | None) -> tuple[dict | None, tuple | None]:
    if d is None:
        return None, None
    metrics = {k: v for k, v in d.items() if k != "flags"}
    return metrics, tuple(d.get("flags") or ())


def collect_run(run_dir, *, songs: _Songs | None = None, clips: dict | None = None) -> RunView:
    """Read a run directory, score clips that have no score yet and draw missing figures; see ``RunView``."""
    from framegen.data import split_song

    run_dir = Path(run_dir)
    cfg = load_config(run_dir)  # refuses a corrupt or newer config with a one-line RunError
    config = json.loads((run_dir / CONFIG_FILE).read_text())
    rows = runs.read_metrics(run_dir)
    songs = songs or _Songs()
    song, top, song_note = songs.get(cfg)
    missing = [song_note] if song_note else []
    assets = run_dir / ASSETS_DIR
    try:
        assets.mkdir(exist_ok=True)
    except OSError as e:
        missing.append(f"cannot write figures into {assets} ({e.strerror or e}): the page shows what exists")
    f, t = cfg.data.frame_size, cfg.data.seq_len
    n_train = split_song(cfg.song_samples or (len(song) if song is not None else 0), cfg.data).n_train
    scores = {k: v for k, v in _load_scores(assets).items() if _current(v)}
    for path, given in (clips or {}).items():
        path = Path(path)
        if path.is_file():
            scores[_key(run_dir, path)] = {**_stamp(path), "evaluation": given.get("evaluation"),
                                           "settings": given.get("settings") or {}}

    seed = _seed_clip(assets, song, n_train, cfg) if song is not None else None
    samples = _sample_clips(run_dir, rows, n_train + min(t, SAMPLE_SEED_FRAMES) * f)
    generated = []
    paths = sorted((run_dir / "generated").glob("*.wav"))
    paths += [Path(k) for k in scores if os.path.isabs(k) and Path(k).is_file() and Path(k) not in paths]
    for path in paths:  # generate's own folder, and clips it wrote elsewhere (--out) that the CLI handed over
        settings = scores.get(_key(run_dir, path), {}).get("settings") or {}
        facts = {k: v for k, v in settings.items() if k not in ("stream", "streams") or settings.get("streams", 1) > 1}
        generated.append(Clip("generated", path.name, path, facts=facts,
                              compare_start=_generated_start(cfg, song, n_train, settings)))

    for clip in ([seed] if seed else []) + samples + generated:
        _examine(clip, run_dir, assets, cfg, song, top, scores)
    _save_scores(assets, {k: v for k, v in scores.items() if (run_dir / k).is_file()})

    training = None
    if rows:
        training = assets / "training.png"
        if not _fresh(training, run_dir / runs.METRICS_FILE):
            try:
                from framegen.plots import plot_training

                plot_training(training, rows)
            except OSError as e:
                missing.append(f"cannot draw {training} ({e.strerror or e})")
                training = None
    else:
        missing.append("no epoch has finished yet (metrics.jsonl is empty or missing): train the run, or wait for "
                       "its first epoch")
    if not samples:
        every = cfg.train.sample_every
        missing.append("no sample clips: the run was trained with --sample-every 0" if not every else
                       f"no sample clips yet: training writes samples/epoch-NNN.wav every {every} epoch(s)")
    gone = [c.path.name for c in samples if not c.exists and not c.note.startswith("cannot read")]
    if gone:
        missing.append(f"sample WAV(s) listed in metrics.jsonl are missing: {', '.join(gone)}")
    if not generated:
        missing.append(f"no generated clips yet: run 'framegen generate --run {run_dir} --seconds 30'")
    return RunView(run_dir, config, cfg, rows, seed, samples, generated, training, missing)


def _seed_clip(assets: Path, song: np.ndarray, n_train: int, cfg: RunConfig) -> Clip:
    """The seed generate warms on by default (T frames from the start of the held-out tail), as report/seed.wav."""
    rate, f, t = cfg.data.sample_rate, cfg.data.frame_size, cfg.data.seq_len
    path = assets / "seed.wav"
    piece = song[n_train: n_train + t * f]
    seed = Clip("seed", "seed", path, facts={"starts at": f"{n_train / rate:.2f} s",
                                             "length": f"{t} frames of {f} samples"},
                compare_start=n_train + t * f)
    try:
        if not path.is_file() or _read(path)[0].shape != piece.shape:
            from framegen import audio

            audio.write_wav(path, piece, rate)
    except (OSError, FramegenError) as e:
        seed.note = f"cannot write {path} ({getattr(e, 'strerror', None) or e})"
    return seed


def _sample_clips(run_dir: Path, rows: list[dict], compare_start: int) -> list[Clip]:
    """Each epoch's sample clip with the scores train logged beside it (``sample_*``), then any WAV in samples/
    that no row lists (rows a resume dropped)."""
    samples, listed = [], set()
    for r in rows:
        if not r.get("sample"):
            continue
        listed.add(Path(r["sample"]).as_posix())
        sample = {k[len("sample_"):]: v for k, v in r.items() if k.startswith("sample_")}
        error = sample.pop("eval_error", None)
        flags = sample.pop("flags", None)
        facts = {"epoch": r.get("epoch"), "val MSE": r.get("val_mse"), "SNR dB": r.get("val_snr_db")}
        if r.get("partial"):
            facts["partial epoch"] = True
        clip = Clip("sample", f"epoch {r.get('epoch')} sample", run_dir / r["sample"], metrics=sample or None,
                    flags=tuple(flags) if flags is not None else None, facts=facts, compare_start=compare_start)
        if error:
            clip.note = f"not scored: {error}"
        samples.append(clip)
    for path in sorted((run_dir / "samples").glob("*.wav")):
        if path.relative_to(run_dir).as_posix() not in listed:
            samples.append(Clip("sample", path.stem, path, note="not listed in metrics.jsonl: no scores",
                                compare_start=compare_start))
    return samples


def _generated_start(cfg: RunConfig, song, n_train: int, settings: dict) -> int:
    """Song sample after the seed a generated clip continued: the default seed unless the settings say otherwise."""
    f = cfg.data.frame_size
    frames = settings.get("seed_frames") or cfg.data.seq_len
    offset, stream, streams = settings.get("seed_offset"), settings.get("stream", 0), settings.get("streams", 1)
    if song is None or (offset is None and streams == 1):
        return n_train + frames * f
    try:
        from framegen.generate import seed_start, stream_seeds

        start = seed_start(cfg, len(song), offset, frames)
        return int(stream_seeds(song, start, frames, f, streams)[1][stream]) + frames * f
    except (FramegenError, IndexError, ValueError):
        return n_train + frames * f


def _read(path: Path) -> tuple[np.ndarray, int]:
    from framegen.audio import read_audio

    return read_audio(path, allow_nonfinite=True)


def _fresh(output: Path, source: Path) -> bool:
    try:
        return output.stat().st_mtime_ns >= source.stat().st_mtime_ns
    except OSError:
        return False


def _examine(clip: Clip, run_dir: Path, assets: Path, cfg: RunConfig, song, top, scores: dict) -> None:
    """Fill in the clip's length, its score (when it has none and the song is here) and its figure."""
    from framegen import audio

    if not clip.path.is_file():
        clip.note = clip.note or f"{_key(run_dir, clip.path)} is missing"
        return
    try:
        y, rate = _read(clip.path)
    except FramegenError as e:
        clip.note = f"cannot read {clip.path.name}: {e}"
        return
    clip.seconds = len(y) / rate
    key = _key(run_dir, clip.path)
    known = scores.get(key) or {}
    if clip.kind != "sample" and known and {k: known.get(k) for k in ("size", "mtime_ns")} == _stamp(clip.path):
        clip.metrics, clip.flags = _split_evaluation(known.get("evaluation"))
        clip.note = known.get("error") or ""
    if rate != cfg.data.sample_rate:
        y, rate = audio.resample(y, rate, cfg.data.sample_rate), cfg.data.sample_rate
    stretch = None
    if song is not None and clip.compare_start is not None:
        stretch = song[clip.compare_start: clip.compare_start + len(y)]
    if clip.metrics is None and not clip.note and song is not None and clip.kind != "sample":
        from framegen.evaluate import MIN_SECONDS, evaluate

        entry = {**_stamp(clip.path), "settings": clip.facts if clip.kind == "generated" else {}}
        if len(y) < MIN_SECONDS * rate:
            clip.note = entry["error"] = (f"too short to score ({len(y) / rate:.2f} s; evaluation needs "
                                          f"{MIN_SECONDS:g} s)")
            entry["evaluation"] = None
        else:
            try:
                d = evaluate(np.clip(y, -1.0, 1.0), rate, song, rate).to_dict()
                entry["evaluation"] = d
                clip.metrics, clip.flags = _split_evaluation(d)
            except (FramegenError, ValueError, FloatingPointError, np.linalg.LinAlgError) as e:
                clip.note = entry["error"] = f"not scored: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
                entry["evaluation"] = None
        scores[key] = entry
    elif clip.metrics is None and not clip.note:
        clip.note = "not scored"
    figure = assets / f"{clip.kind}-{clip.path.stem}.png"
    if _fresh(figure, clip.path) and _fresh(figure, run_dir / CONFIG_FILE):
        clip.figure = figure
        return
    label = "song: the seed's real continuation" if clip.kind == "seed" else "song: what really follows the seed"
    if stretch is not None and clip.compare_start is not None:
        label += f" ({clip.compare_start / rate:.1f}-{(clip.compare_start + len(stretch)) / rate:.1f} s)"
    try:
        from framegen.plots import plot_clip

        plot_clip(figure, y, rate, song=stretch, top=top, title=clip.title, song_title=label)
        clip.figure = figure
    except (OSError, ValueError, RuntimeError) as e:  # one odd clip must not cost the page
        why = (getattr(e, "strerror", None) or str(e).splitlines()[0]) if str(e) else type(e).__name__
        clip.note = (clip.note + "; " if clip.note else "") + f"cannot draw {figure.name} ({why})"


# ---------------------------------------------------------------------------------------------------- reading a sweep


def collect_sweep(sweep_dir, *, songs: _Songs | None = None) -> tuple[dict, list, list[str]]:
    """(results.json, [(record, RunView or None)], missing): each trial's run page is written on the way."""
    from framegen import sweep as sweeps

    sweep_dir = Path(sweep_dir)
    doc = sweeps.load_results(sweep_dir)
    songs = songs or _Songs()
    missing, trials = [], []
    for r in doc["trials"]:
        view = None
        run_dir = _trial_dir(sweep_dir, r)
        if run_dir is not None and (run_dir / CONFIG_FILE).is_file():
            try:
                view = collect_run(run_dir, songs=songs)
                _write_page(run_dir / REPORT_FILE, run_page(view, run_dir, embed=False, sweep=sweep_dir))
            except FramegenError as e:
                missing.append(f"trial {r.get('key')}: {e}")
        elif r.get("status") == "done":
            missing.append(f"trial {r.get('key')}: its run directory {run_dir} is missing")
        trials.append((r, view))
    if not (sweep_dir / "heatmap.png").is_file():
        from framegen.plots import plot_sweep_heatmap

        try:
            (sweep_dir / ASSETS_DIR).mkdir(exist_ok=True)
            plot_sweep_heatmap(sweep_dir / ASSETS_DIR / "heatmap.png", doc)
        except OSError as e:
            missing.append(f"no heatmap.png and cannot draw one ({e.strerror or e})")
    if not any(v and v.samples for _, v in trials):
        missing.append("no trial has a sample clip: sweeps default to sample_every = 0; set sample_every in the "
                       "experiment's [train] (or pass --sample-every 1) to hear each trial")
    return doc, trials, missing


def _trial_dir(sweep_dir: Path, record: dict) -> Path | None:
    if not record.get("run_dir"):
        return None
    p = Path(record["run_dir"])
    return p if p.is_absolute() else sweep_dir / p


# ---------------------------------------------------------------------------------------------------- HTML pieces


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _anchor(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or "x"


class _Links:
    """Where the page's audio and images come from: relative URLs from the page's folder, or data URIs."""

    MIME = {".wav": "audio/wav", ".png": "image/png", ".mp3": "audio/mpeg", ".ogg": "audio/ogg",
            ".flac": "audio/flac"}

    def __init__(self, page_dir: Path, embed: bool):
        self.page_dir, self.embed = Path(page_dir), embed

    def src(self, path: Path) -> str:
        if self.embed:
            mime = self.MIME.get(path.suffix.lower(), "application/octet-stream")
            return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"
        return self.href(path)

    def image(self, path: Path, alt: str, cls: str = "") -> str:
        """An <img>; on a page with files beside it, a link to the full-size picture too (a phone shrinks it)."""
        cls = f' class="{cls}"' if cls else ""
        img = f'<img{cls} src="{self.src(path)}" alt="{_e(alt)}">'
        return img if self.embed else f'<a href="{self.href(path)}">{img}</a>'

    def href(self, path: Path) -> str:
        rel = os.path.relpath(os.path.abspath(path), os.path.abspath(self.page_dir))
        return urllib.parse.quote(Path(rel).as_posix())


def _num(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        return "0" if v == 0 else f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(str(x) for x in v) or "–"
    return str(v)


def _sort_value(v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ""
    if isinstance(v, bool):
        return str(int(v))
    return repr(v) if isinstance(v, (int, float)) else str(v)


def metric_docs() -> dict[str, tuple[str, str]]:
    """{metric: (summary, details)} from framegen.evaluate.METRICS, so a metric added there is explained here."""
    from framegen.evaluate import METRICS

    return dict(METRICS)


def _short_docs() -> dict[str, str]:
    return {name: summary for name, (summary, _) in metric_docs().items()}


def _flags(flags, note: str = "") -> str:
    if flags is None:
        return f'<span class="flag none">{_e(note or "not scored")}</span>'
    if not flags:
        return '<span class="flag ok">no flags</span>'
    return "".join(f'<span class="flag {"bad" if f in COLLAPSE_FLAGS else "warn"}">{_e(f)}</span>' for f in flags)


def _metrics(metrics: dict | None, docs: dict) -> str:
    if not metrics:
        return ""
    items = []
    for k, v in metrics.items():
        title = f' title="{_e(docs[k])}"' if k in docs else ""
        items.append(f'<div><span class="k"{title}>{_e(k)}</span> <span class="v">{_e(_num(v))}</span></div>')
    return f'<div class="metrics">{"".join(items)}</div>'


class _Ids:
    def __init__(self):
        self.n = 0

    def __call__(self, prefix="c") -> str:
        self.n += 1
        return f"{prefix}{self.n}"


def _player(clip: Clip, links: _Links, ids: _Ids, label: str | None = None, labelled_by: str | None = None) -> str:
    """An <audio> player with a visible label: its own caption, or the heading ``labelled_by`` names."""
    label = label or clip.title
    if not clip.exists:
        return f'<p class="gone">{_e(label)}: {_e(clip.note or "missing")}</p>'
    audio = f'<audio controls preload="metadata" aria-labelledby="{{}}" src="{links.src(clip.path)}"></audio>'
    if labelled_by:
        return f'<figure class="player">{audio.format(labelled_by)}</figure>'
    cid = ids("p")
    return (f'<figure class="player"><figcaption id="{cid}">{_e(label)} <span class="muted">· '
            f'{clip.seconds:.1f} s</span></figcaption>{audio.format(cid)}</figure>')


def _facts(facts: dict) -> str:
    parts = [f"{_e(k)} {_e(_num(v))}" for k, v in facts.items() if v is not None]
    return f'<p class="muted">{" · ".join(parts)}</p>' if parts else ""


def _clip_block(clip: Clip, links: _Links, ids: _Ids, docs: dict, anchor: str, extra: str = "") -> str:
    length = f' <span class="muted">· {clip.seconds:.1f} s</span>' if clip.exists else ""
    parts = [f'<section class="clip" id="{anchor}"><h3 id="{anchor}-h">{_e(clip.title)}{length} '
             f'<span class="flags">{_flags(clip.flags, clip.note if clip.exists else "missing")}</span></h3>',
             _facts(clip.facts), extra, _player(clip, links, ids, labelled_by=f"{anchor}-h")]
    if clip.figure is not None and clip.figure.is_file():
        parts.append(links.image(clip.figure, f"log-mel spectrogram and onset envelope of {clip.title} beside the "
                                              f"song's"))
    if clip.exists and clip.note:
        parts.append(f'<p class="muted">{_e(clip.note)}</p>')
    parts.append(_metrics(clip.metrics, docs))
    parts.append("</section>")
    return "\n".join(p for p in parts if p)


def _kv(pairs) -> str:
    return '<dl class="kv">' + "".join(f"<dt>{_e(k)}</dt><dd>{v}</dd>" for k, v in pairs) + "</dl>"


def _missing(missing: list[str]) -> str:
    if not missing:
        return ""
    items = "".join(f"<li>{_e(m)}</li>" for m in missing)
    return f'<section class="missing" id="missing"><h2>What is missing</h2><ul>{items}</ul></section>'


def _toc(entries) -> str:
    items = "".join(f'<li><a href="#{a}">{_e(t)}</a></li>' for a, t in entries)
    return f'<nav class="toc" aria-label="Contents"><strong>Contents</strong><ol>{items}</ol></nav>'


def _document(title: str, body: str) -> str:
    from framegen import __version__

    stamp = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="framegen {_e(__version__)}">
<link rel="icon" href="data:,">
<title>{_e(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<main>
{body}
<footer class="muted">Written by framegen {_e(__version__)} on {_e(stamp)} from the files in this directory; refresh
with <code>framegen report</code>.</footer>
</main>
<script>{_JS}</script>
</body>
</html>
"""


# ---------------------------------------------------------------------------------------------------- the run page


def _song_facts(view: RunView) -> list:
    cfg = view.cfg
    rate = cfg.data.sample_rate
    name = Path(cfg.song).name if cfg.song else "(none recorded)"
    state = "" if cfg.song and Path(cfg.song).is_file() else ' <span class="flag warn">missing</span>'
    return [("song", f'<span title="{_e(cfg.song)}">{_e(name)}</span>{state}'),
            ("length", f"{cfg.song_samples / rate:.1f} s at {rate:,} Hz ({cfg.song_samples:,} samples)"),
            ("held out", f"the last {cfg.data.val_fraction:.0%} (validation, and the seeds below)")]


def _model_facts(view: RunView) -> list:
    d, m, t = view.cfg.data, view.cfg.model, view.cfg.train
    rate = d.sample_rate
    mode = "MSE: predicts the next frame's samples"
    if m.output == "vq":
        mode = f"VQ: softmax over {m.codebook} codes ({m.codebook_kind}), emits {m.vq_emit} frames"
    facts = [("frames", f"F = {d.frame_size} samples ({1000 * d.frame_size / rate:.1f} ms), T = {d.seq_len} frames "
                        f"per sequence ({d.frame_size * d.seq_len / rate:.2f} s)"),
             ("model", f"GRU {m.layers} x {m.hidden}; {_e(mode)}"),
             ("training", f"{t.epochs} epoch{'s' * (t.epochs != 1)} planned, batch {t.batch_size}, lr {t.lr:g}, "
                          f"seed {t.seed}")]
    rows = [r for r in view.rows if r.get("val_mse") is not None]
    if rows:
        last = rows[-1]
        best = min(rows, key=lambda r: r["val_mse"])
        ratio = last["val_mse"] / last["zero_mse"] if last.get("zero_mse") else None
        facts.append(("progress", f"epoch {_num(last.get('epoch'))}, step {_num(last.get('step'))}, "
                                  f"{_num(last.get('seconds'))} s of training"))
        facts.append(("validation", f"last val MSE {_num(last['val_mse'])} ({_num(ratio)} of the zero predictor's, "
                                    f"SNR {_num(last.get('val_snr_db'))} dB); best {_num(best['val_mse'])} "
                                    f"at epoch {_num(best.get('epoch'))}"))
    return facts


def _config_section(config: dict) -> str:
    groups = []
    flat = []
    for k, v in config.items():
        if isinstance(v, dict):
            groups.append((k, v))
        else:
            flat.append((k, v))
    parts = [f'<h3>{_e(name)}</h3>' + _kv((k, _e(_num(v))) for k, v in d.items()) for name, d in groups]
    return (_kv((k, _e(_num(v))) for k, v in flat)
            + '<div class="cols">' + "".join(f"<div>{p}</div>" for p in parts) + "</div>")


def _epoch_table(rows: list[dict]) -> str:
    keys = []
    for r in rows:
        keys += [k for k in r if k not in keys and k != "sample"]
    head = "".join(f'<th scope="col"><button type="button">{_e(k)}</button></th>' for k in keys)
    body = "".join(
        "<tr>" + "".join(f'<td data-v="{_e(_sort_value(r.get(k)))}">{_e(_num(r.get(k)))}</td>' for k in keys) + "</tr>"
        for r in rows)
    return (f'<div class="scroll"><table class="sortable"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>")


def _definitions(docs: dict) -> str:
    items = "".join(f"<dt>{_e(k)}</dt><dd>{_e(summary)}{'; ' + _e(more) if more else ''}.</dd>"
                    for k, (summary, more) in docs.items())
    return f'<dl class="defs">{items}</dl>'


def run_page(view: RunView, page_dir: Path, *, embed: bool = False, sweep: Path | None = None) -> str:
    """The run page's HTML; ``page_dir`` is where it will be written (relative links start there)."""
    links, ids, docs = _Links(page_dir, embed), _Ids(), _short_docs()
    name = view.run_dir.resolve().name
    toc = [("summary", "Summary")]
    body = []
    back = ""
    if sweep is not None:
        back = f'<p><a href="{links.href(sweep / REPORT_FILE)}">← sweep {_e(Path(sweep).resolve().name)}</a></p>'
    body.append(f'<header>{back}<h1>Listening report: run {_e(name)}</h1>'
                f'<p class="muted">{_e(view.run_dir)}</p></header>')
    summary = [f'<section id="summary"><h2>Summary</h2>{_kv(_song_facts(view) + _model_facts(view))}']
    best = view.best_generated()
    last = view.last_sample()
    for label, clip in (("best generated clip", best), ("latest sample clip", last)):
        if clip is not None:
            summary.append(f'<div class="pick"><div>{_player(clip, links, ids, f"{label}: {clip.title}")}</div>'
                           f'<div class="flags">{_flags(clip.flags, clip.note)}</div></div>')
    summary.append("</section>")
    body.append("\n".join(summary))
    if view.missing:
        toc.append(("missing", "What is missing"))
        body.append(_missing(view.missing))

    toc.append(("training", "Training"))
    if view.training_figure is not None:
        picture = links.image(view.training_figure, "training and validation loss per epoch with the zero and copy "
                                                    "predictors")
        body.append(f'<section id="training"><h2>Training</h2>{picture}<p class="muted">Validation is measured on '
                    f'the held-out tail; the zero predictor (silence) and the copy-previous-frame predictor are '
                    f'scored on the same frames.</p></section>')
    else:
        body.append('<section id="training"><h2>Training</h2><p>No epoch has finished yet.</p></section>')

    toc.append(("generated", f"Generated clips ({len(view.generated)})"))
    gen = ['<section id="generated"><h2>Generated clips</h2>']
    if not view.generated:
        gen.append(f"<p>None yet: <code>framegen generate --run {_e(view.run_dir)} --seconds 30</code></p>")
    for clip in view.generated:
        gen.append(_clip_block(clip, links, ids, docs, "gen-" + _anchor(clip.path.stem)))
    gen.append("</section>")
    body.append("\n".join(gen))

    if view.seed is not None:
        toc.append(("seed", "Seed"))
        body.append('<section id="seed-section"><h2 id="seed">Seed</h2><p>What the model hears before it '
                    'continues: the first T frames of the held-out tail, which training never saw (the default seed '
                    'of <code>framegen generate</code>). The song after it, on the right of the figure, is what a '
                    'perfect continuation would sound like. The seed is the song itself, so it scores as '
                    '<em>copying</em>; its other metrics show what real audio of this song scores.</p>'
                    + _clip_block(view.seed, links, ids, docs, "clip-seed") + "</section>")

    toc.append(("samples", f"Samples by epoch ({len(view.samples)})"))
    smp = ['<section id="samples"><h2>Samples by epoch</h2>']
    if not view.samples:
        smp.append("<p>No sample clips.</p>")
    else:
        smp.append("<p>A clip generated at the end of each sampled epoch, from the same seed, so one can hear "
                   "training progress from left to right.</p>")
        smp.append('<p><button type="button" class="playall" data-target="timeline">▶ Play all in order</button></p>')
        cards = []
        for clip in view.samples:
            tid = "tl-" + _anchor(clip.path.stem)
            cards.append(f'<div class="card"><a href="#smp-{_anchor(clip.path.stem)}"><strong id="{tid}">'
                         f'{_e(clip.title)}</strong></a>'
                         f'{_facts({k: v for k, v in clip.facts.items() if k != "epoch"})}'
                         f'{_player(clip, links, ids, labelled_by=tid)}'
                         f'<div class="flags">{_flags(clip.flags, clip.note)}</div></div>')
        smp.append(f'<div class="timeline" id="timeline">{"".join(cards)}</div>')
        for clip in view.samples:
            smp.append(_clip_block(clip, links, ids, docs, "smp-" + _anchor(clip.path.stem)))
    smp.append("</section>")
    body.append("\n".join(smp))

    if view.rows:
        toc.append(("epochs", "Every epoch's numbers"))
        body.append(f'<section id="epochs"><h2>Every epoch\'s numbers</h2><p class="muted">metrics.jsonl; click a '
                    f'column to sort.</p>{_epoch_table(view.rows)}</section>')
    toc.append(("config", "Configuration"))
    body.append(f'<section id="config"><h2>Configuration</h2><p class="muted">config.json as saved by '
                f'<code>framegen train</code>.</p>{_config_section(view.config)}</section>')
    toc.append(("definitions", "What the metrics mean"))
    body.append(f'<section id="definitions"><h2>What the metrics mean</h2><p class="muted">From '
                f'<code>framegen evaluate --help</code>. Each figure shows a clip\'s log-mel spectrogram over its '
                f'onset envelope, beside the song\'s at the same dB, time and onset scales (0 dB = the song\'s '
                f'loudest cell).</p>{_definitions(metric_docs())}</section>')
    body.insert(1, _toc(toc))
    return _document(f"framegen run {name}", "\n".join(body))


# ---------------------------------------------------------------------------------------------------- the sweep page


SWEEP_COLUMNS = (  # (results.json key, heading) after trial, F, T, status, score and the flags; every column sorts
    ("vs_copy", "val / copy"), ("val_snr_db", "SNR dB"), ("val_mse", "val MSE"), ("best_val_mse", "best val MSE"),
    ("train_mse", "train MSE"), ("steps", "steps"), ("samples_seen", "samples seen"), ("epochs", "epochs"),
    ("batch_size", "batch"), ("train_seconds", "train s"), ("compile_seconds", "compile s"),
    ("peak_rss_bytes", "peak RSS MB"),
)
SWEEP_FIRST = (("frame_size", "F"), ("seq_len", "T"), ("status", "status"), ("score", "val / zero"))


def sweep_page(sweep_dir: Path, doc: dict, trials: list, missing: list[str], page_dir: Path, *,
               embed: bool = False) -> str:
    from framegen.sweep import best_trial

    links, ids = _Links(page_dir, embed), _Ids()
    sweep_dir = Path(sweep_dir)
    name = doc.get("sweep") or sweep_dir.resolve().name
    best = best_trial(doc)
    b = doc.get("budget") or {}
    budget = (f"{int(b['amount']):,} training samples per trial" if b.get("kind") == "samples"
              else f"{b.get('amount', 0):g} s of training per trial")
    rate = doc.get("sample_rate") or 1
    song = doc.get("song", "")
    facts = [("song", f'<span title="{_e(song)}">{_e(Path(song).name)}</span> '
                      f'({(doc.get("song_samples") or 0) / rate:.1f} s at {rate:,} Hz)'),
             ("grid", f"F {', '.join(map(str, doc.get('frame_sizes', [])))} x "
                      f"T {', '.join(map(str, doc.get('seq_lens', [])))}"),
             ("budget", _e(budget)), ("machine", _e(doc.get("machine", "?"))),
             ("updated", _e(doc.get("updated", "?")))]
    if doc.get("command"):
        facts.append(("command", f"<code>{_e(doc['command'])}</code>"))
    if best:
        facts.append(("best", f'<a href="#trial-{_anchor(best["key"])}">{_e(best["key"])}</a> (val / zero '
                              f'{_num(best.get("score"))})'))
    toc = [("summary", "Summary")]
    body = [f'<header><h1>Listening report: sweep {_e(name)}</h1><p class="muted">{_e(sweep_dir)}</p></header>',
            f'<section id="summary"><h2>Summary</h2>{_kv(facts)}<p class="muted">Score: validation MSE / '
            f'zero-predictor MSE on the same held-out tail (lower is better; 1 = predicting silence).</p></section>']
    if missing:
        toc.append(("missing", "What is missing"))
        body.append(_missing(missing))
    heatmap = sweep_dir / "heatmap.png"
    heatmap = heatmap if heatmap.is_file() else sweep_dir / ASSETS_DIR / "heatmap.png"
    if heatmap.is_file():
        toc.append(("heatmap", "Heatmap"))
        picture = links.image(heatmap, "score of each F x T cell", "narrow")
        body.append(f'<section id="heatmap"><h2>Heatmap</h2>{picture}</section>')

    toc.append(("results", "Results table"))
    # the sample scores a sweep records per trial (sample_pulse_ratio, ...), whichever they are
    scores = []
    for r, _ in trials:
        scores += [k for k, v in r.items() if k.startswith("sample_") and k not in scores
                   and (v is None or isinstance(v, (int, float)))]
    columns = [*((k, k.replace("_", " ")) for k in scores), *SWEEP_COLUMNS]
    headings = ["trial", *(h for _, h in SWEEP_FIRST), "sample flags", "clip flags", *(h for _, h in columns)]
    head = "".join(f'<th scope="col"><button type="button">{_e(h)}</button></th>' for h in headings)

    def cell(k, v):
        shown = v / 1e6 if k == "peak_rss_bytes" and isinstance(v, (int, float)) else v
        cls = ' class="num"' if isinstance(v, (int, float)) and not isinstance(v, bool) else ""
        return f'<td{cls} data-v="{_e(_sort_value(v))}">{_e(_num(shown))}</td>'

    rows = []
    for r, view in trials:
        key = r.get("key", "?")
        star = ' <span class="flag ok">best</span>' if best is not None and r is best else ""
        cells = [f'<th scope="row" data-v="{_e(key)}"><a href="#trial-{_anchor(key)}">{_e(key)}</a>{star}</th>']
        cells += [cell(k, r.get(k)) for k, _ in SWEEP_FIRST]
        for clip in ((view.last_sample() if view else None), (view.best_generated() if view else None)):
            flags = "" if clip is None or clip.flags is None else (", ".join(clip.flags) or "none")
            cells.append(f'<td data-v="{_e(flags)}">{_flags(clip.flags, clip.note) if clip else "–"}</td>')
        cells += [cell(k, r.get(k)) for k, _ in columns]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    body.append(f'<section id="results"><h2>Results</h2><p class="muted">Click a column heading to sort; again to '
                f'reverse.</p><div class="scroll"><table class="sortable" id="results-table"><thead><tr>{head}'
                f'</tr></thead><tbody>{"".join(rows)}</tbody></table></div></section>')

    toc.append(("trials", f"Trials ({len(trials)})"))
    cards = ['<section id="trials"><h2>Trials</h2><div class="trials">']
    for r, view in trials:
        key = r.get("key", "?")
        head = f'<h3>{_e(key)} <span class="muted">{_e(r.get("status", "?"))}</span></h3>'
        if view is not None:
            head = (f'<h3><a href="{links.href(view.run_dir / REPORT_FILE)}">{_e(key)}</a> '
                    f'<span class="muted">{_e(r.get("status", "?"))}</span></h3>')
        parts = [f'<div class="card" id="trial-{_anchor(key)}">{head}']
        if r.get("status") == "done":
            snr = r.get("val_snr_db")
            snr = f"{snr:+.2f}" if isinstance(snr, (int, float)) else "–"
            parts.append(f'<p class="muted">val / zero {_num(r.get("score"))} · SNR {snr} dB · '
                         f'{_num(r.get("steps"))} steps</p>')
        if r.get("error") or r.get("reason"):
            parts.append(f'<p class="gone">{_e(r.get("error") or r.get("reason"))}</p>')
        if view is not None:
            for label, clip in (("sample", view.last_sample()), ("generated", view.best_generated())):
                if clip is None:
                    parts.append(f'<p class="muted">no {label} clip</p>')
                    continue
                parts.append(_player(clip, links, ids, clip.title if label == "sample" else f"{label}: {clip.title}"))
                parts.append(f'<div class="flags">{_flags(clip.flags, clip.note)}</div>')
            parts.append(f'<p><a href="{links.href(view.run_dir / REPORT_FILE)}">run page →</a></p>')
        parts.append("</div>")
        cards.append("".join(parts))
    cards.append("</div></section>")
    body.append("\n".join(cards))
    body.insert(1, _toc(toc))
    return _document(f"framegen sweep {name}", "\n".join(body))


# ---------------------------------------------------------------------------------------------------- style, script

_CSS = """
:root{--fg:#1d1f23;--muted:#5c6370;--bg:#fff;--card:#f5f6f8;--line:#d9dde3;--link:#1f5fa8;
--bad:#a4261d;--badbg:#fde4e1;--warn:#7a5200;--warnbg:#fff1cc;--ok:#1b6a34;--okbg:#def3e4;color-scheme:light dark}
@media (prefers-color-scheme:dark){:root{--fg:#e6e8eb;--muted:#a2a9b4;--bg:#16181c;--card:#1f2329;--line:#343a43;
--link:#8cb8f0;--bad:#ffb4a8;--badbg:#5c1a14;--warn:#ffd480;--warnbg:#4a3500;--ok:#9be0ae;--okbg:#173b22}}
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
main{max-width:1120px;margin:0 auto;padding:12px 16px 48px}
a{color:var(--link)}
h1{font-size:1.55rem;margin:.5em 0 .1em;overflow-wrap:anywhere}
h2{font-size:1.25rem;margin:1.8em 0 .5em;padding-bottom:.2em;border-bottom:1px solid var(--line)}
h3{font-size:1.05rem;margin:.2em 0 .3em;overflow-wrap:anywhere}
code{font-size:.9em;overflow-wrap:anywhere}
.muted{color:var(--muted);font-size:.9rem;margin:.2em 0}
header p{margin:0;overflow-wrap:anywhere}
nav.toc{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:8px 16px;margin:12px 0}
nav.toc ol{margin:.3em 0;padding-left:1.4em;columns:2 15em}
img{max-width:100%;height:auto;display:block;margin:8px 0;border-radius:4px;background:#fff}
img.narrow{max-width:min(100%,720px)}
audio{width:100%;max-width:560px;display:block}
figure.player{margin:6px 0}
figure.player figcaption{font-size:.9rem;font-weight:600}
dl.kv{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:.4em 0}
dl.kv dt{color:var(--muted)}dl.kv dd{margin:0;overflow-wrap:anywhere}
dl.defs dt{font-weight:600;font-family:ui-monospace,monospace;font-size:.9rem}dl.defs dd{margin:0 0 .6em 1em}
.cols{display:grid;grid-template-columns:repeat(auto-fit,minmax(250px,1fr));gap:0 24px}
.clip,.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:10px 14px;margin:12px 0}
.pick{display:grid;grid-template-columns:minmax(0,560px) auto;gap:4px 12px;align-items:end}
.timeline{display:grid;grid-auto-flow:column;grid-auto-columns:minmax(240px,1fr);gap:10px;overflow-x:auto;
padding-bottom:6px}
.timeline .card{margin:0}
.trials{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:12px}
.trials .card{margin:0}
.metrics{display:grid;grid-template-columns:repeat(auto-fill,minmax(210px,1fr));gap:1px 16px;font-size:.88rem;
font-variant-numeric:tabular-nums;margin-top:6px}
.metrics .k{color:var(--muted)}.metrics .k[title]{text-decoration:underline dotted;cursor:help}
.flag{display:inline-block;padding:0 .55em;border-radius:1em;font-size:.8rem;font-weight:600;margin:2px 4px 2px 0;
vertical-align:middle}
.flag.bad{color:var(--bad);background:var(--badbg)}.flag.warn{color:var(--warn);background:var(--warnbg)}
.flag.ok{color:var(--ok);background:var(--okbg)}.flag.none{color:var(--muted);background:var(--card);font-weight:400}
.missing{border-left:4px solid var(--warn);background:var(--warnbg);padding:4px 14px;border-radius:4px;margin:12px 0}
.missing h2{border:0;margin:.4em 0;font-size:1.05rem}
.gone{color:var(--bad);font-size:.9rem}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch;max-width:100%}
table{border-collapse:collapse;font-size:.86rem;font-variant-numeric:tabular-nums}
th,td{padding:4px 8px;border-bottom:1px solid var(--line);text-align:left;white-space:nowrap}
td.num{text-align:right}
thead th{position:sticky;top:0;background:var(--bg)}
th button{font:inherit;font-weight:600;color:inherit;background:none;border:0;padding:0;cursor:pointer}
th[aria-sort=ascending] button::after{content:" ▲"}th[aria-sort=descending] button::after{content:" ▼"}
button.playall{font:inherit;padding:4px 12px;border-radius:6px;border:1px solid var(--line);background:var(--card);
color:var(--fg);cursor:pointer}
footer{margin-top:3em}
@media (max-width:640px){main{padding:8px 10px 40px}h1{font-size:1.3rem}.pick{grid-template-columns:1fr}
dl.kv{grid-template-columns:1fr}dl.kv dt{margin-top:.4em}}
"""

_JS = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  var heads = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads, function (th, col) {
    th.querySelector('button').addEventListener('click', function () {
      var asc = th.getAttribute('aria-sort') !== 'ascending';
      Array.prototype.forEach.call(heads, function (h) { h.removeAttribute('aria-sort'); });
      th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var value = function (row) {
        var c = row.cells[col], v = c.hasAttribute('data-v') ? c.getAttribute('data-v') : c.textContent.trim();
        var n = Number(v);
        return v === '' ? null : (isNaN(n) ? v.toLowerCase() : n);
      };
      rows.sort(function (a, b) {
        var x = value(a), y = value(b);
        if (x === null || y === null) { return x === y ? 0 : (x === null ? 1 : -1); }  // blanks last
        if (typeof x !== typeof y) { x = String(x); y = String(y); }
        return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
document.querySelectorAll('button.playall').forEach(function (button) {
  button.addEventListener('click', function () {
    var players = document.querySelectorAll('#' + button.getAttribute('data-target') + ' audio');
    players.forEach(function (a, i) {
      a.onended = function () { var next = players[i + 1]; if (next) { next.currentTime = 0; next.play(); } };
    });
    if (players.length) { players[0].currentTime = 0; players[0].play(); }
  });
});
"""
