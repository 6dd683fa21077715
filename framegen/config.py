"""Frozen settings of a run (data, model, training) with range checks, and their JSON form (``config.json``).

``RunConfig.from_options`` is the one place where defaults and choices are decided (CLI, sweeps, bench, demo).
Config flows one way: CLI flags -> these dataclasses -> ``config.json`` in the run -> read back by ``generate`` and
``--resume``. Everything a later step needs to know about a run (sample rate, normalisation) lives here.
"""

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from framegen import __version__
from framegen.atomic import write_text
from framegen.checksums import json_digest, unverified
from framegen.errors import RunDamaged, RunError, UsageError

CONFIG_FILE = "config.json"
CONFIG_VERSION = 1

FRAME_RANGE = (40, 40_000)
SEQ_RANGE = (50, 10_000)
HIDDEN_RANGE = (199, 256)
OUTPUTS = ("mse", "vq")
CODEBOOK_KINDS = ("gain-shape", "plain")  # the same as framegen.vq.KINDS (config must not import jax)
VQ_EMITS = ("exemplar", "centroid", "scaled")
CLOCKS = ("auto", "beat", "none")  # a run stores beat or none: "auto" is resolved from the song's pulse
TRAIN_CLOCK = "auto"  # `framegen train`'s default clock (ModelConfig.clock stays "none": a config without a clock)
CROSSFADE_MS = 25.0  # removes the seam clicks real frames leave (experiments/quality/README.md)
# Unit selection (framegen.units), generate's defaults; measured in experiments/quality/select.md
SELECTS = ("model", "uniform", "off")  # "off": free-running feedback (MSE) or sampled codes' exemplars (VQ)
SELECT_HOLD = 1.0  # the continuation's weight against a jump: 1 = none, the model's scores alone decide
SELECT_MAX_RUN_S = 8.0  # the longest stretch of the song played as it is before a jump is forced
CONTEXT = 5.0  # nats of the continuation's lead per nat of the model's KL: higher follows it more closely
CONTEXT_MSE = 10.0  # ... for an MSE model's spectra, whose KLs spread 3-6x less than VQ's code distributions
LEAD_CAP_MSE = 1.0  # nats: an MSE run's continuation scores at most this above its best jump (else it always wins)
HAZARD = 4.0  # nats of lead the continuation loses over a whole max_run: later in a stretch, jumps come easier
# What the model expects after a jump, against after the continuation (its own-past predictions there, in beats):
NEAR_BEATS = (0.2, 0.4, 0.6, 0.8)  # the same through the next beat (a seamless splice: what the song would play) ...
NEAR_WEIGHT = 3.0  # ... weighted against the KL at the splice itself
FAR_BEATS = (4.0, 8.0)  # ... and different a bar or two on (somewhere new, not a repeat of what plays) ...
FAR_WEIGHT = 4.0  # ... rewarded up to FAR_CAP nats of KL: without it the best splices are repeats (the song copied)
FAR_CAP = 2.0
RECENT_JUMPS = 4  # a jump never lands within a beat of where one of the last this many landed: no cycling among a few
STEADY_BEAT_S = 0.5  # where a run without a beat clock may jump: a steady grid of this period
MAX_TIERS = 4
TIER_RATIO_RANGE = (2, 64)  # SampleRNN's frame tiers span 2-16x the tier below; 64 frames of 400 is 1.6 s
TIER_HIDDEN_RANGE = (16, 1024)  # a tier steps once per R frames, so it can afford more (or fewer) units
CLOCK_FEATURES = 4  # sin/cos of beat and bar phase (framegen.clock.features; config must not import jax)
DEMO_MINUTES = 2.0  # `framegen demo`'s training: a couple of minutes on a 2-core CPU bring the song's patterns back
CHECKPOINTS = ("best", "last")  # a run's checkpoints: the lowest validation loss, and the latest
PRECISIONS = ("auto", "fp32", "bf16")  # "auto": bf16 where the device has fast bf16 (framegen.device.resolve_precision)


def _check_range(name: str, value, lo, hi, flag: str) -> None:
    if not (lo <= value <= hi):
        raise UsageError(f"{name} {value} is outside {lo:,}-{hi:,}: pass {flag} between {lo:,} and {hi:,}")


def _check_positive(name: str, value, flag: str) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise UsageError(f"{name} must be a positive number, got {value}: pass {flag} greater than 0")


def _check_at_least(flag: str, value, lo, unit: str = "") -> None:
    """``value`` (of ``flag``) must be ``lo`` or more; NaN is not: "--hold must be 0 or more, got -1.0"."""
    if not (value >= lo):
        raise UsageError(f"{flag} must be {f'at least {lo}' if lo else '0 or more'}{unit}, got {value}")


@dataclass(frozen=True)
class DataConfig:
    frame_size: int = 800  # F samples per frame: 50 ms at 16 kHz, the classic setting
    seq_len: int = 100  # T frames per training sequence: 5 s of context at F=800
    sample_rate: int = 16000  # the song is resampled to this; generated WAVs use it too
    val_fraction: float = 0.1  # the song's last 10% is held out for validation, never trained on

    def __post_init__(self):
        _check_range("frame size", self.frame_size, *FRAME_RANGE, "--frame-size")
        _check_range("sequence length", self.seq_len, *SEQ_RANGE, "--seq-len")
        _check_range("sample rate", self.sample_rate, 1000, 192_000, "--sample-rate")
        if not (0.0 < self.val_fraction < 0.5):
            raise UsageError(f"validation fraction {self.val_fraction} must be in (0, 0.5): pass --val-fraction 0.1")

    @property
    def example_samples(self) -> int:
        """Samples in one example: T+1 consecutive frames (inputs 0..T-1, targets 1..T)."""
        return (self.seq_len + 1) * self.frame_size


@dataclass(frozen=True)
class ModelConfig:
    hidden: int = 256  # GRU units per layer (the seed study's range is 199-256)
    layers: int = 2
    output: str = "mse"  # "mse": predict the next frame's samples; "vq": a softmax over a k-means codebook
    codebook: int = 512  # K centroids for output="vq"
    # "gain-shape": k-means on unit-norm frames, level kept per code; "plain": on raw frames, whose centroids
    # cancel into quiet means (measured in experiments/quality/README.md)
    codebook_kind: str = "gain-shape"
    vq_emit: str = "exemplar"  # what a sampled code plays and feeds back: a real frame of it, or its centroid
    # "beat": every input frame also carries the song's beat and bar phase (framegen.clock), continued at the
    # song's tempo when generating. A config.json without it loads as "none".
    clock: str = "none"
    # matmul operands: "bf16" (float32 accumulation, float32 params/state/gates) or "fp32"; "auto" is resolved to
    # one of them when a run starts (bf16 on GPUs and bf16-capable CPUs: measured faster, experiments/bench/) and
    # saved resolved in config.json; a config.json without it loads as "fp32", what such runs were trained in
    precision: str = "auto"
    # Multi-scale tiers (SampleRNN's tower): each ratio R_k adds a GRU above the frame GRU that steps once per R_k
    # steps of the tier below and conditions it (framegen.tower). () = the flat model, also what a config.json without
    # tiers loads as. 128 units per tier layer, not the frame GRU's 256: cheaper, and no worse on the songs measured
    # (experiments/quality/tiers.md)
    tiers: tuple = ()
    tier_hidden: int = 128
    tier_layers: int = 2

    def __post_init__(self):
        object.__setattr__(self, "tiers", parse_tiers(self.tiers))  # JSON gives a list, the CLI a string
        for r in self.tiers:
            _check_range("tier ratio", r, *TIER_RATIO_RANGE, "--tiers ratios")
        if len(self.tiers) > MAX_TIERS:
            raise UsageError(f"{len(self.tiers)} tiers is more than {MAX_TIERS}: pass at most {MAX_TIERS} ratios "
                             f"to --tiers")
        _check_range("tier hidden size", self.tier_hidden, *TIER_HIDDEN_RANGE, "--tier-hidden")
        _check_range("tier layer count", self.tier_layers, 1, 4, "--tier-layers")
        _check_range("hidden size", self.hidden, *HIDDEN_RANGE, "--hidden")
        _check_range("layer count", self.layers, 1, 8, "--layers")
        if self.output not in OUTPUTS:
            raise UsageError(f"unknown output mode {self.output!r}: pass --output mse or --output vq")
        _check_range("codebook size", self.codebook, 2, 65_536, "--codebook")
        if self.codebook_kind not in CODEBOOK_KINDS:
            raise UsageError(f"unknown codebook kind {self.codebook_kind!r}: pass --codebook-kind "
                             f"{' or '.join(CODEBOOK_KINDS)}")
        if self.vq_emit not in VQ_EMITS:
            raise UsageError(f"unknown --vq-emit {self.vq_emit!r}: pass one of {', '.join(VQ_EMITS)}")
        if self.clock not in CLOCKS:
            raise UsageError(f"unknown clock {self.clock!r}: pass --clock auto, beat or none")
        if self.precision not in PRECISIONS:
            raise UsageError(f"unknown --precision {self.precision!r}: pass one of {', '.join(PRECISIONS)}")

    @property
    def span(self) -> int:
        """Frames one step of the slowest tier spans (``span_of``)."""
        return span_of(self.tiers)


def span_of(tiers) -> int:
    """Frames one step of the slowest tier spans: the product of the tier ratios (1 for the flat model)."""
    return math.prod(tiers)


def parse_tiers(value) -> tuple:
    """Tier ratios as a tuple of ints from "8,4", "8", 8, [8, 4], "" or None (the flat model: ())."""
    if value is None:
        return ()
    if isinstance(value, str):
        value = [v for v in value.replace(" ", "").replace("x", ",").split(",") if v]
    elif isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    try:
        out = tuple(int(v) for v in value)
        if any(isinstance(v, bool) or (isinstance(v, float) and not v.is_integer()) for v in value):
            raise ValueError
    except (TypeError, ValueError):
        raise UsageError(f"tiers {value!r} are not whole numbers: pass --tiers like 8 or 8,4") from None
    return out


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 30
    batch_size: int = 128
    lr: float = 1e-3  # Adam peak learning rate; warm-up then cosine decay to 10% of it
    seed: int = 0  # the run's RNG seed (train's --seed, the usual name); the audio generation starts from: prompt
    max_minutes: float | None = None  # stop cleanly after this much training time, as if the epochs had ended
    max_steps: int | None = None  # stop after this many steps in all (sweeps give every trial the same samples)
    sample_every: int = 5  # write samples/epoch-NNN.wav every this many epochs (0: never)
    sample_seconds: float = 4.0
    log_every: int = 10  # steps between host syncs for the progress bar
    clip_norm: float = 1.0
    feedback_prob: float = 0.0  # scheduled sampling: share of inputs replaced by the model's own prediction
    input_noise: float = 0.0  # std of Gaussian noise added to input frames (in units of the song's std)
    crossfade_ms: float = 0.0  # seam smoothing of sample clips, and generate's default --crossfade (0: off)
    # Unit selection (framegen.units), generate's defaults: real song frames chosen by the model ("model"), by
    # uniform scores ("uniform", the baseline), or none ("off"); the continuation's weight against a jump, and how
    # long (s) a stretch of the song may play as it is
    select: str = "model"
    hold: float = 0.0
    max_run_s: float = 0.0

    def __post_init__(self):
        if not isinstance(self.epochs, int) or self.epochs <= 0:
            raise UsageError(f"epochs must be a positive whole number, got {self.epochs}: pass --epochs 30")
        if not isinstance(self.batch_size, int) or self.batch_size <= 0:
            raise UsageError(
                f"batch size must be a positive whole number, got {self.batch_size}: pass --batch-size 128"
            )
        _check_positive("learning rate", self.lr, "--lr")
        if self.max_minutes is not None:
            _check_positive("max minutes", self.max_minutes, "--max-minutes")
        if self.max_steps is not None and (not isinstance(self.max_steps, int) or self.max_steps <= 0):
            raise UsageError(f"max steps must be a positive whole number, got {self.max_steps}")
        _check_at_least("--sample-every", self.sample_every, 0)
        _check_positive("sample seconds", self.sample_seconds, "--sample-seconds")
        _check_positive("log interval", self.log_every, "--log-every")
        if not (0.0 <= self.feedback_prob <= 1.0):
            raise UsageError(f"--feedback-prob must be in [0, 1], got {self.feedback_prob}")
        _check_at_least("--input-noise", self.input_noise, 0)
        _check_at_least("--crossfade", self.crossfade_ms, 0, " milliseconds")
        if self.select not in SELECTS:
            raise UsageError(f"unknown --select {self.select!r}: pass one of {', '.join(SELECTS)}")
        _check_at_least("--hold", self.hold, 0)
        _check_at_least("--max-run", self.max_run_s, 0, " seconds")


@dataclass(frozen=True)
class Norm:
    """The song's normalisation: ``x_norm = (x - mean) / std``, computed once over the whole song."""

    mean: float
    std: float


@dataclass(frozen=True)
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    song: str = ""  # absolute path of the song file (generate reloads its prompt from it)
    song_samples: int = 0  # length after resampling, to detect a changed file
    norm: Norm = field(default_factory=lambda: Norm(0.0, 1.0))
    version: str = __version__

    def __post_init__(self):
        check_span(self.data.seq_len, self.model.tiers)

    def to_dict(self) -> dict:
        return {"config_version": CONFIG_VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        d = dict(d)
        d.pop("config_version", None)
        model = ModelConfig(**{"precision": "fp32", **d.pop("model")})  # runs before --precision were fp32
        # runs before unit selection covered both modes: MSE ones fed their predictions back, VQ ones selected
        old_select = "off" if model.output == "mse" else "model"
        return cls(
            data=DataConfig(**d.pop("data")),
            model=model,
            train=TrainConfig(**{"select": old_select, **d.pop("train")}),
            norm=Norm(**d.pop("norm")),
            **d,
        )

    @classmethod
    def from_options(cls, **options) -> "RunConfig":
        """A run's config from flat options, named as the ``framegen train`` flags with underscores (``frame_size``,
        ``hidden``, ``epochs``, ``crossfade_ms``, ...); a missing or None option takes its default.

        The one place where settings that depend on others are decided: when generation plays real frames (unit
        selection, the default, or VQ exemplars) the crossfade and unit selection (hold, max_run_s) default to
        ``CROSSFADE_MS``, ``SELECT_HOLD``, ``SELECT_MAX_RUN_S``; an MSE run with ``select="off"`` feeds its own
        predictions back and defaults them to 0 (off). Ranges are checked by the config classes.
        """
        given = _given(options)
        real = given.get("output", ModelConfig.output) == "vq" or given.get("select", TrainConfig.select) != "off"
        for name, default in (("crossfade_ms", CROSSFADE_MS), ("hold", SELECT_HOLD), ("max_run_s", SELECT_MAX_RUN_S)):
            given.setdefault(name, default if real else 0.0)
        by = _by_section(given)
        return cls(data=DataConfig(**by["data"]), model=ModelConfig(**by["model"]), train=TrainConfig(**by["train"]))

    def with_options(self, **options) -> "RunConfig":
        """This config with the flat options given (named as for ``from_options``; None: unchanged) replaced, and
        checked as every config is: how generate overrides a run's settings and resume its budget."""
        by = _by_section(_given(options))
        return dataclasses.replace(self, data=dataclasses.replace(self.data, **by["data"]),
                                   model=dataclasses.replace(self.model, **by["model"]),
                                   train=dataclasses.replace(self.train, **by["train"]))


def _given(options: dict) -> dict:
    """The options that are not None, refusing unknown names."""
    given = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(given) - set(OPTION_SECTIONS))
    if unknown:
        raise UsageError(f"unknown option(s) {', '.join(unknown)}: known are {', '.join(sorted(OPTION_SECTIONS))}")
    return given


def _by_section(given: dict) -> dict:
    return {s: {k: v for k, v in given.items() if OPTION_SECTIONS[k] == s} for s in ("data", "model", "train")}


def check_span(seq_len: int, tiers: tuple) -> None:
    """Training sequences hold whole spans of the slowest tier: T must be a multiple of the ratios' product."""
    span = span_of(tiers)
    if seq_len % span == 0:
        return
    lo, hi = seq_len // span * span, -(-seq_len // span) * span
    fits = [t for t in (lo, hi) if SEQ_RANGE[0] <= t <= SEQ_RANGE[1]]
    hint = f"use {' or '.join(map(str, fits))}" if fits else "use fewer or smaller --tiers ratios"
    product = "*".join(map(str, tiers)) + (f"={span}" if len(tiers) > 1 else "")
    raise UsageError(f"--seq-len {seq_len} is not a multiple of the tiers' product {product}: {hint}")


@dataclass(frozen=True)
class GenerateConfig:
    """What one ``framegen generate`` asks for beyond the run's own settings (which it overrides with
    ``RunConfig.with_options``), with generate's defaults."""

    seconds: float = 30.0
    checkpoint: str = "best"
    streams: int = 1  # continuations written at once, each from its own place
    prompt_offset: float | None = None  # seconds into the song or prompt file; None: the held-out tail / file's end
    prompt_frames: int | None = None  # None (or 0): the run's T
    temperature: float = 1.0  # VQ runs: of the code softmax; 0 takes the likeliest code
    top_k: int = 0  # VQ runs: sample among the K likeliest codes only (0: all)
    sample_seed: int = 0  # VQ runs: RNG seed of the sampling
    prompt_file: Path | None = None  # any audio file to take the prompt from instead of the song
    intro: bool = False  # start with the song's opening (no prompt of its own)
    ending: bool = False  # finish with the song's own last seconds
    loop: bool = False  # the end leads seamlessly into the start
    toward: tuple = ()  # song seconds of passages to arrive at, in order
    by: tuple = ()  # output seconds to arrive by, one per toward (default: spread evenly)

    def __post_init__(self):
        if not (0 < self.seconds < float("inf")):
            raise UsageError(f"--seconds must be positive, got {self.seconds}")
        if self.checkpoint not in CHECKPOINTS:
            raise UsageError(f"unknown checkpoint {self.checkpoint!r}: pass --checkpoint best or --checkpoint last")
        _check_at_least("--streams", self.streams, 1)
        if self.prompt_offset is not None:
            _check_at_least("--prompt-offset", self.prompt_offset, 0, " seconds")
        _check_at_least("--prompt-frames", self.prompt_frames or 1, 1)
        if not (self.temperature >= 0):
            raise UsageError(f"--temperature must be 0 (greedy) or more, got {self.temperature}")
        if not (self.top_k >= 0):
            raise UsageError(f"--top-k must be 0 (off) or more, got {self.top_k}")
        if self.intro and (self.prompt_file is not None or self.prompt_offset is not None):
            raise UsageError("--intro starts at the song's opening: drop --prompt-file / --prompt-offset, or --intro")
        if self.by and len(self.by) != len(self.toward):
            raise UsageError(f"{len(self.by)} --by for {len(self.toward)} --toward: pass one --by per --toward, or "
                             f"none (arrivals spread evenly)")
        if list(self.arrivals) != sorted(self.arrivals):
            raise UsageError("--by times must increase: pass the passages to reach in the order they are reached")

    @property
    def arrivals(self) -> tuple:
        """Output seconds of each --toward: its --by, by default spread evenly over the output."""
        n = len(self.toward)
        return tuple(self.by) if self.by else tuple(self.seconds * (i + 1) / (n + 1) for i in range(n))


def parse_duration(value) -> float:
    """Seconds of audio from ``90``, ``2.5``, units (``90m``, ``10h``, ``1h30m``, ``45s``) or H:MM:SS; ValueError
    for anything else."""
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip().lower()
    if ":" in text:
        total = 0.0
        for part in text.split(":"):
            total = 60.0 * total + float(part)
        return total
    if re.fullmatch(r"(\d+(\.\d*)?[hms])+", text):
        return sum(float(n) * _UNITS[u] for n, _, u in re.findall(r"(\d+(\.\d*)?)([hms])", text))
    return float(text)


_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0}


# every flat option (a `framegen train` flag with underscores) -> the config section it lives in
OPTION_SECTIONS = {f.name: section for section, cls in (("data", DataConfig), ("model", ModelConfig),
                                                        ("train", TrainConfig)) for f in dataclasses.fields(cls)}


def save_config(cfg: RunConfig, run_dir: Path) -> None:
    """Write ``config.json`` atomically (temp file + rename) so a crash never leaves half a config, with the checksum
    of its settings inside it (``framegen.checksums``)."""
    path = Path(run_dir) / CONFIG_FILE
    d = json.loads(json.dumps(cfg.to_dict()))  # as it will read back (tuples as lists)
    try:
        write_text(path, json.dumps({**d, "checksum": json_digest(d)}, indent=2) + "\n")
    except OSError as e:
        raise RunError(f"cannot write {path} ({e.strerror or e}): free disk space or pass a writable --run-dir") \
            from None


def load_config(run_dir: Path) -> RunConfig:
    """The run's config, checked against the checksum saved in it (a run from before checksums: a warning)."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise RunError(f"{run_dir} has no {CONFIG_FILE}: pass --run with a directory made by 'framegen train'")
    try:
        d = json.loads(path.read_text())
        if d.get("config_version", CONFIG_VERSION) > CONFIG_VERSION:
            raise RunError(f"{path} was written by a newer framegen: upgrade framegen to read it")
        checksum = d.pop("checksum", None)
        if checksum is None:
            unverified(run_dir)
        elif checksum != json_digest(d):
            raise RunDamaged(f"{path} is damaged or was edited by hand (its settings do not match the checksum saved "
                           f"with them): undo the change (or delete its \"checksum\" line to use it unverified), or "
                           f"retrain the run")
        return RunConfig.from_dict(d)
    except RunError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise RunError(
            f"{path} is not a valid framegen config ({e}): re-create the run with 'framegen train'"
        ) from None
