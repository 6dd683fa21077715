"""``framegen demo``: the built-in default job. Synthesise the demo song, train on it briefly, generate 10 s."""

from dataclasses import dataclass
from pathlib import Path

from framegen import audio, runs, synth
from framegen.config import (VQ_CROSSFADE_MS, VQ_HOLD, VQ_MAX_RUN_S, DataConfig, ModelConfig, RunConfig,
                             TrainConfig)
from framegen.generate import Generated, generate
from framegen.train import Reporter, TrainResult, train_song

DEMO_MINUTES = 2.0  # a couple of minutes of training on a 2-core CPU: enough to hear the patterns come back
# The demo uses the VQ mode: measured on this song with the same 2-minute budget (2-core CPU), the MSE mode's
# 10 s fell into a fixed point after ~2.4 s (flagged stuck, loudness 0.46), while VQ (K=512, gain-shape codebook,
# real exemplar frames, batch 32 for more updates) stayed audible throughout at loudness 0.96 and not stuck.
# The beat clock and unit selection give its 10 s the song's pulse (experiments/quality/rhythm.md).
DEMO_MODEL = ModelConfig(output="vq", codebook=512, clock="auto")
DEMO_BATCH = 32


@dataclass(frozen=True)
class DemoResult:
    song: Path
    train: TrainResult
    generated: Generated


def run_demo(*, runs_root: Path = runs.RUNS_ROOT, minutes: float = DEMO_MINUTES, seconds: float = 10.0,
             reporter: Reporter | None = None) -> DemoResult:
    song_path = audio.write_wav(Path(runs_root) / "demo-song.wav", synth.demo_song(), synth.DEMO_RATE)
    cfg = RunConfig(
        data=DataConfig(sample_rate=synth.DEMO_RATE),
        model=DEMO_MODEL,
        train=TrainConfig(epochs=200, batch_size=DEMO_BATCH, max_minutes=minutes, sample_every=10, hold=VQ_HOLD,
                          max_run_s=VQ_MAX_RUN_S, crossfade_ms=VQ_CROSSFADE_MS),
    )
    result = train_song(song_path, cfg, runs_root=runs_root, reporter=reporter)
    (written,) = generate(result.run_dir, seconds=seconds, overwrite=True)
    return DemoResult(song=song_path, train=result, generated=written)
