"""``framegen demo``: the built-in default job. Synthesise the demo song, train on it briefly, generate 10 s."""

from dataclasses import dataclass
from pathlib import Path

from framegen import audio, runs, synth
from framegen.config import DEMO_MINUTES, RunConfig
from framegen.generate import Generated, generate
from framegen.train import Reporter, TrainResult, train_song

# The demo uses the VQ mode: measured on this song with the same 2-minute budget (2-core CPU), the MSE mode's
# 10 s fell into a fixed point after ~2.4 s (flagged stuck, loudness 0.46), while VQ (K=512, gain-shape codebook,
# real exemplar frames, batch 32 for more updates) stayed audible throughout at loudness 0.96 and not stuck.
# The beat clock and unit selection give its 10 s the song's pulse (experiments/quality/rhythm.md); crossfade and
# unit selection take train --output vq's defaults (RunConfig.from_options).
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
