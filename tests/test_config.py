"""framegen.config: defaults and choices, range checks, config.json."""

import json
from dataclasses import replace

import pytest

from framegen.config import (CONFIG_FILE, CONFIG_VERSION, DataConfig, ModelConfig, RunConfig, TrainConfig, load_config,
                             save_config)
from framegen.errors import FramegenWarning, RunError, UsageError

from tests.conftest import RATE, tiny_config


def test_crossfade_defaults_to_25_ms_for_vq_and_off_for_mse():
    from framegen.config import VQ_CROSSFADE_MS, RunConfig

    _run_config = RunConfig.from_options  # was framegen.cli._run_config: the choice now lives in config.py

    base = dict(frame_size=40, seq_len=50, sample_rate=RATE, val_fraction=0.1, hidden=199, layers=2, epochs=1,
                batch_size=8, lr=1e-3, seed=0, max_minutes=None, sample_every=0, feedback_prob=0.0, input_noise=0.0)
    assert _run_config(**base).train.crossfade_ms == 0.0  # the MSE path is unchanged
    assert _run_config(**base, output="vq").train.crossfade_ms == VQ_CROSSFADE_MS == 25.0
    assert _run_config(**base, output="vq", crossfade_ms=0.0).train.crossfade_ms == 0.0


def test_config_round_trips_through_json(tmp_path):
    from framegen.config import load_config, save_config

    cfg = replace(tiny_config(), song="/x/y.wav", song_samples=5)
    save_config(cfg, tmp_path)
    assert load_config(tmp_path) == cfg


@pytest.mark.parametrize("make,fragment", [
    (lambda: DataConfig(frame_size=39), "frame size 39 is outside 40-40,000: pass --frame-size"),
    (lambda: DataConfig(seq_len=10_001), "sequence length 10001 is outside 50-10,000"),
    (lambda: DataConfig(val_fraction=0.5), "must be in (0, 0.5)"),
    (lambda: ModelConfig(hidden=512), "hidden size 512 is outside 199-256"),
    (lambda: ModelConfig(output="wav"), "unknown output mode 'wav'"),
    (lambda: ModelConfig(codebook_kind="cubic"), "pass --codebook-kind gain-shape or plain"),
    (lambda: TrainConfig(epochs=0), "epochs must be a positive whole number"),
    (lambda: TrainConfig(lr=float("nan")), "learning rate must be a positive number"),
    (lambda: TrainConfig(feedback_prob=1.5), "--feedback-prob must be in [0, 1]"),
])
def test_out_of_range_settings_say_which_flag_to_change(make, fragment):
    with pytest.raises(UsageError) as e:
        make()
    assert fragment in str(e.value)


def test_load_config_refuses_a_missing_a_corrupt_and_a_newer_config(tmp_path):
    with pytest.raises(RunError, match="has no config.json"):
        load_config(tmp_path)
    (tmp_path / CONFIG_FILE).write_text("{not json")
    with pytest.raises(RunError, match="is not a valid framegen config"):
        load_config(tmp_path)
    save_config(tiny_config(), tmp_path)
    d = json.loads((tmp_path / CONFIG_FILE).read_text())
    d["config_version"] = CONFIG_VERSION + 1
    (tmp_path / CONFIG_FILE).write_text(json.dumps(d))
    with pytest.raises(RunError, match="newer framegen"):
        load_config(tmp_path)
    assert not list(tmp_path.glob("*.tmp"))  # written atomically: no temporary file left behind


def test_from_options_takes_every_default_from_the_config_classes_and_refuses_unknown_options():
    assert RunConfig.from_options() == RunConfig(train=TrainConfig(crossfade_ms=0.0, hold=0.0, max_run_s=0.0))
    vq_run = RunConfig.from_options(output="vq")
    assert (vq_run.train.crossfade_ms, vq_run.train.hold, vq_run.train.max_run_s) == (25.0, 100.0, 1.0)
    assert RunConfig.from_options(frame_size=400, epochs=None, lr=None) == RunConfig(data=DataConfig(frame_size=400))
    cfg = RunConfig.from_options(output="vq", hidden=200, epochs=3, sample_rate=8000)
    assert (cfg.model.output, cfg.model.hidden, cfg.train.epochs, cfg.data.sample_rate) == ("vq", 200, 3, 8000)
    assert cfg.train.epochs != TrainConfig.epochs == 30
    with pytest.raises(UsageError, match="unknown option.*hiden"):
        RunConfig.from_options(hiden=200)
    with pytest.raises(UsageError, match="hidden size 512"):
        RunConfig.from_options(hidden=512)


def test_tiers_parse_check_their_ranges_and_the_sequence_length():
    assert ModelConfig(tiers="8,4").tiers == (8, 4) == ModelConfig(tiers=[8, 4]).tiers
    assert ModelConfig(tiers=8).tiers == (8,) and ModelConfig().tiers == () and ModelConfig().span == 1
    assert ModelConfig(tiers=(8, 4)).span == 32
    cfg = RunConfig.from_options(seq_len=96, tiers="8,4", tier_hidden=64)
    assert (cfg.model.tiers, cfg.model.tier_hidden, cfg.model.tier_layers) == ((8, 4), 64, 2)
    assert RunConfig.from_options(seq_len=96, tiers="8").model.tier_hidden == 128
    for make, fragment in [
        (lambda: ModelConfig(tiers=(8, 1)), "tier ratio 1 is outside 2-64"),
        (lambda: ModelConfig(tiers="8,a"), "are not whole numbers: pass --tiers like 8 or 8,4"),
        (lambda: ModelConfig(tiers=(2, 2, 2, 2, 2)), "5 tiers is more than 4"),
        (lambda: ModelConfig(tier_hidden=8), "tier hidden size 8 is outside 16-1,024"),
        (lambda: ModelConfig(tier_layers=0), "tier layer count 0 is outside 1-4"),
        (lambda: RunConfig.from_options(seq_len=100, tiers="8,4"),
         "--seq-len 100 is not a multiple of the tiers' product 8*4=32: use 96 or 128"),
        (lambda: RunConfig.from_options(seq_len=50, tiers="8,4"),
         "--seq-len 50 is not a multiple of the tiers' product 8*4=32: use 64"),
        (lambda: RunConfig.from_options(tiers="8"), "--seq-len 100 is not a multiple of the tiers' product 8: use 96 "
                                                    "or 104"),
    ]:
        with pytest.raises(UsageError) as e:
            make()
        assert fragment in str(e.value)


def test_a_config_without_tiers_loads_as_flat_and_tiers_round_trip(tmp_path):
    save_config(tiny_config(), tmp_path)
    d = json.loads((tmp_path / CONFIG_FILE).read_text())
    for key in ("tiers", "tier_hidden", "tier_layers", "checksum"):
        d["model"].pop(key, None)  # a run written before the tiers (and so before checksums)
    del d["checksum"]
    (tmp_path / CONFIG_FILE).write_text(json.dumps(d))
    with pytest.warns(FramegenWarning, match="saved without checksums"):
        assert load_config(tmp_path).model.tiers == ()
    cfg = replace(tiny_config(), model=replace(tiny_config().model, tiers=(5, 2), tier_hidden=64))
    save_config(cfg, tmp_path)
    assert json.loads((tmp_path / CONFIG_FILE).read_text())["model"]["tiers"] == [5, 2]
    assert load_config(tmp_path) == cfg
