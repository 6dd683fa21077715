import json
import os
import signal
from dataclasses import replace

import jax
import numpy as np
import pytest

from framegen import checkpoint, runs
from framegen.errors import Interrupted, TrainingDiverged
from framegen.train import Reporter, resume_run, train, train_song
from tests.conftest import tiny_config

METRIC_KEYS = {"epoch", "step", "train_mse", "val_mse", "val_snr_db", "zero_mse", "copy_mse", "seconds"}


def test_learns_a_sine_song_well_below_the_zero_predictor(song_path, tmp_path):
    cfg = tiny_config(epochs=6, batch_size=16, lr=3e-3, sample_every=3)
    result = train_song(song_path, cfg, run_dir=tmp_path / "run")
    rows = result.metrics
    assert result.step >= 200
    assert METRIC_KEYS <= set(rows[-1])
    assert rows[-1]["val_mse"] < 0.2 * rows[-1]["zero_mse"]
    assert rows[-1]["val_snr_db"] > 7
    run = result.run_dir
    assert [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()] == list(range(1, 7))
    assert (run / "loss.png").stat().st_size > 1000
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["epoch-003.wav", "epoch-006.wav"]
    assert checkpoint.exists(run, "last") and checkpoint.exists(run, "best")
    assert not (run / runs.LOCK_FILE).exists()


class _InterruptAt(Reporter):
    """Sends this process SIGINT once training reaches ``step``, as a user's Ctrl-C would."""

    def __init__(self, step):
        self.at = step

    def update(self, *, step, epoch, loss):
        if step >= self.at and self.at:
            self.at = 0
            os.kill(os.getpid(), signal.SIGINT)


def test_resume_after_ctrl_c_reproduces_the_uninterrupted_run(song_path, tmp_path):
    cfg = tiny_config(epochs=2, log_every=3)
    whole = train_song(song_path, cfg, run_dir=tmp_path / "whole")
    with pytest.raises(Interrupted) as e:
        train_song(song_path, cfg, run_dir=tmp_path / "cut", reporter=_InterruptAt(6))
    assert e.value.exit_code == 130 and "--resume" in str(e.value)
    cut = resume_run(tmp_path / "cut")
    assert cut.step == whole.step
    a, _ = checkpoint.restore(whole.run_dir, "last", _like(cfg, whole))
    b, _ = checkpoint.restore(cut.run_dir, "last", _like(cfg, whole))
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert [r["val_mse"] for r in cut.metrics] == [r["val_mse"] for r in whole.metrics]


def _like(cfg, result):
    from framegen.train import init_state

    return init_state(cfg, result.step)


def test_max_minutes_stops_cleanly_with_a_checkpoint(song_path, tmp_path):
    cfg = tiny_config(epochs=50, max_minutes=1e-4)
    result = train_song(song_path, cfg, run_dir=tmp_path / "run")
    assert result.stopped == "max_minutes"
    assert 1 <= result.step < 50
    assert result.metrics[-1]["partial"] is True
    assert checkpoint.exists(result.run_dir, "last")


def test_non_finite_loss_stops_with_a_clear_error(song_path, tmp_path):
    from framegen.train import prepare_song

    cfg = tiny_config(epochs=1)
    song, cfg = prepare_song(song_path, cfg)
    song = song.copy()
    song[: len(song) // 2] = np.inf
    with pytest.raises(TrainingDiverged, match="lower --lr"):
        train(cfg, tmp_path / "run", song)
    assert not checkpoint.exists(tmp_path / "run", "last")


def test_a_second_process_cannot_train_the_same_run(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / runs.LOCK_FILE).write_text("1\n")  # PID 1 is alive in every container
    with pytest.raises(Exception, match="in use by another framegen process"):
        with runs.run_lock(run):
            pass
    (run / runs.LOCK_FILE).write_text("999999999\n")  # a dead process: its lock is taken over
    with runs.run_lock(run):
        assert (run / runs.LOCK_FILE).read_text().strip() == str(os.getpid())


def test_config_round_trips_through_json(tmp_path):
    from framegen.config import load_config, save_config

    cfg = replace(tiny_config(), song="/x/y.wav", song_samples=5)
    save_config(cfg, tmp_path)
    assert load_config(tmp_path) == cfg
