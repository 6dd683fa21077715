"""Sweeps over frame size F x sequence length T: the plan (feasibility, equal budgets), executors (local, Ray),
and the results (results.json/.csv/.md, heatmap.png, a ``best`` link). Every trial is a normal run directory.

The flow: ``make_spec`` (experiment TOML + CLI flags) -> ``plan_sweep`` (song length, memory estimate, budget per
trial, what is already done) -> ``run_sweep`` (executor runs ``run_trial`` per cell; results rewritten after each).
"""

import csv
import dataclasses
import datetime as _dt
import io
import json
import math
import os
import platform
import threading
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from framegen.config import DataConfig, ModelConfig, RunConfig, TrainConfig, load_config
from framegen.errors import FramegenError, Interrupted, RunError, UsageError

RESULTS_ROOT = Path("experiments/results")
RESULTS_FILE = "results.json"
RESULTS_VERSION = 1

# Every option a trial takes, by the config section it lives in: the config fields, i.e. the names of the
# `framegen train` flags with underscores (the axes and the budget's fields are the sweep's own).
SWEEP_OWNED = ("frame_size", "seq_len", "max_steps", "max_minutes")
SECTIONS = {
    section: tuple(f.name for f in dataclasses.fields(cls) if f.name not in SWEEP_OWNED)
    for section, cls in (("data", DataConfig), ("model", ModelConfig), ("train", TrainConfig))
}
OPTIONS = {name: section for section, names in SECTIONS.items() for name in names}
SHARED_ONLY = ("sample_rate", "val_fraction")  # one split for all trials: every trial scores the same tail
SWEEP_KEYS = ("name", "song", "frame_sizes", "seq_lens", "budget_samples", "budget_seconds", "auto_batch",
              "memory_gb")

DEFAULT_BUDGET_SAMPLES = 100_000_000  # ~35 passes over a 3-minute song at 16 kHz; minutes per trial on a 2-core CPU
# sample_every: a sample WAV per epoch costs time no trial is scored on; opt in per file. crossfade_ms, hold,
# max_run_s: sweeps have always recorded 0 unless set (not train's VQ defaults), so earlier sweep directories keep
# resuming and VQ trials compare the model alone.
SWEEP_DEFAULTS = {"sample_every": 0, "crossfade_ms": 0.0, "hold": 0.0, "max_run_s": 0.0}
UNBOUNDED_STEPS = 10**8  # the step count of a time-budgeted trial: its clock, not its epochs, stops it
MEMORY_HEADROOM = 0.8  # plan against 80% of what is available: the estimate is rough and other programs run too

STATUSES = ("done", "failed", "skipped", "interrupted", "pending")


# ---------------------------------------------------------------------------------------------------- the spec


@dataclass(frozen=True)
class Budget:
    """What every trial gets the same of: training ``samples`` (targets seen, B*T*F per step) or ``seconds``."""

    kind: str
    amount: float

    def describe(self) -> str:
        if self.kind == "samples":
            return f"{int(self.amount):,} training samples per trial (B x T x F per step)"
        return f"{self.amount:g} s of training per trial (compile time excluded)"


@dataclass(frozen=True)
class SweepSpec:
    """A grid and the options for all its trials; ``overrides`` are per-axis: {("frame_size", 40): {...}}."""

    name: str
    frame_sizes: tuple
    seq_lens: tuple
    budget: Budget
    options: dict = field(default_factory=dict)
    overrides: dict = field(default_factory=dict)
    flags: dict = field(default_factory=dict)  # CLI flags: over the file, per-axis overrides included
    song: str | None = None
    auto_batch: bool = False
    memory_gb: float | None = None
    source: str | None = None

    def options_for(self, frame_size: int, seq_len: int) -> dict:
        """defaults < file < [frame_size.F] < [seq_len.T] < CLI flags."""
        return {**SWEEP_DEFAULTS, **self.options, **self.overrides.get(("frame_size", frame_size), {}),
                **self.overrides.get(("seq_len", seq_len), {}), **self.flags}


def _ints(value, what: str, where: str) -> tuple:
    if isinstance(value, str):
        value = [v for v in value.replace(" ", "").split(",") if v]
    if not isinstance(value, (list, tuple)) or not value:
        raise UsageError(f"{what} in {where} must be a list of whole numbers, e.g. [200, 800]")
    out = []
    for v in value:
        try:
            n = int(v)
        except (TypeError, ValueError):
            raise UsageError(f"{what} in {where}: {v!r} is not a whole number") from None
        if isinstance(v, bool) or (isinstance(v, float) and not v.is_integer()):
            raise UsageError(f"{what} in {where}: {v!r} is not a whole number")
        if n not in out:
            out.append(n)
    return tuple(out)


def _check_options(opts: dict, where: str, section: str | None = None, per_axis: bool = False) -> dict:
    for key in opts:
        if key in ("max_steps", "max_minutes"):
            raise UsageError(f"{key} in {where} is set by the sweep's budget: use budget_samples or budget_seconds "
                             f"in [sweep] instead")
        if key in ("frame_size", "seq_len"):
            raise UsageError(f"{key} in {where} is a sweep axis: list it in [sweep] frame_sizes / seq_lens")
        if key not in OPTIONS:
            raise UsageError(f"unknown option {key!r} in {where}: known are {', '.join(sorted(OPTIONS))}")
        if section and OPTIONS[key] != section:
            raise UsageError(f"{key} in {where} belongs in [{OPTIONS[key]}]")
        if per_axis and key in SHARED_ONLY:
            raise UsageError(f"{key} in {where} must be the same for every trial (one validation tail for all): "
                             f"set it in [data]")
    return dict(opts)


def read_experiment(path) -> dict:
    """The experiment file as {"sweep": {...}, "options": {...}, "overrides": {...}}, every key checked."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"experiment file {path} not found: pass a .toml file such as experiments/quick.toml") \
            from None
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read experiment file {path} ({e})") from None
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"{path} is not valid TOML ({e}): fix the file") from None
    sweep = raw.pop("sweep", {})
    for key in sweep:
        if key not in SWEEP_KEYS:
            raise UsageError(f"unknown key {key!r} in [sweep] of {path}: known are {', '.join(SWEEP_KEYS)}")
    options, overrides = {}, {}
    for section, body in raw.items():
        if section in SECTIONS:
            options.update(_check_options(body, f"[{section}] of {path}", section))
        elif section in ("frame_size", "seq_len") and isinstance(body, dict):
            for value, opts in body.items():
                where = f"[{section}.{value}] of {path}"
                if not isinstance(opts, dict):
                    raise UsageError(f"{where} must be a table of options, e.g. [{section}.{value}] batch_size = 32")
                (n,) = _ints([value], section, where)
                overrides[(section, n)] = _check_options(opts, where, per_axis=True)
        else:
            raise UsageError(f"unknown section [{section}] in {path}: use [sweep], [data], [model], [train], "
                             f"[frame_size.N] or [seq_len.N]")
    return {"sweep": sweep, "options": options, "overrides": overrides}


def make_spec(experiment=None, *, song=None, frame_sizes=None, seq_lens=None, budget_samples=None,
              budget_seconds=None, name=None, auto_batch=None, memory_gb=None, flags=None) -> SweepSpec:
    """A sweep from an experiment file and/or flags; flags win. The name defaults to the file's stem or 'adhoc'."""
    exp = read_experiment(experiment) if experiment else {"sweep": {}, "options": {}, "overrides": {}}
    where = str(experiment) if experiment else "the command line"
    s = exp["sweep"]
    flags = _check_options({k: v for k, v in (flags or {}).items() if v is not None}, "the flags")
    fs = frame_sizes if frame_sizes is not None else s.get("frame_sizes")
    ts = seq_lens if seq_lens is not None else s.get("seq_lens")
    if fs is None or ts is None:
        raise UsageError(f"no grid in {where}: pass --frame-sizes 200,800 --seq-lens 50,100 or set frame_sizes "
                         f"and seq_lens in [sweep]")
    fs, ts = _ints(fs, "frame_sizes", where), _ints(ts, "seq_lens", where)
    if budget_samples is not None or budget_seconds is not None:  # a budget flag replaces the file's budget
        b_samples, b_seconds = budget_samples, budget_seconds
    else:
        b_samples, b_seconds = s.get("budget_samples"), s.get("budget_seconds")
    if b_samples is not None and b_seconds is not None:
        raise UsageError("give one budget: budget_samples (--budget-samples) or budget_seconds (--budget-seconds)")
    if b_seconds is not None:
        if not (isinstance(b_seconds, (int, float)) and math.isfinite(b_seconds) and b_seconds > 0):
            raise UsageError(f"budget_seconds must be a positive number, got {b_seconds}")
        budget = Budget("seconds", float(b_seconds))
    else:
        b_samples = DEFAULT_BUDGET_SAMPLES if b_samples is None else b_samples
        if not (isinstance(b_samples, (int, float)) and math.isfinite(b_samples) and b_samples >= 1):
            raise UsageError(f"budget_samples must be a positive number of samples, got {b_samples}")
        budget = Budget("samples", int(b_samples))
    mem = memory_gb if memory_gb is not None else s.get("memory_gb")
    if mem is not None and not (isinstance(mem, (int, float)) and mem > 0):
        raise UsageError(f"memory_gb must be a positive number of GB, got {mem}")
    return SweepSpec(
        name=name or s.get("name") or (Path(experiment).stem if experiment else "adhoc"),
        frame_sizes=fs, seq_lens=ts, budget=budget, options=exp["options"], overrides=exp["overrides"],
        flags=flags, song=str(song) if song else s.get("song"),
        auto_batch=bool(auto_batch if auto_batch is not None else s.get("auto_batch", False)),
        memory_gb=mem, source=str(experiment) if experiment else None,
    )


def run_config(frame_size: int, seq_len: int, opts: dict, **train_extra) -> RunConfig:
    """The trial's RunConfig (song fields unset) from flat options; ranges are checked by the config classes."""
    return RunConfig.from_options(**{**opts, **train_extra}, frame_size=frame_size, seq_len=seq_len)


# ---------------------------------------------------------------------------------------------------- memory


def estimate_memory(*, frame_size: int, seq_len: int, batch_size: int, hidden: int, layers: int,
                    song_samples: int, out_dim: int = 0) -> int:
    """Rough bytes one training step needs on the device (float32), fitted to peak RSS on XLA CPU (jax 0.10).

    - B*T*F frame tensors: the gathered batch, inputs, targets, predictions and their gradients: ~6 of them;
    - L*B*T*H hidden tensors: per GRU layer the saved states, the input gates (3H) and their gradients: ~10;
    - 4 copies of the parameters (params, gradients, Adam's two moments), the song itself,
    - a validation chunk (64 examples, forward only: 3 frame tensors and 4 hidden tensors),
    - 300 MB of runtime (XLA, compiled code).
    Measured peak RSS (H=256, L=2, a 3-minute song): F=40 T=10000 B=32 7.37 GB (estimate 7.18), F=40 T=4000 B=16
    1.80 GB (1.69), F=4000 T=50 B=128 1.14 GB (1.13), F=800 T=100 B=32 0.62 GB (0.46).
    """
    f, t, b, h, n_l = frame_size, seq_len, batch_size, hidden, layers
    out = out_dim or f
    params = (f * 3 * h + (n_l - 1) * h * 3 * h + n_l * (3 * h * h + 6 * h) + h * out + out)
    train_floats = 6 * b * t * max(f, out) + 10 * n_l * b * t * h
    val = min(64, max(1, b))
    val_floats = 3 * val * t * max(f, out) + 4 * n_l * val * t * h
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
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024, "MemAvailable in /proc/meminfo"
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "available physical pages"
    except (ValueError, OSError, AttributeError):
        return None, "unknown"


def _gb(n: float) -> str:
    if n >= 1e12:
        return f"{n / 1e12:.1f} TB"
    return f"{n / 1e9:.2f} GB" if n < 10e9 else f"{n / 1e9:.0f} GB"


# ---------------------------------------------------------------------------------------------------- the plan


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

    @property
    def key(self) -> str:
        return trial_key(self.frame_size, self.seq_len)


def trial_key(frame_size: int, seq_len: int) -> str:
    return f"f{frame_size}-t{seq_len}"


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
        return [t for t in self.trials if t.status in ("run", "resume")]


def _song_needed(cfg: DataConfig) -> int:
    """The shortest song (samples) that holds one example in training and one in the held-out tail."""
    from framegen import data

    n = math.ceil(cfg.example_samples / min(cfg.val_fraction, 1 - cfg.val_fraction))
    while not data.fits(n, cfg):  # rounding of the split
        n += 1
    return n


def _memory(cfg: RunConfig, batch_size: int, song_samples: int) -> int:
    return estimate_memory(frame_size=cfg.data.frame_size, seq_len=cfg.data.seq_len, batch_size=batch_size,
                           hidden=cfg.model.hidden, layers=cfg.model.layers, song_samples=song_samples,
                           out_dim=cfg.model.codebook if cfg.model.output == "vq" else 0)


def _config_core(cfg: RunConfig) -> dict:
    d = cfg.to_dict()
    return {k: d[k] for k in ("data", "model", "train")}


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
    for f in spec.frame_sizes:
        for t in spec.seq_lens:
            opts = spec.options_for(f, t)
            cfg = run_config(f, t, opts)
            trial = Trial(f, t, "run", batch_size=cfg.train.batch_size)
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
                    reasons.append(f"needs ~{_gb(_memory(cfg, b, n))} of memory at batch {b}, {_gb(usable)} usable")
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
            spe = data.steps_per_epoch(split, cfg.data, b)
            if spec.budget.kind == "samples":
                steps = math.ceil(spec.budget.amount / trial.samples_per_step)
                extra = dict(batch_size=b, max_steps=steps, epochs=max(1, math.ceil(steps / spe)))
            else:
                epochs = opts.get("epochs") or max(1, math.ceil(UNBOUNDED_STEPS / spe))
                extra = dict(batch_size=b, max_minutes=spec.budget.amount / 60, epochs=epochs)
            trial.config = run_config(f, t, opts, **extra)
            trial.max_steps = total_steps(trial.config, spe) if spec.budget.kind == "samples" else None
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
        if _config_core(saved) != _config_core(trial.config) or saved.song != song or saved.song_samples != n:
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
        f"memory: planned against {_gb(plan.memory_limit) if plan.memory_limit else 'unknown'} "
        f"({plan.memory_source}), {MEMORY_HEADROOM:.0%} of it usable"
        + ("; batch may be reduced (auto_batch)" if spec.auto_batch else ""),
        f"results: {plan.sweep_dir}/",
        "",
        f"{'F':>6} {'T':>6} {'batch':>6} {'steps':>8} {'samples/step':>13} {'samples':>14} {'memory':>9}  status",
    ]
    for t in plan.trials:
        batch = f"{t.batch_size}" + ("*" if t.batch_reduced_from else "") if t.status != "skipped" else "-"
        steps = f"{t.max_steps:,}" if t.max_steps else ("-" if t.status == "skipped" else "timed")
        seen = f"{t.max_steps * t.samples_per_step:,}" if t.max_steps else "-"
        sps = f"{t.samples_per_step:,}" if t.samples_per_step else "-"
        mem = _gb(t.est_memory) if t.est_memory else "-"
        status = {"run": "run", "resume": "resume", "done": "done (kept)", "failed": "failed (kept)",
                  "skipped": "skipped"}[t.status]
        lines.append(f"{t.frame_size:>6} {t.seq_len:>6} {batch:>6} {steps:>8} {sps:>13} {seen:>14} {mem:>9}  "
                     f"{status}")
    reduced = [t for t in plan.trials if t.batch_reduced_from]
    if reduced:
        lines.append("* batch reduced from " + ", ".join(f"{t.key}: {t.batch_reduced_from} -> {t.batch_size}"
                                                         for t in reduced))
    skipped = [t for t in plan.trials if t.status in ("skipped", "failed")]
    if skipped:
        lines.append("")
        lines.append("not run:")
        lines.extend(f"  {t.key}: {t.reason}" for t in skipped)
        hints = []
        if any("of memory" in t.reason for t in skipped) and not spec.auto_batch:
            hints.append("memory: lower batch_size for those cells ([frame_size.N] batch_size = ...) or set "
                         "auto_batch = true")
        if any("over the budget" in t.reason for t in skipped):
            hints.append("budget: raise budget_samples" + ("" if spec.auto_batch else " or set auto_batch = true"))
        lines.extend(f"  ({h})" for h in hints)
    lines.append("")
    lines.append(f"{len(plan.to_run)} to run ({sum(t.status == 'resume' for t in plan.trials)} resumed), "
                 f"{sum(t.status == 'done' for t in plan.trials)} done earlier, "
                 f"{sum(t.status == 'skipped' for t in plan.trials)} skipped")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------- one trial


class _PeakRss:
    """Samples this process's resident memory every 0.2 s while a trial runs (ru_maxrss cannot be reset)."""

    def __init__(self):
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    @staticmethod
    def rss() -> int:
        try:
            return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            import resource

            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def _loop(self):
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, self.rss())

    def __enter__(self):
        self.peak = self.rss()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())


def _device_peak() -> int | None:
    try:
        import jax

        dev = jax.devices()[0]
        stats = dev.memory_stats() if dev.platform != "cpu" else None
        return int(stats["peak_bytes_in_use"]) if stats and "peak_bytes_in_use" in stats else None
    except Exception:  # noqa: BLE001 - a statistic, never a reason to fail a trial
        return None


def enable_compile_cache() -> str | None:
    """Keep compiled steps on disk (JAX's persistent compilation cache), so a resumed trial, a re-run or a repeated
    shape loads its step instead of compiling it again. ``FRAMEGEN_COMPILE_CACHE=DIR`` picks the folder (default
    ~/.cache/framegen/jax), ``=off`` turns it off; a cache already configured for JAX is left as it is."""
    import jax

    if jax.config.jax_compilation_cache_dir:
        return jax.config.jax_compilation_cache_dir
    where = os.environ.get("FRAMEGEN_COMPILE_CACHE", "")
    if where.lower() in ("off", "0", "false", "no"):
        return None
    cache_home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    path = Path(where) if where else cache_home / "framegen" / "jax"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None  # a cache is a speed-up, never a reason to fail
    jax.config.update("jax_compilation_cache_dir", str(path))
    return str(path)


def run_trial(job: dict, reporter=None) -> dict:
    """Train (or resume) one cell and return its record. ``job``: key, song, config (dict), run_dir, resume.

    A plain function of picklable arguments, so the local executor and a Ray worker run exactly the same code.
    Errors propagate; the executor records them.
    """
    from framegen.train import prepare_song, train

    enable_compile_cache()
    cfg = RunConfig.from_dict(job["config"])
    song_norm, cfg = prepare_song(job["song"], cfg)
    run_dir = Path(job["run_dir"])
    with _PeakRss() as mem:
        result = train(cfg, run_dir, song_norm, resume=job["resume"], reporter=reporter)
    rows = result.metrics
    if not rows:
        raise RunError(f"{run_dir} finished without a validation row: its metrics.jsonl is empty")
    last = rows[-1]
    d, t = cfg.data, cfg.train
    per_step = t.batch_size * d.seq_len * d.frame_size
    vals = [r["val_mse"] for r in rows if r.get("val_mse") is not None]
    return {
        "status": "done",
        "steps": result.step,
        "epochs": round(result.epoch, 4),
        "samples_seen": result.step * per_step,
        "train_seconds": last.get("seconds"),
        "compile_seconds": round(result.compile_seconds, 3),
        "stopped": result.stopped,
        "train_mse": last.get("train_mse"),
        "val_mse": last["val_mse"],
        "val_snr_db": last["val_snr_db"],
        "zero_mse": last["zero_mse"],
        "copy_mse": last["copy_mse"],
        "score": last["val_mse"] / last["zero_mse"],
        "vs_copy": last["val_mse"] / last["copy_mse"] if last["copy_mse"] else None,
        "best_val_mse": min(vals) if vals else None,
        "peak_rss_bytes": mem.peak,
        "peak_device_bytes": _device_peak(),
    }


def describe_error(e: BaseException) -> str:
    """One line for a failed trial; out-of-memory errors are named as such whatever raised them."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if isinstance(e, MemoryError) or "RESOURCE_EXHAUSTED" in str(e) or "out of memory" in str(e).lower() \
            or type(e).__name__ == "OutOfMemoryError":
        return f"out of memory: {text[:300]}"
    if isinstance(e, FramegenError):
        return text[:400]
    return f"{type(e).__name__}: {text[:300]}"


def _run_trial_safe(job: dict) -> dict:
    """``run_trial`` for a Ray worker: any error becomes a failed record (a worker has no one to raise it to)."""
    try:
        return run_trial(job)
    except Exception as e:  # noqa: BLE001 - recorded, the sweep goes on
        return {"status": "failed", "error": describe_error(e)}


# ---------------------------------------------------------------------------------------------------- records


def _base_record(plan: SweepPlan, trial: Trial) -> dict:
    cfg = trial.config
    rec = {"key": trial.key, "frame_size": trial.frame_size, "seq_len": trial.seq_len, "status": "pending",
           "reason": trial.reason, "error": "", "run_dir": trial.key if cfg else None,
           "budget_kind": plan.spec.budget.kind, "budget": plan.spec.budget.amount,
           "batch_size": trial.batch_size or None, "batch_reduced_from": trial.batch_reduced_from,
           "samples_per_step": trial.samples_per_step or None, "max_steps": trial.max_steps,
           "est_memory_bytes": trial.est_memory or None}
    if cfg:
        rec.update(hidden=cfg.model.hidden, layers=cfg.model.layers, lr=cfg.train.lr, seed=cfg.train.seed)
    if trial.status == "skipped":
        rec["status"] = "skipped"
    return rec


def _job(plan: SweepPlan, trial: Trial) -> dict:
    return {"key": trial.key, "song": plan.song, "config": trial.config.to_dict(),
            "run_dir": str((plan.sweep_dir / trial.key).absolute()), "resume": trial.status == "resume"}


class SweepDisplay:
    """Progress hooks of a sweep; the CLI passes a rich live table, the library default is silent."""

    def start(self, plan: SweepPlan, records: dict) -> None: ...

    def trial_started(self, key: str) -> None: ...

    def trial_reporter(self, key: str):
        """A ``framegen.train.Reporter`` for the trial's steps (local executor only), or None."""
        return None

    def trial_done(self, record: dict) -> None: ...

    def close(self) -> None: ...


def run_sweep(plan: SweepPlan, *, executor: str = "local", address: str | None = None,
              display: SweepDisplay | None = None, command: str = "") -> dict:
    """Run every planned trial, rewriting the results files after each; returns the results document.

    A failing trial is recorded and the sweep goes on; Ctrl-C (Interrupted / KeyboardInterrupt) stops it after
    the running trial's checkpoint is saved, with the results files written, and is raised again.
    """
    from framegen import runs

    display = display or SweepDisplay()
    sweep_dir = runs.make_run_dir(plan.sweep_dir)
    records = {}
    for t in plan.trials:
        records[t.key] = {**_base_record(plan, t), **(t.record or {})} if t.record else _base_record(plan, t)
        if t.status == "failed":
            records[t.key]["status"] = "failed"
    doc = _document(plan, records, command)
    with runs.run_lock(sweep_dir):
        write_results(sweep_dir, doc)
        display.start(plan, records)
        try:
            def done(key, result):
                records[key].update(result)
                records[key]["finished"] = doc["updated"] = _now()
                doc["trials"] = [records[t.key] for t in plan.trials]
                write_results(sweep_dir, doc)
                display.trial_done(records[key])

            if executor == "local":
                _run_local(plan, records, display, done)
            elif executor == "ray":
                _run_ray(plan, records, display, done, address)
            else:
                raise UsageError(f"unknown executor {executor!r}: pass --executor local or --executor ray")
        finally:
            doc["trials"] = [records[t.key] for t in plan.trials]
            doc["updated"] = _now()
            write_results(sweep_dir, doc)
            display.close()
    return doc


def _run_local(plan, records, display, done) -> None:
    for trial in plan.to_run:
        records[trial.key]["status"] = "running"
        display.trial_started(trial.key)
        try:
            result = run_trial(_job(plan, trial), reporter=display.trial_reporter(trial.key))
        except (Interrupted, KeyboardInterrupt) as e:
            done(trial.key, {"status": "interrupted", "error": describe_error(e) if str(e) else "stopped by Ctrl-C"})
            raise Interrupted(
                f"sweep stopped during {trial.key} (its checkpoint is saved); finished trials are recorded in "
                f"{plan.sweep_dir}: run the same command again to resume",
                exit_code=e.exit_code if isinstance(e, Interrupted) else 130,
            ) from None
        except Exception as e:  # noqa: BLE001 - recorded, the sweep goes on
            result = {"status": "failed", "error": describe_error(e)}
        done(trial.key, result)


def _run_ray(plan, records, display, done, address) -> None:
    """One Ray task per trial (one GPU each when the cluster has GPUs); Ray schedules, results come back here."""
    try:
        import ray
    except ImportError:
        raise UsageError("the ray executor needs Ray: pip install \"framegen[ray]\"") from None
    started = not ray.is_initialized()
    if started:
        kwargs = dict(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        if address is None:  # a local Ray on this machine: one task per core
            kwargs["num_cpus"] = os.cpu_count() or 1
        ray.init(**kwargs)
    try:
        gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        remote = ray.remote(num_gpus=gpus, max_retries=0)(_run_trial_safe)
        pending = {}
        for trial in plan.to_run:
            pending[remote.remote(_job(plan, trial))] = trial.key
            records[trial.key]["status"] = "running"
            display.trial_started(trial.key)
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    key = pending.pop(ref)
                    try:
                        result = ray.get(ref)
                    except Exception as e:  # noqa: BLE001 - a worker that died (OOM kill, node lost)
                        result = {"status": "failed", "error": describe_error(e)}
                    done(key, result)
        except KeyboardInterrupt:
            for ref, key in pending.items():
                ray.cancel(ref)  # the trial's last epoch checkpoint is kept; a re-run resumes from it
                records[key]["status"] = "interrupted"
            raise Interrupted("sweep stopped by Ctrl-C; finished trials are recorded: run the same command again "
                              "to resume") from None
    finally:
        if started:
            ray.shutdown()


# ---------------------------------------------------------------------------------------------------- results


def _now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def _machine() -> str:
    try:
        import jax

        dev = jax.devices()[0]
        kind = f"jax {jax.__version__} {dev.platform} ({dev.device_kind})"
    except Exception:  # noqa: BLE001
        kind = "jax unavailable"
    return f"{platform.machine()}, {os.cpu_count()} CPUs, {kind}"


def _document(plan: SweepPlan, records: dict, command: str) -> dict:
    spec = plan.spec
    return {
        "results_version": RESULTS_VERSION,
        "sweep": spec.name,
        "experiment": spec.source,
        "command": command,
        "song": plan.song,
        "song_samples": plan.song_samples,
        "sample_rate": plan.sample_rate,
        "val_samples": plan.val_samples,
        "budget": {"kind": spec.budget.kind, "amount": spec.budget.amount},
        "frame_sizes": list(spec.frame_sizes),
        "seq_lens": list(spec.seq_lens),
        "machine": _machine(),
        "memory_limit_bytes": plan.memory_limit,
        "updated": _now(),
        "trials": [records[t.key] for t in plan.trials],
    }


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


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _clean(v):
    return None if isinstance(v, float) and not math.isfinite(v) else v


CSV_COLUMNS = ("frame_size", "seq_len", "status", "score", "vs_copy", "val_snr_db", "val_mse", "zero_mse", "copy_mse",
               "best_val_mse", "train_mse", "budget_kind", "budget", "samples_seen", "steps", "max_steps",
               "epochs", "batch_size", "batch_reduced_from", "samples_per_step", "train_seconds", "compile_seconds",
               "peak_rss_bytes", "peak_device_bytes", "est_memory_bytes", "hidden", "layers", "lr", "seed",
               "run_dir", "reason", "error")


def best_trial(doc: dict) -> dict | None:
    done = [r for r in doc["trials"] if r.get("status") == "done" and r.get("score") is not None]
    return min(done, key=lambda r: r["score"]) if done else None


def write_results(sweep_dir, doc: dict) -> None:
    """results.json, results.csv, results.md, heatmap.png and the best link, each replaced atomically."""
    sweep_dir = Path(sweep_dir)
    doc = json.loads(json.dumps(doc, default=str), parse_constant=lambda c: None)
    doc["trials"] = [{k: _clean(v) for k, v in r.items()} for r in doc["trials"]]
    _atomic_write(sweep_dir / RESULTS_FILE, json.dumps(doc, indent=2, allow_nan=False) + "\n")
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in doc["trials"]:
        w.writerow({k: "" if r.get(k) is None else r.get(k) for k in CSV_COLUMNS})
    _atomic_write(sweep_dir / "results.csv", buf.getvalue())
    _atomic_write(sweep_dir / "results.md", results_markdown(doc))
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
    _atomic_write(txt, f"{best['run_dir']}\n")
    tmp = sweep_dir / ".best.tmp"
    try:
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(best["run_dir"], target_is_directory=True)
        tmp.replace(link)
    except OSError:
        tmp.unlink(missing_ok=True)  # no symlinks here (some filesystems): best.txt names it


def _fmt(v, spec=".3f", none="-") -> str:
    return none if v is None else format(v, spec)


def cell_text(r: dict | None) -> str:
    if r is None:
        return ""
    if r["status"] == "done":
        return f"{r['score']:.3f} ({r['val_snr_db']:+.1f} dB)"
    return r["status"]


def results_markdown(doc: dict) -> str:
    """A table F x T of the main score, then one row per trial and why cells were not run."""
    cells = {(r["frame_size"], r["seq_len"]): r for r in doc["trials"]}
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
    for f in doc["frame_sizes"]:
        row = []
        for t in doc["seq_lens"]:
            text = cell_text(cells.get((f, t)))
            row.append(f"**{text}**" if best and cells.get((f, t)) is best else text)
        lines.append(f"| {f} | " + " | ".join(row) + " |")
    lines.append("")
    if best:
        lines.append(f"Best: `{best['run_dir']}` (score {best['score']:.3f}): "
                     f"`framegen generate --run <this directory>/best --seconds 30`")
        lines.append("")
    lines += ["## Trials", "",
              "| trial | status | batch | steps | samples seen | train s | compile s | val MSE | zero MSE | copy MSE "
              "| /zero | /copy | SNR dB | peak RSS |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in doc["trials"]:
        batch = _fmt(r.get("batch_size"), "d") + (f" (from {r['batch_reduced_from']})"
                                                  if r.get("batch_reduced_from") else "")
        rss = _gb(r["peak_rss_bytes"]) if r.get("peak_rss_bytes") else "-"
        lines.append(
            f"| {r['key']} | {r['status']} | {batch} | {_fmt(r.get('steps'), ',')} | "
            f"{_fmt(r.get('samples_seen'), ',')} | {_fmt(r.get('train_seconds'), '.1f')} | "
            f"{_fmt(r.get('compile_seconds'), '.1f')} | {_fmt(r.get('val_mse'), '.4f')} | "
            f"{_fmt(r.get('zero_mse'), '.4f')} | {_fmt(r.get('copy_mse'), '.4f')} | {_fmt(r.get('score'))} | "
            f"{_fmt(r.get('vs_copy'))} | {_fmt(r.get('val_snr_db'), '+.2f')} | {rss} |")
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


# ---------------------------------------------------------------------------------------------------- live table


class RichDisplay(SweepDisplay):
    """A rich live table: one row per trial with its status, steps, loss, score and time."""

    def __init__(self, console=None):
        from rich.console import Console

        self.console = console or Console(stderr=True)
        self.live = None
        self.rows = {}
        self.order = []

    def start(self, plan, records):
        from rich.live import Live

        self.order = [t.key for t in plan.trials]
        self.rows = {k: dict(r) for k, r in records.items()}
        self.t0 = {}
        self.live = Live(self._table(), console=self.console, refresh_per_second=2, transient=False)
        self.live.start()

    def _table(self):
        from rich.table import Table

        table = Table(title="sweep", show_lines=False)
        for col in ("trial", "status", "steps", "loss", "score", "SNR dB", "time"):
            table.add_column(col, justify="left" if col in ("trial", "status") else "right")
        for key in self.order:
            r = self.rows[key]
            style = {"done": "green", "failed": "red", "skipped": "dim", "running": "yellow",
                     "interrupted": "magenta"}.get(r["status"], "")
            step = r.get("steps") or r.get("_step") or 0
            steps = "-" if r["status"] == "skipped" else f"{step:,}" + (f"/{r['max_steps']:,}" if r.get("max_steps")
                                                                      else "")
            secs = r.get("train_seconds")
            if r["status"] == "running" and key in self.t0:
                secs = time.monotonic() - self.t0[key]
            table.add_row(key, r["status"], steps, _fmt(r.get("_loss"), ".4f"), _fmt(r.get("score")),
                          _fmt(r.get("val_snr_db"), "+.2f"), _fmt(secs, ".0f"), style=style)
        return table

    def _refresh(self):
        if self.live is not None:
            self.live.update(self._table())

    def trial_started(self, key):
        self.rows[key]["status"] = "running"
        self.t0[key] = time.monotonic()
        self._refresh()

    def trial_reporter(self, key):
        from framegen.train import Reporter

        display = self

        class _Row(Reporter):
            def update(self, *, step, epoch, loss):
                display.rows[key]["_step"] = step
                display.rows[key]["_loss"] = loss
                display._refresh()

        return _Row()

    def trial_done(self, record):
        self.rows[record["key"]].update(record)
        self._refresh()
        what = (f"score {record['score']:.3f}, SNR {record['val_snr_db']:+.2f} dB, {record['steps']:,} steps, "
                f"{record['train_seconds']:.0f} s" if record["status"] == "done" else record.get("error", ""))
        (self.live.console if self.live else self.console).print(f"{record['key']}: {record['status']}: {what}")

    def close(self):
        if self.live is not None:
            self.live.stop()
            self.live = None
            if not self.console.is_terminal:
                self.console.line()  # a non-terminal gets the final table without its closing newline

