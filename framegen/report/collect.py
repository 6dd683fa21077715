"""What a listening report shows, read from disk: a run's config, metrics rows and clips (``collect_run``), a
sweep's results and trials (``collect_sweep``); clips without a score are scored once (cached in
RUN/report/clips.json) and the figures a page needs drawn when missing (framegen.report.figures).
"""

from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from framegen import runs
from framegen.config import CONFIG_FILE, RunConfig, load_config
from framegen.errors import FramegenError
from framegen.report.figures import clip_figure, path_figure, sweep_heatmap, training_figure

REPORT_FILE = "report.html"
ASSETS_DIR = "report"  # RUN/report/: the page's figures, the prompt WAV and the scores of generated clips
CLIPS_FILE = "clips.json"
CLIPS_VERSION = 1
SAMPLE_PROMPT_FRAMES = 50  # train.py warms its sample clips on min(T, 50) frames from the held-out tail's start


@dataclass
class Clip:
    """One WAV on a page, with what is known about it."""

    kind: str  # "prompt", "sample" or "generated"
    title: str  # e.g. "epoch 3 sample", "best-10s.wav"
    path: Path  # the WAV
    seconds: float | None = None  # None when missing or unreadable
    metrics: dict | None = None  # framegen.evaluate metrics (every key but flags); None when not scored
    flags: tuple[str, ...] | None = None
    note: str = ""  # why it is missing or not scored
    figure: Path | None = None
    path_figure: Path | None = None  # its path through the song, when generate left a sidecar (framegen.songpath)
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
    prompt: Clip | None
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
                                f"to see the song's spectrograms, the prompt, and scores of unscored clips")
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

    prompt = _prompt_clip(assets, song, n_train, cfg) if song is not None else None
    samples = _sample_clips(run_dir, rows, n_train + min(t, SAMPLE_PROMPT_FRAMES) * f)
    generated = []
    paths = sorted((run_dir / "generated").glob("*.wav"))
    paths += [Path(k) for k in scores if os.path.isabs(k) and Path(k).is_file() and Path(k) not in paths]
    for path in paths:  # generate's own folder, and clips it wrote elsewhere (--out) that the CLI handed over
        settings = scores.get(_key(run_dir, path), {}).get("settings") or {}
        facts = {k: v for k, v in settings.items() if k not in ("stream", "streams") or settings.get("streams", 1) > 1}
        generated.append(Clip("generated", path.name, path, facts=facts,
                              compare_start=_generated_start(cfg, song, n_train, settings)))

    for clip in ([prompt] if prompt else []) + samples + generated:
        _examine(clip, run_dir, assets, cfg, song, top, scores)
    song_samples = cfg.song_samples or (len(song) if song is not None else 0)
    for clip in (c for c in generated if c.exists):
        clip.path_figure, why = path_figure(assets, clip.path, config=run_dir / CONFIG_FILE, title=clip.title,
                                            held_out_s=n_train / cfg.data.sample_rate if song_samples else None,
                                            song_s=song_samples / cfg.data.sample_rate or None)
        clip.note = _also(clip.note, why)
    _save_scores(assets, {k: v for k, v in scores.items() if (run_dir / k).is_file()})

    training = None
    if rows:
        training, why = training_figure(assets, rows, metrics=run_dir / runs.METRICS_FILE)
        missing += [why] if why else []
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
    return RunView(run_dir, config, cfg, rows, prompt, samples, generated, training, missing)


def _prompt_clip(assets: Path, song: np.ndarray, n_train: int, cfg: RunConfig) -> Clip:
    """The prompt generate warms on by default (T frames from the start of the held-out tail), as
    report/prompt.wav."""
    rate, f, t = cfg.data.sample_rate, cfg.data.frame_size, cfg.data.seq_len
    path = assets / "prompt.wav"
    piece = song[n_train: n_train + t * f]
    prompt = Clip("prompt", "prompt", path, facts={"starts at": f"{n_train / rate:.2f} s",
                                             "length": f"{t} frames of {f} samples"},
                compare_start=n_train + t * f)
    try:
        if not path.is_file() or _read(path)[0].shape != piece.shape:
            from framegen import audio

            audio.write_wav(path, piece, rate)
    except (OSError, FramegenError) as e:
        prompt.note = f"cannot write {path} ({getattr(e, 'strerror', None) or e})"
    return prompt


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


def _generated_start(cfg: RunConfig, song, n_train: int, settings: dict) -> int | None:
    """Song sample after the prompt a generated clip continued: the default prompt unless the settings say
    otherwise."""
    f = cfg.data.frame_size
    frames = settings.get("prompt_frames") or cfg.data.seq_len
    offset, stream, streams = settings.get("prompt_offset"), settings.get("stream", 0), settings.get("streams", 1)
    if settings.get("prompt_file"):  # prompted from another file: nothing in the song follows it
        return None
    if song is None or (offset is None and streams == 1):
        return n_train + frames * f
    try:
        from framegen.data import stream_prompts
        from framegen.generate import prompt_start

        start = prompt_start(len(song), cfg, offset, frames)
        return int(stream_prompts(song, start, frames, f, streams)[1][stream]) + frames * f
    except (FramegenError, IndexError, ValueError):
        return n_train + frames * f


def _read(path: Path) -> tuple[np.ndarray, int]:
    from framegen.audio import read_audio

    return read_audio(path, allow_nonfinite=True)


def _read_clip(path: Path) -> tuple[np.ndarray, int, float]:
    """(samples, rate, the clip's whole length in seconds): all of a clip, or of a WAV longer than generate's
    scoring window (a streamed hour) only its last ``SCORE_SECONDS``, read without loading the rest, so a page
    costs the same memory whatever was generated."""
    import soundfile as sf

    from framegen.generate import SCORE_SECONDS

    try:
        info = sf.info(str(path))
        frames, rate = int(info.frames), int(info.samplerate)
    except Exception:  # noqa: BLE001 - not a file soundfile reads: the loader says why
        frames, rate = 0, 0
    keep = int(SCORE_SECONDS * rate)
    if not rate or frames <= keep:
        y, rate = _read(path)
        return y, rate, len(y) / rate
    with sf.SoundFile(str(path)) as f:
        f.seek(frames - keep)
        y = f.read(keep, dtype="float32", always_2d=True).mean(axis=1, dtype=np.float32)
    return y, rate, frames / rate


def _also(note: str, more: str) -> str:
    return f"{note}; {more}" if note and more else note or more


def _examine(clip: Clip, run_dir: Path, assets: Path, cfg: RunConfig, song, top, scores: dict) -> None:
    """Fill in the clip's length, its score (when it has none and the song is here) and its figure."""
    from framegen import audio

    if not clip.path.is_file():
        clip.note = clip.note or f"{_key(run_dir, clip.path)} is missing"
        return
    try:
        y, rate, clip.seconds = _read_clip(clip.path)
    except (FramegenError, OSError, RuntimeError) as e:
        clip.note = f"cannot read {clip.path.name}: {e}"
        return
    whole = len(y) / rate >= clip.seconds
    if not whole:  # a long clip: its last part is scored and drawn, nothing in the song to match
        clip.facts = {**clip.facts, "scored and drawn": f"its last {len(y) / rate:g} s"}
        clip.compare_start = None
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
        from framegen import songpath
        from framegen.evaluate import MIN_SECONDS, evaluate

        path = songpath.load(clip.path) if whole else None  # its jumps exactly, when its path covers what is scored
        entry = {**_stamp(clip.path), "settings": clip.facts if clip.kind == "generated" else {}}
        if len(y) < MIN_SECONDS * rate:
            clip.note = entry["error"] = (f"too short to score ({len(y) / rate:.2f} s; evaluation needs "
                                          f"{MIN_SECONDS:g} s)")
            entry["evaluation"] = None
        else:
            try:
                with warnings.catch_warnings():  # numpy/librosa chatter on clips of about a second, not for a page
                    warnings.simplefilter("ignore", RuntimeWarning)
                    d = evaluate(np.clip(y, -1.0, 1.0), rate, song, rate, path).to_dict()
                entry["evaluation"] = d
                clip.metrics, clip.flags = _split_evaluation(d)
            except (FramegenError, ValueError, FloatingPointError, np.linalg.LinAlgError) as e:
                clip.note = entry["error"] = f"not scored: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
                entry["evaluation"] = None
        scores[key] = entry
    elif clip.metrics is None and not clip.note:
        clip.note = "not scored"
    clip.figure, why = clip_figure(assets, clip.kind, clip.path, y, rate, config=run_dir / CONFIG_FILE,
                                   title=clip.title, song=stretch, song_start=clip.compare_start, top=top)
    clip.note = _also(clip.note, why)


# ---------------------------------------------------------------------------------------------------- reading a sweep


def collect_sweep(sweep_dir, *, songs: _Songs | None = None) -> tuple[dict, list, list[str]]:
    """(results.json, [(record, RunView or None)], missing): every trial's run read as ``collect_run`` does."""
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
            except FramegenError as e:
                missing.append(f"trial {r.get('key')}: {e}")
        elif r.get("status") == "done":
            missing.append(f"trial {r.get('key')}: its run directory {run_dir} is missing")
        trials.append((r, view))
    why = sweep_heatmap(sweep_dir, sweep_dir / ASSETS_DIR, doc)
    missing += [why] if why else []
    if not any(v and v.samples for _, v in trials):
        missing.append("no trial has a sample clip: sweeps default to sample_every = 0; set sample_every in the "
                       "experiment's [train] (or pass --sample-every 1) to hear each trial")
    return doc, trials, missing


def _trial_dir(sweep_dir: Path, record: dict) -> Path | None:
    if not record.get("run_dir"):
        return None
    p = Path(record["run_dir"])
    return p if p.is_absolute() else sweep_dir / p
