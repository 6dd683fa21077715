"""framegen.config: defaults and choices, range checks, config.json."""

import json
from dataclasses import replace

import pytest

from framegen.config import (CONFIG_FILE, CONFIG_VERSION, DataConfig, GenerateConfig, ModelConfig, RunConfig,
                             TrainConfig, load_config, parse_duration, save_config)
from framegen.errors import FramegenWarning, RunError, UsageError

from tests.conftest import RATE, tiny_config


def test_crossfade_and_selection_default_on_where_generation_plays_real_frames_and_off_for_free_running_mse():
    from framegen.config import CROSSFADE_MS, SELECT_HOLD, SELECT_MAX_RUN_S, RunConfig

    _run_config = RunConfig.from_options

    base = dict(frame_size=40, seq_len=50, sample_rate=RATE, val_fraction=0.1, hidden=199, layers=2, epochs=1,
                batch_size=8, lr=1e-3, seed=0, max_minutes=None, sample_every=0, feedback_prob=0.0, input_noise=0.0)
    for output in ("mse", "vq"):  # unit selection is the default path of both modes
        t = _run_config(**base, output=output).train
        assert (t.select, t.crossfade_ms, t.hold, t.max_run_s) == ("model", CROSSFADE_MS, SELECT_HOLD, SELECT_MAX_RUN_S)
    t = _run_config(**base, select="off").train  # MSE feeding its predictions back: nothing to smooth or select
    assert (t.crossfade_ms, t.hold, t.max_run_s) == (0.0, 0.0, 0.0)
    assert _run_config(**base, output="vq", select="off").train.crossfade_ms == CROSSFADE_MS == 25.0  # exemplars
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
    assert RunConfig.from_options() == RunConfig(train=TrainConfig(crossfade_ms=25.0, hold=1.0, max_run_s=8.0))
    vq_run = RunConfig.from_options(output="vq")
    assert (vq_run.train.crossfade_ms, vq_run.train.hold, vq_run.train.max_run_s) == (25.0, 1.0, 8.0)
    assert RunConfig.from_options(frame_size=400, epochs=None, lr=None) == RunConfig(
        data=DataConfig(frame_size=400), train=TrainConfig(crossfade_ms=25.0, hold=1.0, max_run_s=8.0))
    cfg = RunConfig.from_options(output="vq", hidden=200, epochs=3, sample_rate=8000)
    assert (cfg.model.output, cfg.model.hidden, cfg.train.epochs, cfg.data.sample_rate) == ("vq", 200, 3, 8000)
    assert cfg.train.epochs != TrainConfig.epochs == 30
    with pytest.raises(UsageError, match="unknown option.*hiden"):
        RunConfig.from_options(hiden=200)
    with pytest.raises(UsageError, match="hidden size 512"):
        RunConfig.from_options(hidden=512)


def test_with_options_overrides_the_settings_given_and_checks_them_as_the_classes_do():
    cfg = RunConfig.from_options(output="vq")
    got = cfg.with_options(crossfade_ms=2.0, precision="bf16", epochs=None)
    assert (got.train.crossfade_ms, got.model.precision, got.train.epochs) == (2.0, "bf16", cfg.train.epochs)
    assert (got.train.hold, got.model.output) == (cfg.train.hold, "vq")
    with pytest.raises(UsageError, match="--crossfade must be 0 or more milliseconds, got -1"):
        cfg.with_options(crossfade_ms=-1.0)
    with pytest.raises(UsageError, match="unknown --vq-emit 'loud'"):
        cfg.with_options(vq_emit="loud")
    with pytest.raises(UsageError, match="unknown option.*crossfad"):
        cfg.with_options(crossfad=1.0)


@pytest.mark.parametrize("settings,fragment", [
    (dict(seconds=0), "--seconds must be positive, got 0"),
    (dict(seconds=float("inf")), "--seconds must be positive"),
    (dict(streams=0), "--streams must be at least 1, got 0"),
    (dict(prompt_offset=-1.0), "--prompt-offset must be 0 or more seconds, got -1.0"),
    (dict(prompt_frames=-2), "--prompt-frames must be at least 1, got -2"),
    (dict(temperature=-0.5), "--temperature must be 0 (greedy) or more"),
    (dict(top_k=-1), "--top-k must be 0 (off) or more"),
    (dict(checkpoint="first"), "unknown checkpoint 'first': pass --checkpoint best or --checkpoint last"),
])
def test_generate_settings_out_of_range_say_which_flag_to_change(settings, fragment):
    with pytest.raises(UsageError) as e:
        GenerateConfig(**settings)
    assert fragment in str(e.value)
    assert GenerateConfig(prompt_frames=0).prompt_frames == 0  # 0 and None: the run's T


@pytest.mark.parametrize("text,seconds", [("90", 90.0), ("2.5", 2.5), ("90m", 5400.0), ("10h", 36000.0),
                                          ("1h30m", 5400.0), ("1:00:00", 3600.0), ("0:01:30.5", 90.5), (12, 12.0)])
def test_durations_read_seconds_units_and_hours(text, seconds):
    assert parse_duration(text) == seconds


def test_a_duration_that_is_not_one_is_a_value_error():
    for text in ("ten", "1x", "h"):
        with pytest.raises(ValueError):
            parse_duration(text)


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
    for key in ("tiers", "tier_hidden", "tier_layers"):
        d["model"].pop(key, None)  # a config.json without tiers (and so without a checksum)
    del d["checksum"]
    (tmp_path / CONFIG_FILE).write_text(json.dumps(d))
    with pytest.warns(FramegenWarning, match="saved without checksums"):
        assert load_config(tmp_path).model.tiers == ()
    cfg = replace(tiny_config(), model=replace(tiny_config().model, tiers=(5, 2), tier_hidden=64))
    save_config(cfg, tmp_path)
    assert json.loads((tmp_path / CONFIG_FILE).read_text())["model"]["tiers"] == [5, 2]
    assert load_config(tmp_path) == cfg
