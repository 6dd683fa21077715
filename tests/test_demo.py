"""framegen.demo: the demo job's settings, and the whole job end to end (slow)."""

import pytest
import soundfile as sf

from framegen import demo, synth


@pytest.mark.slow
def test_run_demo_writes_the_song_a_run_and_a_scored_ten_second_wav(tmp_path):
    r = demo.run_demo(runs_root=tmp_path, minutes=0.01, seconds=1.0)
    assert r.song == tmp_path / "demo-song.wav" and sf.info(str(r.song)).samplerate == synth.DEMO_RATE
    assert r.train.run_dir.parent == tmp_path and r.train.stopped == "max_minutes"
    assert r.generated.path.is_file() and sf.info(str(r.generated.path)).frames == synth.DEMO_RATE
    assert r.generated.evaluation is not None


def test_demo_config_is_a_vq_run_on_the_demo_rate_with_a_time_budget():
    cfg = demo.demo_config(0.5)
    assert (cfg.model.output, cfg.model.codebook, cfg.data.sample_rate) == ("vq", 512, synth.DEMO_RATE)
    assert cfg.train.max_minutes == 0.5 and cfg.train.batch_size == 32 and cfg.train.epochs == 200
    assert cfg.model.clock == "auto" and cfg.train.crossfade_ms == 25.0 and cfg.train.hold == 100.0
    assert demo.demo_config().train.max_minutes == 2.0
