"""``framegen generate``: continue a run's song into WAV files.

The edge around ``framegen.stream``: finds where the prompt comes from (the song, or any audio file), reads the
run's parts (``inputs_for``: config, checkpoint, codebook, beat grid, unit selection), streams each stream's audio
into ``<out>.partial.wav`` a chunk at a time and renames it when complete, scores what was written, and turns
Ctrl-C, SIGTERM, non-finite audio and a full disk into one-line errors that say what was kept.
"""

import os
import signal
from dataclasses import dataclass, replace
from pathlib import Path

import jax
import numpy as np

from framegen import audio, checkpoint, clock, interrupts, shape, songpath, units, vq
from framegen.config import GenerateConfig, RunConfig, load_config
from framegen.data import split_song, stream_prompts
from framegen.errors import AudioError, Interrupted, RunError, UsageError
from framegen.evaluate import score_clip
from framegen.explain import next_step
from framegen.model import build
from framegen.stream import Inputs, stream_audio

SCORE_SECONDS = 60.0  # a streamed clip is scored on its last minute at most, so scoring does not grow with it


def prompt_start(n_total: int, cfg: RunConfig, offset: float | None, frames: int) -> int:
    """Sample index where the prompt starts in the song: ``offset`` seconds, by default the start of the held-out
    tail (audio never trained on). A prompt past the song's end is one line naming the latest offset."""
    need = frames * cfg.data.frame_size
    if offset is None:
        start = split_song(n_total, cfg.data).n_train
    else:
        start = int(round(offset * cfg.data.sample_rate))
    if start + need > n_total:
        longest = n_total / cfg.data.sample_rate - need / cfg.data.sample_rate
        raise UsageError(
            f"the prompt ({frames} frames from {start / cfg.data.sample_rate:.2f} s) runs past the song's end "
            f"({n_total / cfg.data.sample_rate:.2f} s): pass --prompt-offset of at most {max(longest, 0):.2f}"
        )
    return start


def prompt_file_start(n_file: int, cfg: RunConfig, path, offset: float | None, frames: int, streams: int = 1) -> int:
    """Sample of a prompt file where the (first) prompt starts: ``offset`` seconds, by default so the prompts end
    at the file's end (the output continues the file). A file too short for the prompt is one line naming the
    length it needs."""
    rate, need = cfg.data.sample_rate, frames * cfg.data.frame_size
    start = max(n_file - streams * need, 0) if offset is None else int(round(offset * rate))
    if start + need > n_file:
        where = f" from --prompt-offset {offset:g} s" if offset else ""
        raise AudioError(
            f"prompt file {path} is too short: {n_file / rate:.2f} s at {rate} Hz, but {frames} prompt frames of "
            f"{cfg.data.frame_size} samples{where} need {(start + need) / rate:.2f} s: pass a longer file, or fewer "
            f"--prompt-frames" + (", or a smaller --prompt-offset" if offset else ""))
    return start


def load_prompt_file(path, cfg: RunConfig) -> np.ndarray:
    """A prompt file as the model hears it: mono, resampled to the run's rate and normalised with the **run's**
    constants (its song's mean and std), not the file's own, so a quiet file stays quiet and the model sees the
    levels it was trained on. (N,) float32."""
    y, _ = audio.load_song(path, cfg.data.sample_rate, what="prompt file")
    return audio.normalise(y, cfg.norm)


@dataclass(frozen=True)
class Generated:
    path: Path
    seconds: float
    rms: float
    run_dir: Path
    evaluation: object = None  # framegen.evaluate.Evaluation against the run's song (None when not scored)
    scored_seconds: float = 0.0  # the evaluation is of the clip's last this many seconds (all of it when equal)
    select: str = "model"  # the unit selection it was made with ("off": the model's own output fed back)

    @property
    def flags(self) -> tuple:
        return tuple(self.evaluation.flags) if self.evaluation is not None else ()


# Flags that mean the output failed, and how a warning names them.
LOUD_FLAGS = {"silent": "SILENT", "noise_like": "like NOISE", "stuck": "STUCK in a loop", "static": "like a DRONE"}


def warnings_for(g: Generated) -> list[str]:
    """What to say on stderr about a flagged clip: for one that failed (``LOUD_FLAGS``) how it sounds and how to
    check it, and for any, what to try next (``framegen.explain.next_step``)."""
    bad = [f for f in g.flags if f in LOUD_FLAGS]
    lines = [f"WARNING: {g.path} sounds {' and '.join(LOUD_FLAGS[f] for f in bad)}: check it with 'framegen "
             f"evaluate {g.path} --reference SONG --plot cmp.png' before using it"] if bad else []
    cfg = load_config(g.run_dir)
    hint = next_step(g.flags, output=cfg.model.output, song=cfg.song, select=g.select)
    return lines + ([f"next: {hint}"] if hint else [])


def inputs_for(run_dir: Path, cfg: RunConfig, opts: GenerateConfig = GenerateConfig()) -> Inputs:
    """What ``generate`` streams (``stream_audio``): restores the checkpoint, cuts each stream's prompt from the
    song or ``opts.prompt_file``, and loads the codebook, beat grid and unit selection the run uses."""
    f = cfg.data.frame_size
    frames = opts.prompt_frames or cfg.data.seq_len
    params = checkpoint.load_params(run_dir, cfg, opts.checkpoint)
    song = audio.load_song_for(cfg)
    grid = clock.load(run_dir) if cfg.model.clock == "beat" else None
    if opts.intro:  # the silence before the song: its first frame follows it
        source, prompt_grid = None, grid
        prompts = np.broadcast_to(audio.normalise(np.zeros(f, np.float32), cfg.norm), (opts.streams, 1, f))
        starts = np.full(opts.streams, -f, np.int64)
    elif opts.prompt_file is None:
        source, prompt_grid = None, grid
        start = prompt_start(len(song), cfg, opts.prompt_offset, frames)
        prompts, starts = stream_prompts(song, start, frames, f, opts.streams)  # each its own place
    else:
        source = load_prompt_file(opts.prompt_file, cfg)
        start = prompt_file_start(len(source), cfg, opts.prompt_file, opts.prompt_offset, frames, opts.streams)
        prompts, starts = stream_prompts(source, start, frames, f, opts.streams)
        prompt_grid = clock.of_prompt(source, cfg.data.sample_rate, grid) if grid is not None else None
    cb = vq.codebook_for(run_dir, cfg) if cfg.model.output == "vq" else None  # read once, for both
    emission = vq.emission(cb, song, cfg.model.vq_emit) if cb is not None else None
    selection = units.units_for(run_dir, cfg, song, grid)
    shaped = shape.Shape(intro=opts.intro, ending=opts.ending, loop=opts.loop,
                         toward=tuple(zip(opts.toward, opts.arrivals)))
    if shaped.any and selection is None:
        raise UsageError("--intro, --ending, --toward and --loop arrange the song's own stretches: they need unit "
                         "selection (drop --select off; VQ runs: --vq-emit exemplar)")
    likeness = None
    if shaped.toward:  # how each song beat sounds like each passage to reach: the pull, and the sidecar's curves
        likeness = shape.similarity(song, cfg.data.sample_rate, selection.beats, list(opts.toward))
    return Inputs(model=build(cfg.model, f), params=params, cfg=cfg, prompts=prompts, prompt_starts=starts,
                  prompt_source=source, grid=prompt_grid, emission=emission, units=selection,
                  key=jax.random.key(opts.sample_seed), temperature=opts.temperature, top_k=opts.top_k,
                  crossfade_ms=cfg.train.crossfade_ms, song=song, shape=shaped, likeness=likeness)


def partial_path(path: Path) -> Path:
    """Where a WAV is streamed while it is written: ``x.partial.wav`` beside ``x.wav``, renamed to it when complete,
    kept under this name when generation is interrupted."""
    return path.with_name(f"{path.stem}.partial{path.suffix}")


class _Stopped(Exception):
    """A Ctrl-C or SIGTERM the chunk loop caught: it stops there and closes its WAVs."""

    def __init__(self, signum: int):
        self.signum = signum


def generate(
    run_dir: Path,
    *,
    seconds: float = GenerateConfig.seconds,
    checkpoint_kind: str = GenerateConfig.checkpoint,
    prompt_offset: float | None = None,
    prompt_frames: int | None = None,
    prompt_file: Path | None = None,
    out: Path | None = None,
    overwrite: bool = False,
    streams: int = GenerateConfig.streams,
    temperature: float = GenerateConfig.temperature,
    top_k: int = GenerateConfig.top_k,
    vq_emit: str | None = None,
    crossfade_ms: float | None = None,
    sample_seed: int = GenerateConfig.sample_seed,
    score: bool = True,
    select: str | None = None,
    hold: float | None = None,
    max_run_s: float | None = None,
    precision: str | None = None,
    intro: bool = False,
    ending: bool = False,
    loop: bool = False,
    toward: tuple = (),
    by: tuple = (),
    progress=None,
    chunk_frames: int | None = None,
) -> list[Generated]:
    """Write ``streams`` WAVs of ``seconds`` each continuing the run's song; returns what was written.

    The prompt each stream continues is ``prompt_frames`` frames of the song at ``prompt_offset`` seconds, or of
    ``prompt_file`` (any audio file: resampled to the run's rate and normalised with the run's constants; by default
    its last frames).
    VQ runs sample codes at ``temperature`` among the ``top_k`` likeliest (0: all) from ``sample_seed``.
    ``vq_emit``, ``crossfade_ms``, ``select`` (unit selection: "model", "uniform" or "off"), ``hold``, ``max_run_s``
    and ``precision`` (fp32, bf16, auto) override the run's settings (default: the ones it was trained with). When
    the frames played are the song's own (unit selection, exemplars) their song offsets are saved beside each WAV
    (``framegen.songpath``: ``x.path.npz``).
    Shaping (unit selection only, ``framegen.shape``): ``intro`` starts with the song's opening instead of a
    prompt; ``ending`` ends with the song's own last seconds; ``loop`` makes the end lead seamlessly into the start;
    ``toward`` (song seconds) are passages to arrive at, each by its ``by`` (output seconds; default spread evenly).

    The audio is streamed (``stream_audio``) into ``<out>.partial.wav`` a chunk at a time, so memory does not grow
    with ``seconds``, and renamed to ``out`` when complete: an earlier file at ``out`` is never half-replaced.
    Ctrl-C or SIGTERM stops it at the next chunk border with ``Interrupted``, the partial file closed as a valid
    WAV of what was written; its header is rewritten after every chunk, so even a kill -9 (or a second signal,
    which ends the process at once) leaves one. ``progress(seconds_done,
    seconds_total)`` is called after every chunk. With ``score`` every clip is measured against the song
    (``framegen.evaluate``) on its last ``SCORE_SECONDS`` at most (a bounded sample whatever the length) and its
    flags returned.
    """
    opts = GenerateConfig(seconds=seconds, checkpoint=checkpoint_kind, streams=streams, prompt_offset=prompt_offset,
                          prompt_frames=prompt_frames, prompt_file=prompt_file, temperature=temperature, top_k=top_k,
                          sample_seed=sample_seed, intro=intro, ending=ending, loop=loop, toward=tuple(toward),
                          by=tuple(by))
    run_dir = Path(run_dir)
    cfg = load_config(run_dir).with_options(vq_emit=vq_emit, crossfade_ms=crossfade_ms, select=select, hold=hold,
                                            max_run_s=max_run_s, precision=precision)
    rate = cfg.data.sample_rate
    n_samples = int(round(seconds * rate))
    if 2 * n_samples + 44 > audio.WAV_MAX_BYTES:
        raise UsageError(f"--seconds {seconds:g} at {rate} Hz passes the WAV format's 4 GB limit: pass at most "
                         f"{(audio.WAV_MAX_BYTES - 44) // 2 // rate:,} seconds and generate longer audio in parts")
    out = Path(out) if out else run_dir / "generated" / f"{checkpoint_kind}-{seconds:g}s.wav"
    paths = [out] if streams == 1 else [out.with_name(f"{out.stem}-{i}{out.suffix}") for i in range(streams)]
    for p in paths:
        if p.exists() and not overwrite:
            raise RunError(f"{p} already exists: pass --overwrite to replace it, or choose another --out")

    inputs = inputs_for(run_dir, cfg, opts)
    if not all(bool(np.all(np.isfinite(x))) for x in jax.tree.leaves(inputs.params)):
        # unit selection would still play finite song frames, chosen by NaN scores: refuse, as for NaN audio
        raise RunError(f"the {checkpoint_kind} checkpoint of {run_dir} holds NaN or infinite parameters: nothing was "
                       f"written; try --checkpoint last or retrain with a lower --lr")
    played = []  # each chunk's song offsets of the frames played (S, m), when they are the song's frames
    pieces = stream_audio(inputs, n_samples, chunk_frames=chunk_frames, sources_out=played)
    partials = [partial_path(p) for p in paths]
    keep = int(SCORE_SECONDS * rate) if score else 0
    tails = [np.zeros(0, np.float32) for _ in paths]  # the last ``keep`` samples of each stream, to score
    energy = np.zeros(streams)
    done = 0
    _check_room(paths[0].parent, streams * (2 * n_samples + 44))
    writers = []

    def second(signum):  # what a second signal says (it ends the process at once: framegen.interrupts)
        return (f"interrupted at once by a second {signal.Signals(signum).name}: the whole chunks written are kept "
                f"as a valid WAV in {_partials_named(partials)}")

    with interrupts.stop_flag(second) as caught:
        try:
            for p in partials:
                writers.append(audio.WavStream(p, rate))
            for piece in pieces:
                if caught:  # a signal arrived while this piece was computed: it is dropped
                    raise _Stopped(caught[0])
                if not np.all(np.isfinite(piece)):
                    raise _NonFinite
                try:
                    for w, y in zip(writers, piece):
                        w.write(y)
                except RunError as e:  # disk full, ...: the partial files hold what was written before
                    raise _WriteFailed(str(e)) from None
                done += piece.shape[1]
                clipped = np.clip(piece, -1.0, 1.0)  # what the WAV holds
                energy += np.sum(np.square(clipped, dtype=np.float64), axis=1)
                tails = [np.concatenate([t, y])[-keep:] if keep else t for t, y in zip(tails, clipped)]
                if progress is not None:
                    progress(done / rate, n_samples / rate)
                if caught:  # ... or while it was written
                    raise _Stopped(caught[0])
        except BaseException as e:
            for w in writers:
                w.close()
            done = min((w.frames for w in writers), default=0)  # a stop may fall between a write and ``done +=``
            if not any(w.frames for w in writers):  # nothing to keep: no empty WAV left behind
                for p in partials:
                    p.unlink(missing_ok=True)
            raise _stop_error(e, done / rate, n_samples / rate, partials, paths, run_dir) from None
    for w in writers:
        w.close()
    for part, p in zip(partials, paths):
        if p.exists() and not overwrite:  # appeared while generating
            raise RunError(f"{p} appeared while generating: the new audio is kept in {part}")
        os.replace(part, p)
    routes = [None] * streams
    if played:  # the path through the song, beside each WAV
        positions = np.concatenate(played, axis=1)
        starts = np.broadcast_to(np.asarray(inputs.prompt_starts), (streams,))
        for i, p in enumerate(paths):
            marks = shape.marks(inputs.shape, song_len=len(inputs.song), sample_rate=rate, first=int(positions[i][0]))
            like = {} if inputs.likeness is None else dict(zip(
                [k for k in marks if k.startswith("toward")],
                shape.likeness_of(inputs.likeness, inputs.units.beats, positions[i])))
            routes[i] = songpath.SongPath(positions=positions[i], frame_size=cfg.data.frame_size, sample_rate=rate,
                                          prompt_start=-1 if prompt_file or intro else int(starts[i]), marks=marks,
                                          likeness=like)
            songpath.save(p, routes[i])
    written = []
    raw = audio.denormalise(inputs.song, cfg.norm) if score else None
    for p, tail, e, route in zip(paths, tails, energy, routes):
        if route is not None:  # the frames of the part scored (its jumps, exactly)
            route = replace(route, positions=route.positions[(done - len(tail)) // cfg.data.frame_size :])
        ev = score_clip(tail, raw, rate, route) if score else None
        written.append(Generated(path=p, seconds=done / rate, rms=float(np.sqrt(e / max(done, 1))), run_dir=run_dir,
                                 evaluation=ev, scored_seconds=len(tail) / rate if ev is not None else 0.0,
                                 select=cfg.train.select))
    return written


def _check_room(folder: Path, size: int) -> None:
    """Refuse at once, not hours in, when the disk cannot hold the WAVs."""
    import shutil

    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    if free < size:
        raise RunError(f"the output needs {size / 1e9:.2f} GB and {folder} has {free / 1e9:.2f} GB free: free disk "
                       f"space, choose another --out or generate fewer --seconds")


class _NonFinite(Exception):
    pass


class _WriteFailed(Exception):
    pass


def _partials_named(partials: list[Path]) -> str:
    return str(partials[0]) if len(partials) == 1 else f"{partials[0]} ... {partials[-1].name}"


def _stop_error(e: BaseException, done_s: float, total_s: float, partials: list[Path], paths: list[Path],
                run_dir: Path) -> BaseException:
    """The one-line error a generation stopped by ``e`` ends with, saying what was kept and where."""
    where = _partials_named(partials)
    kept = f"the {done_s:.1f} s written are kept as a valid WAV in {where}" if done_s else "nothing was written"
    if isinstance(e, KeyboardInterrupt | _Stopped):
        signum = e.signum if isinstance(e, _Stopped) else signal.SIGINT
        earlier = " (the earlier file is untouched)" if any(p.exists() for p in paths) else ""
        return Interrupted(f"interrupted by {signal.Signals(signum).name} after {done_s:.1f} s of {total_s:g} s: "
                           f"{kept}{earlier}", exit_code=128 + signum)
    if isinstance(e, _NonFinite):
        after = f" after {done_s:.1f} s" if done_s else ""
        return RunError(f"the model produced NaN or infinite samples from {run_dir}{after}: {kept}; try "
                        f"--checkpoint last or retrain with a lower --lr")
    if isinstance(e, _WriteFailed):
        return RunError(f"{e}; {kept}")
    return e
