"""``framegen demo``: the built-in default job. Synthesise the demo song, train on it briefly, generate 10 s; and
the verdict on that clip in words a newcomer reads (``in_words``)."""

from dataclasses import dataclass
from pathlib import Path

from framegen import audio, evaluate, runs, synth
from framegen.config import DEMO_MINUTES, OPTION_SECTIONS, TRAIN_CLOCK, RunConfig
from framegen.evaluate import Evaluation
from framegen.generate import Generated, generate
from framegen.train import Reporter, TrainResult, train_song

# The demo uses the VQ mode: measured on this song with the same 2-minute budget (2-core CPU), the MSE mode's
# 10 s fell into a fixed point after ~2.4 s (flagged stuck, loudness 0.46), while VQ (K=512, gain-shape codebook,
# real exemplar frames, batch 32 for more updates) stayed audible throughout at loudness 0.96 and not stuck.
# The beat clock and unit selection give its 10 s the song's pulse (experiments/quality/rhythm.md); crossfade and
# unit selection take train --output vq's defaults (RunConfig.from_options). On the varied song of issue 22 (busy
# 2-core CPU, 190 steps in the budget) sampling seeds 0-2 gave no flags, novelty 0.36-0.38 (the loop before: 0.09-0.12,
# copying); trained 4x longer (760 steps) still none, novelty 0.30-0.34: a better model copies a little more.
DEMO_OPTIONS = dict(output="vq", codebook=512, clock="auto", batch_size=32, epochs=200, sample_every=10)


@dataclass(frozen=True)
class DemoResult:
    song: Path
    train: TrainResult
    generated: Generated


def demo_config(minutes: float = DEMO_MINUTES) -> RunConfig:
    """The demo run's settings (song fields unset): VQ mode, a time budget of ``minutes``."""
    return RunConfig.from_options(sample_rate=synth.DEMO_RATE, max_minutes=minutes, **DEMO_OPTIONS)


def run_demo(*, runs_root: Path = runs.RUNS_ROOT, minutes: float = DEMO_MINUTES, seconds: float = 10.0,
             reporter: Reporter | None = None) -> DemoResult:
    song_path = audio.write_wav(Path(runs_root) / "demo-song.wav", synth.demo_song(), synth.DEMO_RATE)
    cfg = demo_config(minutes)
    result = train_song(song_path, cfg, runs_root=runs_root, reporter=reporter)
    (written,) = generate(result.run_dir, seconds=seconds, overwrite=True)
    return DemoResult(song=song_path, train=result, generated=written)


def own_song_command(minutes: float = DEMO_MINUTES, song: str = "YOUR-SONG.wav") -> str:
    """The demo's job on your own song, as one command line: ``framegen train`` with the demo's settings where they
    differ from train's defaults, then ``framegen generate`` (its defaults: the latest run, 30 s)."""
    train_default = RunConfig.from_options(clock=TRAIN_CLOCK)  # what `framegen train SONG` alone would run
    flags = [f"--{name.replace('_', '-')} {value:g}" if isinstance(value, float) else f"--{name.replace('_', '-')} "
             f"{value}" for name, value in {**DEMO_OPTIONS, "max_minutes": minutes}.items()
             if getattr(getattr(train_default, OPTION_SECTIONS[name]), name) != value]
    return f"framegen train {song} {' '.join(flags)} && framegen generate --seconds 30"


# What a newcomer asks of a continuation, in the order they ask: (Evaluation field, the flag that judges it, words
# when the flag is not raised, words when it is). "{v}" is the field's value; the limits are evaluate's constants.
# A row with no "good" words is only spoken when it fails; a flag no row names (a measure added to evaluate later)
# is still reported, by its name.
WORDS = (
    ("audible_ratio", "silent", None, f"silent (only {{v:.0%}} of it audible, under {evaluate.SILENT_BELOW:.0%})"),
    ("loop_period_s", "stuck", None, "stuck in a loop ({v:.3g} s long)"),
    ("pulse_ratio", "no_pulse", "keeps the beat (pulse {v:.2f} of the song's)",
     f"loses the beat (pulse {{v:.2f}} of the song's, under {evaluate.NO_PULSE_BELOW:g})"),
    ("frechet_ratio", "far_from_song", "sounds like the song (Fréchet {v:.2f} of a real excerpt's)",
     f"sounds unlike the song (Fréchet {{v:.2f}} of a real excerpt's, over {evaluate.FAR_ABOVE:g})"),
    ("novelty", "copying", "new material (novelty {v:.2f}; a copy scores 0)",
     f"copies the song (novelty {{v:.2f}}, under {evaluate.COPYING_BELOW:g})"),
    ("continuity_ratio", None, "held notes {v:.2f} of the song's (continuity)", None),  # no flag: a number only
    ("noise_likeness", "noise_like", None, "sounds like noise ({v:.2f} of the way from the song to noise)"),
    ("clipping_ratio", "clipping", None, "clips ({v:.1%} of samples at full scale)"),
    ("nonfinite_ratio", "nonfinite", None, "holds broken samples ({v:.1%} NaN or infinite)"),
)
COLLAPSED = ("silent", "stuck")  # evaluate judges beat, sound and novelty only on a clip that is neither


def in_words(ev: Evaluation) -> str:
    """The verdict on a clip as one line of plain words built from its Evaluation: its flags (or "no flags"), then
    what holds and what fails, each with its number, e.g. "no flags: keeps the beat (pulse 0.97 of the song's),
    sounds like the song (...), new material (...), held notes ...". On a silent or stuck clip only the
    failures are named: the rest was not judged."""
    collapsed = any(f in ev.flags for f in COLLAPSED)
    parts = []
    for field, flag, good, bad in WORDS:
        value = getattr(ev, field, None)
        if value is None:
            continue
        words = bad if flag in ev.flags else None if collapsed else good
        if words:
            parts.append(words.format(v=value))
    named = {flag for _, flag, _, _ in WORDS}
    parts += [f"flagged {f}" for f in ev.flags if f not in named]
    return f"{', '.join(ev.flags) or 'no flags'}: {', '.join(parts)}"
