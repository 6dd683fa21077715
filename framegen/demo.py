"""``framegen demo``: the built-in default job. Synthesise the demo song, train on it briefly, generate 10 s."""

from dataclasses import dataclass
from pathlib import Path

from framegen import audio, runs, synth
from framegen.config import DataConfig, RunConfig, TrainConfig
from framegen.generate import Generated, generate
from framegen.train import Reporter, TrainResult, train_song

DEMO_MINUTES = 2.0  # a couple of minutes of training on a 2-core CPU: enough to hear the patterns come back


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
        train=TrainConfig(epochs=200, max_minutes=minutes, sample_every=10),
    )
    result = train_song(song_path, cfg, runs_root=runs_root, reporter=reporter)
    (written,) = generate(result.run_dir, seconds=seconds, overwrite=True)
    return DemoResult(song=song_path, train=result, generated=written)
