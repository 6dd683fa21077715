"""Sweep plans: every cell of the grid decided before anything runs: skipped (song too short, memory, budget) with
a reason, done earlier, resumed, or to run, with its batch, step budget and memory estimate.
"""

import math
from dataclasses import dataclass
from pathlib import Path

from framegen.config import DataConfig, ModelConfig, RunConfig, load_config, parse_tiers, span_of
from framegen.errors import RunError, UsageError
from framegen.sweep.results import RESULTS_FILE, RESULTS_ROOT, gb, load_results
from framegen.sweep.spec import SweepSpec, run_config

UNBOUNDED_STEPS = 10**8  # the step count of a time-budgeted trial: its clock, not its epochs, stops it
MEMORY_HEADROOM = 0.8  # plan against 80% of what is available: the estimate is rough and other programs run too


def estimate_memory(*, frame_size: int, seq_len: int, batch_size: int, hidden: int, layers: int,
                    song_samples: int, out_dim: int = 0, tiers=(), tier_hidden: int = ModelConfig.tier_hidden,
                    tier_layers: int = ModelConfig.tier_layers) -> int:
    """Rough bytes one training step needs on the device (float32), fitted to peak RSS on XLA CPU (jax 0.10).

    - B*T*F frame tensors: the gathered batch, inputs, targets, predictions and their gradients: ~6 of them;
    - L*B*T*H hidden tensors: per GRU layer the saved states, the input gates (3H) and their gradients: ~10;
    - 4 copies of the parameters (params, gradients, Adam's two moments), the song itself,
    - a validation chunk (64 examples, forward only: 3 frame tensors and 4 hidden tensors),
    - 300 MB of runtime (XLA, compiled code).
    Tiers (ratios R_k, ``tier_hidden`` units, ``tier_layers``) add their parameters, 16 hidden tensors per tier
    layer at the tier's T / (R_1...R_k) steps, the inputs' spectra (1.5 frame tensors: rFFT and power) and the
    upsampled conditioning of each tier below and its gradient (2 gate tensors, 3H wide; the frame GRU's only when
    its layer is not chunked). The measured peaks it was fitted to: experiments/README.md (sweep feasibility).
    """
    f, t, b, h, n_l = frame_size, seq_len, batch_size, hidden, layers
    out = out_dim or f
    params = (f * 3 * h + (n_l - 1) * h * 3 * h + n_l * (3 * h * h + 6 * h) + h * out + out)
    tier_floats = 0  # per example, the tower's training tensors
    if tiers:
        from framegen.gru import GX_BYTES  # above it the frame GRU's conditioning is made chunk by chunk

        ht, lower, below, steps = tier_hidden, f, h, t
        tier_floats = 1.5 * t * f + (6 * t * h if t * b * 3 * h * 4 <= GX_BYTES else 0)
        for k, r in enumerate(tiers):
            steps //= r
            params += r * lower * ht + ht + tier_layers * (6 * ht * ht + 6 * ht) + r * 3 * below * (ht + 1)
            tier_floats += 16 * tier_layers * steps * ht + (6 * steps * ht if k + 1 < len(tiers) else 0)
            lower, below = ht, ht
    train_floats = 6 * b * t * max(f, out) + b * (10 * n_l * t * h + tier_floats)
    val = min(64, max(1, b))
    val_floats = 3 * val * t * max(f, out) + val * (4 * n_l * t * h + 0.4 * tier_floats)
    floats = song_samples + 4 * params + max(train_floats, val_floats)
    return int(4 * floats + 300e6)


def available_memory() -> tuple[int | None, str]:
    """(bytes, where from) of the memory a trial can use: the accelerator's limit, else the host's available RAM."""
    try:
        import jax

        dev = jax.devices()[0]
        stats = dev.memory_stats() if dev.platform != "cpu" else None
        if stats and stats.get("bytes_limit"):
            return int(stats["bytes_limit"]), f"{dev.device_kind} memory limit"
    except Exception:  # noqa: BLE001 - no backend information: fall back to the host
        pass
    try:
        import psutil

        return int(psutil.virtual_memory().available), "available RAM (psutil)"
    except Exception:  # noqa: BLE001 - a platform psutil cannot read: plan without a limit
        return None, "unknown"


@dataclass
class Trial:
    frame_size: int
    seq_len: int
    status: str  # "run", "resume", "done" (recorded earlier), "failed" (recorded earlier), "skipped"
    config: RunConfig | None = None  # song fields unset
    reason: str = ""
    samples_per_step: int = 0
    max_steps: int | None = None
    batch_size: int = 0
    batch_reduced_from: int | None = None
    est_memory: int = 0
    record: dict | None = None  # the earlier record, for done/failed
    tiers: tuple | None = None  # this trial's value of the sweep's tiers axis (None: the sweep has none)

    @property
    def key(self) -> str:
        return trial_key(self.frame_size, self.seq_len, self.tiers)


def trial_key(frame_size: int, seq_len: int, tiers: tuple | None = None) -> str:
    """f<F>-t<T>, and on a sweep with a tiers axis -flat or -tiers8x4."""
    if tiers is None:
        return f"f{frame_size}-t{seq_len}"
    return f"f{frame_size}-t{seq_len}-" + ("tiers" + "x".join(map(str, tiers)) if tiers else "flat")


@dataclass
class SweepPlan:
    spec: SweepSpec
    sweep_dir: Path
    song: str  # absolute path
    song_samples: int
    sample_rate: int
    val_samples: int
    memory_limit: int | None
    memory_source: str
    trials: list

    @property
    def to_run(self) -> list:
        return [trial for trial in self.trials if trial.status in ("run", "resume")]


def _song_needed(cfg: DataConfig) -> int:
    """The shortest song (samples) that holds one example in training and one in the held-out tail."""
    from framegen import data

    n = math.ceil(cfg.example_samples / min(cfg.val_fraction, 1 - cfg.val_fraction))
    while not data.fits(n, cfg):  # rounding of the split
        n += 1
    return n


def _memory(cfg: RunConfig, batch_size: int, song_samples: int) -> int:
    m = cfg.model
    return estimate_memory(frame_size=cfg.data.frame_size, seq_len=cfg.data.seq_len, batch_size=batch_size,
                           hidden=m.hidden, layers=m.layers, song_samples=song_samples,
                           out_dim=m.codebook if m.output == "vq" else 0, tiers=m.tiers, tier_hidden=m.tier_hidden,
                           tier_layers=m.tier_layers)


def _config_core(cfg: RunConfig) -> dict:
    d = cfg.to_dict()
    return {k: d[k] for k in ("data", "model", "train")}


def _same_settings(saved: RunConfig, planned: RunConfig) -> bool:
    """Whether a trial's run directory was trained with the planned settings. A planned precision "auto" is
    resolved by the machine that trains the trial (a Ray worker may have a GPU the planner lacks), so it matches
    whichever precision the run saved."""
    if planned.model.precision == "auto":
        planned = planned.with_options(precision=saved.model.precision)
    return _config_core(saved) == _config_core(planned)


def plan_sweep(spec: SweepSpec, out: Path | None = None, *, retry_failed: bool = False) -> SweepPlan:
    """Decide every cell before anything runs: skipped (song, memory, budget) with a reason, done, or to run."""
    from framegen import audio, data
    from framegen.train import total_steps

    if not spec.song:
        raise UsageError("no song given: pass --song FILE (or set song in [sweep] of the experiment file)")
    song = Path(spec.song).resolve()
    sweep_dir = Path(out) if out else RESULTS_ROOT / spec.name
    base = spec.options_for(spec.frame_sizes[0], spec.seq_lens[0])
    rate = base.get("sample_rate", DataConfig.sample_rate)
    y, _ = audio.load_song(song, rate)
    n = len(y)
    del y
    if spec.memory_gb is not None:
        limit, source = int(spec.memory_gb * 1e9), "memory_gb of the sweep"
    else:
        limit, source = available_memory()
    earlier = {r["key"]: r for r in load_results(sweep_dir)["trials"]} if (sweep_dir / RESULTS_FILE).is_file() \
        else {}
    trials = []
    for f, t, tiers in [(f, t, k) for f in spec.frame_sizes for t in spec.seq_lens for k in spec.tier_sets or [None]]:
        opts = spec.options_for(f, t)
        if tiers is not None:
            opts = {**opts, "tiers": tiers}
        span = span_of(parse_tiers(opts.get("tiers")))
        if t % span:  # a tower needs whole spans: this cell cannot be built
            trials.append(Trial(f, t, "skipped", reason=f"T={t} is not a multiple of the tiers' product {span}",
                                tiers=tiers))
            continue
        cfg = run_config(f, t, opts)
        trial = Trial(f, t, "run", batch_size=cfg.train.batch_size, tiers=tiers)
        trials.append(trial)
        split = data.split_song(n, cfg.data)
        reasons = []
        if not data.fits(n, cfg.data):
            reasons.append(f"needs {_song_needed(cfg.data):,} samples of song (one F x (T+1) example in its "
                           f"held-out {cfg.data.val_fraction:.0%}), song has {n:,}")
        b = cfg.train.batch_size
        usable = None if limit is None else int(MEMORY_HEADROOM * limit)
        if usable is not None and _memory(cfg, b, n) > usable:
            while spec.auto_batch and b > 1 and _memory(cfg, b, n) > usable:
                b //= 2
            if _memory(cfg, b, n) > usable:
                reasons.append(f"needs ~{gb(_memory(cfg, b, n))} of memory at batch {b}, {gb(usable)} usable")
        if spec.budget.kind == "samples" and b * t * f > spec.budget.amount:
            if spec.auto_batch and t * f <= spec.budget.amount:
                b = int(spec.budget.amount // (t * f))
            else:
                reasons.append(f"one step (B x T x F) is {b * t * f:,} samples, over the budget")
        trial.est_memory = _memory(cfg, b, n)
        if reasons:
            trial.status, trial.reason = "skipped", "; ".join(reasons)
            continue
        if b != cfg.train.batch_size:
            trial.batch_reduced_from = cfg.train.batch_size
        trial.batch_size = b
        trial.samples_per_step = b * t * f
        steps_per_epoch = data.steps_per_epoch(split, cfg.data, b)
        if spec.budget.kind == "samples":
            steps = math.ceil(spec.budget.amount / trial.samples_per_step)
            extra = dict(batch_size=b, max_steps=steps, epochs=max(1, math.ceil(steps / steps_per_epoch)))
        else:
            epochs = opts.get("epochs") or max(1, math.ceil(UNBOUNDED_STEPS / steps_per_epoch))
            extra = dict(batch_size=b, max_minutes=spec.budget.amount / 60, epochs=epochs)
        trial.config = run_config(f, t, opts, **extra)
        trial.max_steps = total_steps(trial.config, steps_per_epoch) if spec.budget.kind == "samples" else None
        _resolve_earlier(trial, sweep_dir, earlier.get(trial.key), str(song), n, retry_failed)
    val_fraction = base.get("val_fraction", DataConfig.val_fraction)
    val = data.split_song(n, DataConfig(sample_rate=rate, val_fraction=val_fraction)).n_val
    return SweepPlan(spec=spec, sweep_dir=sweep_dir, song=str(song), song_samples=n, sample_rate=rate,
                     val_samples=val, memory_limit=limit, memory_source=source, trials=trials)


def _resolve_earlier(trial: Trial, sweep_dir: Path, record: dict | None, song: str, n: int, retry: bool) -> None:
    """done / failed (kept) / resume / run, refusing a run directory trained with other settings."""
    run_dir = sweep_dir / trial.key
    has_run = (run_dir / "config.json").is_file()
    if has_run:
        saved = load_config(run_dir)
        if not _same_settings(saved, trial.config) or saved.song != song or saved.song_samples != n:
            what = "another song" if (saved.song != song or saved.song_samples != n) else "other settings"
            raise RunError(f"{run_dir} was trained on {what} than this sweep plans: pass --out to start a new "
                           f"sweep, or remove that directory to retrain it")
    status = (record or {}).get("status")
    if status == "failed" and not retry:
        trial.status, trial.record = "failed", record
        trial.reason = "failed earlier (pass --retry-failed to run it again): " + record.get("error", "")
    elif has_run and status == "done":
        trial.status, trial.record = "done", record
    elif has_run:
        trial.status = "resume"  # unfinished, interrupted, or failed and retried: train() restores checkpoints/last
    # else: nothing there yet ("run"); a recorded trial whose directory was removed runs again


def format_plan(plan: SweepPlan) -> str:
    """The plan as plain text: one line per cell, then why cells are skipped."""
    spec = plan.spec
    rate = plan.sample_rate
    cells = len(plan.trials)
    lines = [
        f"sweep {spec.name}: {len(spec.frame_sizes)} frame sizes x {len(spec.seq_lens)} sequence lengths = {cells} "
        f"trials on {Path(plan.song).name} ({plan.song_samples:,} samples = {plan.song_samples / rate:.1f} s at "
        f"{rate} Hz; validation on the last {plan.val_samples:,})",
        f"budget: {spec.budget.describe()}",
        f"memory: planned against {gb(plan.memory_limit) if plan.memory_limit else 'unknown'} "
        f"({plan.memory_source}), {MEMORY_HEADROOM:.0%} of it usable"
        + ("; batch may be reduced (auto_batch)" if spec.auto_batch else ""),
        f"results: {plan.sweep_dir}/",
        "",
        f"{'F':>6} {'T':>6} {'batch':>6} {'steps':>8} {'samples/step':>13} {'samples':>14} {'memory':>9}  status",
    ]
    for trial in plan.trials:
        batch = f"{trial.batch_size}" + ("*" if trial.batch_reduced_from else "") if trial.status != "skipped" else "-"
        steps = f"{trial.max_steps:,}" if trial.max_steps else ("-" if trial.status == "skipped" else "timed")
        seen = f"{trial.max_steps * trial.samples_per_step:,}" if trial.max_steps else "-"
        sps = f"{trial.samples_per_step:,}" if trial.samples_per_step else "-"
        mem = gb(trial.est_memory) if trial.est_memory else "-"
        status = {"run": "run", "resume": "resume", "done": "done (kept)", "failed": "failed (kept)",
                  "skipped": "skipped"}[trial.status]
        lines.append(f"{trial.frame_size:>6} {trial.seq_len:>6} {batch:>6} {steps:>8} {sps:>13} {seen:>14} {mem:>9}  "
                     f"{status}")
    reduced = [trial for trial in plan.trials if trial.batch_reduced_from]
    if reduced:
        lines.append("* batch reduced from " + ", ".join(f"{r.key}: {r.batch_reduced_from} -> {r.batch_size}"
                                                         for r in reduced))
    skipped = [trial for trial in plan.trials if trial.status in ("skipped", "failed")]
    if skipped:
        lines.append("")
        lines.append("not run:")
        lines.extend(f"  {trial.key}: {trial.reason}" for trial in skipped)
        hints = []
        if any("of memory" in trial.reason for trial in skipped) and not spec.auto_batch:
            hints.append("memory: lower batch_size for those cells ([frame_size.N] batch_size = ...) or set "
                         "auto_batch = true")
        if any("over the budget" in trial.reason for trial in skipped):
            hints.append("budget: raise budget_samples" + ("" if spec.auto_batch else " or set auto_batch = true"))
        lines.extend(f"  ({h})" for h in hints)
    lines.append("")
    lines.append(f"{len(plan.to_run)} to run ({sum(trial.status == 'resume' for trial in plan.trials)} resumed), "
                 f"{sum(trial.status == 'done' for trial in plan.trials)} done earlier, "
                 f"{sum(trial.status == 'skipped' for trial in plan.trials)} skipped")
    return "\n".join(lines)
