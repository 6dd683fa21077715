"""Training runs: the epoch loop in named steps (validate an epoch, write and score a sample, save the epoch),
checkpoints, resume and stopping (time budget, Ctrl-C, divergence); the step itself lives in ``framegen.step``.

Everything of ``framegen.step`` is importable from here too (``from framegen.train import mse_loss``): the
training API a researcher imports stays in one place.
"""

import math
import signal
import time
import warnings
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from framegen import audio, checkpoint, clock, data, interrupts, runs, vq
from framegen.config import RunConfig, load_config, save_config
from framegen.device import resolve_precision
from framegen.errors import FramegenWarning, Interrupted, RunDamaged, RunError, TrainingDiverged
from framegen.evaluate import score_clip
from framegen.model import build
from framegen.step import (  # noqa: F401 - re-exported: the training API
    VAL_CHUNK,
    data_mesh,
    init_state,
    make_eval_chunk,
    make_optimizer,
    make_train_step,
    mse_loss,
    replicate,
    run_keys,
    scheduled_sampling,
    total_steps,
    validate,
    vq_arrays,
    vq_loss,
)
from framegen.stream import Inputs, continue_audio
from framegen.units import units_for


class Reporter:
    """Progress hooks of the training loop; the CLI passes a rich progress bar, the library default is silent."""

    def start(self, *, total_steps: int, start_step: int, steps_per_epoch: int, run_dir: Path) -> None: ...

    def update(self, *, step: int, epoch: int, loss: float) -> None: ...

    def epoch_end(self, row: dict) -> None: ...

    def message(self, text: str) -> None: ...

    def close(self) -> None: ...


class Stopped(StrEnum):
    """Why ``train`` returned (a Ctrl-C or a divergence raises instead)."""

    DONE = "done"  # every epoch (or the max_steps cap) trained
    MAX_MINUTES = "max_minutes"  # the time budget ran out; the partial epoch was scored and saved


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    step: int
    epoch: float
    metrics: list
    stopped: Stopped
    compile_seconds: float  # compiling the train step, excluded from the time budget


def _second_signal(run_dir: Path):
    """What a second Ctrl-C/SIGTERM says: it ends the process at once (``framegen.interrupts``), even mid-save,
    where orbax's atomic rename keeps the previous checkpoint."""
    return lambda signum: (f"stopped at once by a second {signal.Signals(signum).name}; steps since the last "
                           f"completed save are lost: resume with 'framegen train --resume {run_dir}'")


def prepare_song(song_path, cfg: RunConfig) -> tuple[np.ndarray, RunConfig]:
    """Load, check and normalise a song for ``cfg``; the returned config records the song and its norm."""
    y, _ = audio.load_song(song_path, cfg.data.sample_rate)
    data.check_fits(len(y), cfg.data, cfg.model.span)
    norm = audio.norm_of(y)
    cfg = replace(cfg, song=str(Path(song_path).resolve()), song_samples=len(y), norm=norm)
    if cfg.model.clock == "auto":  # decided once from the song, stored resolved in config.json
        cfg = cfg.with_options(clock=clock.choose(y, cfg.data.sample_rate))
    return audio.normalise(y, norm), cfg


@dataclass
class _Run:
    """What the steps of one training run share. Fixed for the run, except the best validation MSE so far, the
    metrics rows and the last finite loss, which the steps update."""

    cfg: RunConfig
    run_dir: Path
    song_norm: np.ndarray  # (N,) host copy: sample clips take their prompt from it and are scored against it
    song: jax.Array  # (N,) the same, replicated on the devices
    split: data.Split
    steps_per_epoch: int
    total: int
    codebook: dict | None  # VQ runs: the arrays the step and validation read
    emission: vq.Emission | None  # VQ runs: what sample clips emit
    beats: jax.Array | None  # beat-clock runs: the song's beat times, replicated, for the step and validation
    grid: object  # beat-clock runs: the clock.BeatGrid sample clips continue
    units: object  # VQ unit selection for sample clips (units.units_for), or None
    eval_chunk: object
    model: object
    reporter: Reporter
    elapsed0: float  # training seconds before this process (a resumed run)
    t0: float  # time.monotonic() when this process started stepping
    best: float
    rows: list
    last_finite: float

    def elapsed(self) -> float:
        return self.elapsed0 + time.monotonic() - self.t0

    def meta(self, step: int, elapsed: float, best: float) -> dict:
        return {"step": step, "epoch": step / self.steps_per_epoch, "elapsed": elapsed, "best_val_mse": best}

    def diverged(self, step: int):
        _diverged(step, self.steps_per_epoch, self.last_finite)


def validate_epoch(run: _Run, params, step: int, train_loss: float, partial: bool) -> dict:
    """The metrics row of the epoch ending at ``step``: its mean training loss and the validation scores."""
    row = {"epoch": math.ceil(step / run.steps_per_epoch), "step": step}
    row["train_ce" if run.codebook is not None else "train_mse"] = train_loss
    row.update(validate(run.eval_chunk, params, run.song, run.split, run.cfg, run.codebook, run.beats))
    row["seconds"] = round(run.elapsed(), 3)
    if partial:
        row["partial"] = True
    if not (math.isfinite(row["val_mse"]) and math.isfinite(train_loss)):
        run.diverged(step)
    return row


def write_sample(run: _Run, params, epoch: int) -> dict:
    """Generate ``samples/epoch-NNN.wav`` from the start of the held-out tail and score it against the song;
    returns its metrics fields (none when the clip is not finite: such audio is never written)."""
    cfg = run.cfg
    n = int(round(cfg.train.sample_seconds * cfg.data.sample_rate))
    prompt = data.prompt_of(run.song_norm, run.split.n_train, min(cfg.data.seq_len, 50), cfg.data.frame_size)
    clip = continue_audio(Inputs(model=run.model, params=params, cfg=cfg, prompts=prompt[None],
                                 prompt_starts=run.split.n_train, grid=run.grid, emission=run.emission,
                                 units=run.units, key=run_keys(cfg.train.seed)["samples"],
                                 crossfade_ms=cfg.train.crossfade_ms), n)[0]
    if not np.all(np.isfinite(clip)):
        return {}
    path = audio.write_wav(run.run_dir / "samples" / f"epoch-{epoch:03d}.wav", clip, cfg.data.sample_rate)
    return {"sample": str(path.relative_to(run.run_dir)), "sample_rms": float(np.sqrt(np.mean(clip**2))),
            **_sample_scores(clip, run.song_norm, cfg)}


def save_epoch(run: _Run, state, row: dict) -> None:
    """Log the row, save ``best`` (when validation improved) and ``last``, redraw loss.png, report the epoch.

    The row goes first and ``last`` is saved last: a kill in between leaves a row past the checkpoint, which resume
    drops and redoes, never an epoch in the checkpoint without its row."""
    step = row["step"]
    runs.append_metrics(run.run_dir, row)
    meta = run.meta(step, row["seconds"], min(run.best, row["val_mse"]))
    if row["val_mse"] < run.best:
        run.best = row["val_mse"]
        checkpoint.save(run.run_dir, "best", state, meta)
    checkpoint.save(run.run_dir, "last", state, meta)
    run.rows.append(row)
    _plot_loss(run.run_dir, run.rows)
    run.reporter.epoch_end(row)


def end_epoch(run: _Run, state, step: int, train_loss: float, partial: bool) -> None:
    """Validate, write and score a sample when one is due, and save the epoch ending at ``step``."""
    row = validate_epoch(run, state["params"], step, train_loss, partial)
    every = run.cfg.train.sample_every
    if every and (row["epoch"] % every == 0 or step >= run.total or partial):
        row.update(write_sample(run, state["params"], row["epoch"]))
    save_epoch(run, state, row)


def _save_and_stop(run: _Run, state, step: int, signum: int):
    """Save ``last`` after a Ctrl-C / SIGTERM (never a diverged state over the last good one) and raise."""
    if not _all_finite(state["params"]):
        run.diverged(step)
    checkpoint.save(run.run_dir, "last", state, run.meta(step, run.elapsed(), run.best))
    run.reporter.close()
    raise Interrupted(f"stopped by {signal.Signals(signum).name} at step {step}; checkpoint saved: "
                      f"resume with 'framegen train --resume {run.run_dir}'", exit_code=128 + signum)


def train(cfg: RunConfig, run_dir: Path, song_norm: np.ndarray, *, resume: bool = False,
          reporter: Reporter | None = None) -> TrainResult:
    """Train (or resume) the run in ``run_dir`` on the normalised song until its epochs or time budget end."""
    reporter = reporter or Reporter()
    # "auto" -> what this device runs fastest; saved resolved, so resume keeps it
    cfg = cfg.with_options(precision=resolve_precision(cfg.model.precision))
    reporter.message(f"precision: {cfg.model.precision}")
    run_dir = runs.make_run_dir(run_dir)
    split = data.check_fits(len(song_norm), cfg.data, cfg.model.span)
    steps_per_epoch = data.steps_per_epoch(split, cfg.data, cfg.train.batch_size)
    total = total_steps(cfg, steps_per_epoch)
    state = init_state(cfg, total)
    meta = {"step": 0, "elapsed": 0.0, "best_val_mse": float("inf")}
    with runs.run_lock(run_dir):
        if resume:  # rows written after the checkpoint (an epoch killed before its save) are done again
            state, meta = resume_from(run_dir, state, steps_per_epoch) or (state, meta)
            runs.truncate_metrics(run_dir, int(meta["step"]))
        save_config(cfg, run_dir)  # on resume too: it may carry more epochs or a new time budget
        mesh = data_mesh(cfg.train.batch_size)
        state, song = replicate((state, jnp.asarray(song_norm)), mesh)
        codebook, emission = _codebook(cfg, run_dir, song_norm, split, reporter)
        grid = _beat_grid(cfg, run_dir, song_norm, reporter)
        beats = None if grid is None else replicate(jnp.asarray(grid.beats, jnp.float32), mesh)
        units = units_for(run_dir, cfg, song_norm, grid) if cfg.train.sample_every else None
        extra = () if codebook is None and beats is None else (
            None if codebook is None else replicate(codebook, mesh), beats)
        t_compile = time.monotonic()
        step_fn = make_train_step(cfg, split, total).lower(state, song, *extra).compile()
        compile_seconds = time.monotonic() - t_compile
        rows = runs.read_metrics(run_dir)
        last_finite = float("nan")
        if rows and isinstance(rows[-1].get("train_mse"), float):
            last_finite = rows[-1]["train_mse"]  # a resumed run: its last epoch's mean loss
        run = _Run(cfg=cfg, run_dir=run_dir, song_norm=song_norm, song=song, split=split,
                   steps_per_epoch=steps_per_epoch, total=total, codebook=codebook, emission=emission,
                   beats=beats, grid=grid, units=units,
                   eval_chunk=make_eval_chunk(cfg), model=build(cfg.model, cfg.data.frame_size), reporter=reporter,
                   elapsed0=float(meta["elapsed"]), t0=0.0, rows=rows, last_finite=last_finite,
                   best=float("inf") if meta["best_val_mse"] is None else float(meta["best_val_mse"]))
        step = start_step = int(state["step"])
        deadline = None if cfg.train.max_minutes is None else cfg.train.max_minutes * 60 - run.elapsed0
        reporter.start(total_steps=total, start_step=start_step, steps_per_epoch=steps_per_epoch, run_dir=run_dir)
        run.t0 = time.monotonic()
        loss_sum, loss_count = jnp.zeros(()), 0
        stopped = Stopped.DONE

        def epoch_done(partial: bool):
            nonlocal loss_sum, loss_count
            end_epoch(run, state, step, float(loss_sum) / max(loss_count, 1), partial)
            loss_sum, loss_count = jnp.zeros(()), 0

        with interrupts.stop_flag(_second_signal(run_dir)) as caught:  # checked between steps
            while step < total:
                state, loss = step_fn(state, song, *extra)
                step += 1
                loss_count += 1
                loss_sum = loss_sum + loss  # stays on device: no sync
                if step % cfg.train.log_every == 0 or step % steps_per_epoch == 0 or step == total:
                    last_loss = float(loss)  # the only host sync between epochs
                    if not math.isfinite(last_loss):
                        run.diverged(step)
                    run.last_finite = last_loss
                    reporter.update(step=step, epoch=math.ceil(step / steps_per_epoch), loss=last_loss)
                if step % steps_per_epoch == 0:
                    epoch_done(partial=False)
                if caught:
                    _save_and_stop(run, state, step, caught[0])
                if deadline is not None and time.monotonic() - run.t0 >= deadline:
                    if step % steps_per_epoch != 0:
                        epoch_done(partial=True)
                    stopped = Stopped.MAX_MINUTES
                    break
            if stopped == Stopped.DONE and step > start_step and step % steps_per_epoch != 0:
                epoch_done(partial=True)  # a max_steps cap ending mid-epoch: score and save the end too
        reporter.close()
    return TrainResult(run_dir=run_dir, step=step, epoch=step / steps_per_epoch, metrics=rows, stopped=stopped,
                       compile_seconds=compile_seconds)


SAMPLE_SCORES = ("audible_ratio", "loudness_ratio", "noise_likeness", "frechet_ratio", "novelty", "loop_period_s",
                 "pulse_ratio", "rhythm_similarity", "continuity_ratio", "tempo_match", "transition",
                 "transition_jumps", "jump_rate", "transition_real", "transition_shuffled", "change_ratio")


def _sample_scores(clip: np.ndarray, song_norm: np.ndarray, cfg: RunConfig) -> dict:
    """``sample_*`` metrics.jsonl fields: the sample clip scored by framegen.evaluate against the song.

    A clip evaluation cannot score (shorter than a second: raise --sample-seconds) records why instead; scoring
    never stops training."""
    from framegen.errors import FramegenError

    try:
        ev = score_clip(clip, audio.denormalise(song_norm, cfg.norm), cfg.data.sample_rate)
    except (FramegenError, ValueError, FloatingPointError, np.linalg.LinAlgError) as e:
        return {"sample_eval_error": str(e).splitlines()[0][:200] if str(e) else type(e).__name__}
    if ev is None:
        return {"sample_eval_error": "clip shorter than evaluation needs: raise --sample-seconds"}
    return {**{f"sample_{k}": getattr(ev, k) for k in SAMPLE_SCORES}, "sample_flags": list(ev.flags)}


def _codebook(cfg: RunConfig, run_dir: Path, song_norm: np.ndarray, split: data.Split, reporter):
    """VQ runs: (codebook arrays for the step, ``vq.Emission`` for sample clips); (None, None) for MSE runs.

    The codebook is fitted once on the training part and saved as ``codebook.npz`` before the first step; a resumed
    run reloads it (the fit is deterministic, but reloading is cheaper and survives a change of framegen)."""
    m = cfg.model
    if m.output != "vq":
        return None, None
    if vq.exists(run_dir):
        cb = vq.codebook_for(run_dir, cfg)
    else:
        t_fit = time.monotonic()
        cb = vq.fit(song_norm, split.n_train, frame_size=cfg.data.frame_size, k=m.codebook,
                    key=run_keys(cfg.train.seed)["codebook"], kind=m.codebook_kind)
        vq.save(run_dir, cb)
        reporter.message(f"fitted a {m.codebook_kind} codebook of {m.codebook} codes in "
                         f"{time.monotonic() - t_fit:.1f} s ({int((cb.counts == 0).sum())} unused)")
    return vq_arrays(cb), vq.emission(cb, song_norm, m.vq_emit)


def _beat_grid(cfg: RunConfig, run_dir: Path, song_norm: np.ndarray, reporter):
    """Runs with a beat clock: the song's beat grid, tracked once and kept in ``beats.npz`` (resume reads it)."""
    if cfg.model.clock != "beat":
        return None
    if (Path(run_dir) / clock.BEATS_FILE).is_file():
        return clock.load(run_dir)
    grid = clock.track(song_norm, cfg.data.sample_rate)
    if grid is None:
        raise RunError("the beat tracker found no beats in the song: train with --clock none")
    clock.save(run_dir, grid)
    reporter.message(f"beat clock: {grid.tempo_bpm:.1f} bpm, {len(grid.beats)} beats tracked")
    return grid


def resume_from(run_dir: Path, like: dict, steps_per_epoch: int) -> tuple[dict, dict] | None:
    """(state, meta) a resumed run continues from: ``checkpoints/last``; ``best``, with a warning, when ``last`` is
    damaged or missing (the steps after ``best`` are trained again); None when it has neither (killed before its
    first save: it starts over). Both unusable: ``RunDamaged`` saying how to start over."""
    where = Path(run_dir) / "checkpoints"
    over = (f"start the run over by removing {where} and running 'framegen train --resume {run_dir}', or train a "
            f"new run")
    why = None
    if checkpoint.exists(run_dir, "last"):
        try:
            return checkpoint.restore(run_dir, "last", like)
        except RunDamaged as e:
            why = e.reason
    if not checkpoint.exists(run_dir, "best"):
        if why is None:
            return None
        raise RunDamaged(f"{where / 'last'} is damaged ({why}) and the run has no best checkpoint: {over}", why)
    try:
        state, meta = checkpoint.restore(run_dir, "best", like)
    except RunDamaged as e:
        last = f"{where / 'last'} is damaged ({why})" if why else f"{run_dir} has no last checkpoint"
        raise RunDamaged(f"{last} and {where / 'best'} is damaged ({e.reason}): {over}", e.reason) from None
    step, last = int(meta["step"]), checkpoint.latest_step(run_dir, "last")
    at = f"resuming from checkpoints/best at step {step} (epoch {step / steps_per_epoch:.2f})"
    if why is None:
        warnings.warn(f"{run_dir} has no last checkpoint: {at}", FramegenWarning, stacklevel=2)
    else:
        redo = (f"; the {last - step} steps after it, to step {last} (epoch {last / steps_per_epoch:.2f}), are "
                f"trained again" if last > step else ", the same step")
        warnings.warn(f"{where / 'last'} is damaged ({why}): {at}{redo}", FramegenWarning, stacklevel=2)
    return state, meta


def _all_finite(tree) -> bool:
    return all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(tree))


def _diverged(step: int, steps_per_epoch: int, last_finite: float):
    last = f"last finite loss {last_finite:.4g}" if math.isfinite(last_finite) else "no finite loss logged before"
    epoch = math.ceil(step / steps_per_epoch)
    raise TrainingDiverged(
        f"training diverged: the loss became NaN/inf at step {step} (epoch {epoch}), {last}; "
        f"the last good checkpoint is kept: retrain with a lower --lr (e.g. half of it)"
    )


def _plot_loss(run_dir: Path, rows: list) -> None:
    from framegen.plots import plot_loss

    try:
        plot_loss(Path(run_dir) / "loss.png", rows)
    except OSError:
        pass  # a missing plot must never stop training


def resume_config(run_dir: Path, epochs: int | None = None, max_minutes: float | None = None) -> RunConfig:
    """The run's saved config, optionally with more epochs or a new time budget (a run killed before its first
    checkpoint restarts from step 0)."""
    return load_config(run_dir).with_options(epochs=epochs, max_minutes=max_minutes)


def train_song(song_path, cfg: RunConfig, *, run_dir: Path | None = None, runs_root: Path = runs.RUNS_ROOT,
               reporter: Reporter | None = None) -> TrainResult:
    """Load ``song_path``, make a new run directory (or use ``run_dir``) and train it with ``cfg``."""
    song_norm, cfg = prepare_song(song_path, cfg)
    run_dir = Path(run_dir) if run_dir else runs.new_run_dir(song_path, cfg.data.frame_size, cfg.data.seq_len,
                                                             runs_root)
    if (run_dir / "config.json").exists():
        raise RunError(f"{run_dir} already holds a run: continue it with 'framegen train --resume {run_dir}' "
                       f"or pass another --run-dir")
    return train(cfg, run_dir, song_norm, reporter=reporter)


def resume_run(run_dir: Path, *, epochs: int | None = None, max_minutes: float | None = None,
               reporter: Reporter | None = None) -> TrainResult:
    """Continue a run from its last checkpoint: same epoch, step, optimizer state and data order."""
    cfg = resume_config(run_dir, epochs, max_minutes)
    return train(cfg, Path(run_dir), audio.load_song_for(cfg), resume=True, reporter=reporter)

