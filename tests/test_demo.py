"""framegen.demo: the demo job's settings, the verdict in words, the command for your own song, and the whole job end
to end (slow)."""

import dataclasses
import shlex

import pytest
import soundfile as sf

from framegen import demo, evaluate, synth
from framegen.evaluate import Evaluation


@pytest.mark.slow
def test_run_demo_writes_the_song_a_run_and_a_scored_ten_second_wav(tmp_path):
    r = demo.run_demo(runs_root=tmp_path, minutes=0.01, seconds=1.0)
    assert r.song == tmp_path / "demo-song.wav" and sf.info(str(r.song)).samplerate == synth.DEMO_RATE
    assert sf.info(str(r.song)).duration == synth.DEMO_SECONDS
    assert r.train.run_dir.parent == tmp_path and r.train.stopped == "max_minutes"
    assert r.generated.path.is_file() and sf.info(str(r.generated.path)).frames == synth.DEMO_RATE
    assert r.generated.evaluation is not None


def test_demo_config_is_a_vq_run_on_the_demo_rate_with_a_time_budget():
    cfg = demo.demo_config(0.5)
    assert (cfg.model.output, cfg.model.codebook, cfg.data.sample_rate) == ("vq", 512, synth.DEMO_RATE)
    assert cfg.train.max_minutes == 0.5 and cfg.train.batch_size == 32 and cfg.train.epochs == 200
    assert cfg.model.clock == "auto" and cfg.train.crossfade_ms == 25.0 and cfg.train.select == "model"
    assert demo.demo_config().train.max_minutes == 2.0


# A clip as the demo's measured ones score (seed 0 of a 20-step run: no flags).
GOOD = Evaluation(**{f.name: 0.5 for f in dataclasses.fields(Evaluation)} | dict(
    sample_rate=16000, reference_rate=16000, audible_ratio=1.0, loop_period_s=None, loop_start_s=None,
    pulse_ratio=0.97, frechet_ratio=0.54, novelty=0.46, continuity_ratio=0.93, noise_likeness=-0.1,
    clipping_ratio=0.0, nonfinite_ratio=0.0, tempo_match=True, rate_mismatch=False, flags=()))


def test_a_clip_without_flags_is_described_by_what_holds_with_its_numbers():
    words = demo.in_words(GOOD)
    assert words.startswith("no flags: keeps the beat (pulse 0.97 of the song's), sounds like the song (Fréchet 0.54")
    assert "new material (novelty 0.46" in words and "held notes 0.93" in words
    assert "silent" not in words and "stuck" not in words and "noise" not in words  # failures only when flagged


def test_a_flagged_clip_names_the_failure_with_evaluates_threshold():
    copy = dataclasses.replace(GOOD, novelty=0.1, flags=("copying",))
    words = demo.in_words(copy)
    assert words.startswith("copying: keeps the beat")
    assert f"copies the song (novelty 0.10, under {evaluate.COPYING_BELOW:g})" in words and "new material" not in words
    beatless = demo.in_words(dataclasses.replace(GOOD, pulse_ratio=0.2, flags=("no_pulse",)))
    assert f"loses the beat (pulse 0.20 of the song's, under {evaluate.NO_PULSE_BELOW:g})" in beatless


def test_a_collapsed_clip_names_only_its_failures():
    dead = dataclasses.replace(GOOD, audible_ratio=0.1, loop_period_s=0.05, flags=("silent", "stuck"))
    assert demo.in_words(dead) == (f"silent, stuck: silent (only 10% of it audible, under {evaluate.SILENT_BELOW:.0%}),"
                                   " stuck in a loop (0.05 s long)")


def test_a_flag_added_to_evaluate_later_is_still_reported():
    assert demo.in_words(dataclasses.replace(GOOD, flags=("static",))).endswith(", flagged static")


def test_every_row_of_the_words_names_an_evaluation_field_and_flag():
    fields = {f.name for f in dataclasses.fields(Evaluation)}
    for field, flag, good, bad in demo.WORDS:
        assert field in fields and (flag is None or flag in evaluate.FLAG_ORDER) and (good or bad)


def test_the_own_song_command_is_the_demos_training_with_flags_train_accepts():
    from framegen.cli import cli

    cmd = demo.own_song_command(2.0)
    train, generate = cmd.split(" && ")
    assert "--output vq" in train and "--max-minutes 2" in train and generate == "framegen generate --seconds 30"
    assert train.startswith("framegen train ")
    ctx = cli.commands["train"].make_context("train", shlex.split(train)[2:])  # parsed as the shell would pass it
    cfg_opts = {k: v for k, v in ctx.params.items() if k in demo.DEMO_OPTIONS}
    assert cfg_opts == demo.DEMO_OPTIONS and ctx.params["max_minutes"] == 2.0
    assert ctx.params["song"].name == "YOUR-SONG.wav"
