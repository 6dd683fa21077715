"""Sweep specs: the experiment file (TOML) and CLI flags, checked key by key, as one ``SweepSpec``; a trial's
``RunConfig`` from its options. Owns which options a sweep takes and where each lives (``[data]``, ``[model]``, ...),
and its grid's axes (F x T, and tier sets): the rows and cells its tables and heatmap lay out.
"""

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from framegen.config import OPTION_SECTIONS, RunConfig, parse_tiers
from framegen.errors import UsageError

# Every option a trial takes, by the config section it lives in: the config fields, i.e. the names of the
# `framegen train` flags with underscores (the axes and the budget's fields are the sweep's own).
SWEEP_OWNED = ("frame_size", "seq_len", "max_steps", "max_minutes")
SECTIONS = {section: tuple(n for n, s in OPTION_SECTIONS.items() if s == section and n not in SWEEP_OWNED)
            for section in ("data", "model", "train")}
OPTIONS = {name: section for section, names in SECTIONS.items() for name in names}
SHARED_ONLY = ("sample_rate", "val_fraction")  # one split for all trials: every trial scores the same tail
SWEEP_KEYS = ("name", "song", "frame_sizes", "seq_lens", "tiers", "budget_samples", "budget_seconds", "auto_batch",
              "memory_gb")

DEFAULT_BUDGET_SAMPLES = 100_000_000  # ~35 passes over a 3-minute song at 16 kHz; minutes per trial on a 2-core CPU
# sample_every: a sample WAV per epoch costs time no trial is scored on; opt in per file. crossfade_ms, hold,
# max_run_s: 0 unless set (not train's VQ defaults), so VQ trials compare the model alone and a sweep directory's
# saved configs match the plan on resume.
SWEEP_DEFAULTS = {"sample_every": 0, "crossfade_ms": 0.0, "hold": 0.0, "max_run_s": 0.0}


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
    """A grid and the options for all its trials; ``overrides`` are per-axis: {("frame_size", 40): {...}}.
    ``tier_sets``: the tiers axis (each a tuple of ratios, () the flat model), or None: one trial per F x T."""

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
    tier_sets: tuple | None = None

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
    tier_sets = _tier_sets(s.get("tiers"), where, exp, flags)
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
        memory_gb=mem, source=str(experiment) if experiment else None, tier_sets=tier_sets,
    )


def _tier_sets(value, where: str, exp: dict, flags: dict) -> tuple | None:
    """The tiers axis of [sweep] (e.g. ``tiers = [[], [8], [8, 4]]`` or ``["", "8", "8,4"]``), or None."""
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise UsageError(f"tiers in [sweep] of {where} must be a list of tier ratio lists, e.g. [[], [8], [8, 4]]")
    if "tiers" in flags or "tiers" in exp["options"] or any("tiers" in o for o in exp["overrides"].values()):
        raise UsageError(f"tiers is a sweep axis in {where}: set it in [sweep] only (drop --tiers and any other "
                         f"tiers = ...)")
    return tuple(dict.fromkeys(parse_tiers(v) for v in value))


def run_config(frame_size: int, seq_len: int, opts: dict, **train_extra) -> RunConfig:
    """The trial's RunConfig (song fields unset) from flat options; ranges are checked by the config classes."""
    return RunConfig.from_options(**{**opts, **train_extra}, frame_size=frame_size, seq_len=seq_len)


def grid_rows(doc: dict) -> list:
    """The rows of a sweep's F x T grid: (F, tiers, label), one per frame size, or per frame size and tier set when
    the sweep has a tiers axis (tiers "" = flat)."""
    if not doc.get("tier_sets"):
        return [(f, "", str(f)) for f in doc["frame_sizes"]]
    return [(f, k, f"{f}, {'tiers ' + k if k else 'flat'}") for f in doc["frame_sizes"] for k in doc["tier_sets"]]


def grid_cells(doc: dict) -> dict:
    """{(F, T, tiers): record} for ``grid_rows`` (tiers "" on a sweep without a tiers axis, whatever its trials')."""
    axis = bool(doc.get("tier_sets"))
    return {(r["frame_size"], r["seq_len"], r.get("tiers", "") if axis else ""): r for r in doc["trials"]}
