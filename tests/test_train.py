"""framegen.train: losses, scheduled sampling, the VQ loss, the epoch loop, resume, stopping, sample clips."""

import json
import math
import os
import signal
from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from framegen import checkpoint, runs, vq
from framegen.data import inputs_targets
from framegen.errors import Interrupted, TrainingDiverged, UsageError
from framegen.model import FrameGRU, init_params
from framegen.train import Reporter, mse_loss, resume_run, scheduled_sampling, train, train_song
from tests.conftest import tiny_config

F = 40

METRIC_KEYS = {"epoch", "step", "train_mse", "val_mse", "val_snr_db", "zero_mse", "copy_mse", "seconds"}


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_max_minutes_stops_cleanly_with_a_checkpoint(song_path, tmp_path):
    cfg = tiny_config(epochs=50, max_minutes=1e-4)
    result = train_song(song_path, cfg, run_dir=tmp_path / "run")
    assert result.stopped == "max_minutes"
    assert 1 <= result.step < 50
    assert result.metrics[-1]["partial"] is True
    assert checkpoint.exists(result.run_dir, "last")


@pytest.mark.slow
def test_non_finite_loss_stops_with_a_clear_error(song_path, tmp_path):
    from framegen.train import prepare_song

    cfg = tiny_config(epochs=1)
    song, cfg = prepare_song(song_path, cfg)
    song = song.copy()
    song[: len(song) // 2] = np.inf
    with pytest.raises(TrainingDiverged, match="lower --lr"):
        train(cfg, tmp_path / "run", song)
    assert not checkpoint.exists(tmp_path / "run", "last")


def _jitted(model):
    """model.apply and mse_loss compiled once per shape and config (eager scans recompile on every call)."""
    apply = jax.jit(lambda p, x: model.apply({"params": p}, x)[0])
    loss = jax.jit(mse_loss, static_argnums=(1, 4))
    fb = jax.jit(scheduled_sampling, static_argnums=(0, 4))
    return apply, loss, fb


def test_feedback_prob_one_replaces_every_input_after_the_first_by_the_previous_prediction(tiny_model):
    model, params = tiny_model
    apply, _, fb = _jitted(model)
    inputs = jax.random.normal(jax.random.key(1), (64, 6, F))
    preds = apply(params, inputs)
    tm = lambda a: jnp.swapaxes(a, 0, 1)  # noqa: E731  scheduled_sampling works time-major, like the train step
    fed = tm(fb(model, params, tm(inputs), jax.random.key(2), 1.0))
    np.testing.assert_array_equal(fed[:, 0], inputs[:, 0])
    np.testing.assert_allclose(fed[:, 1:], preds[:, :-1], atol=1e-5)
    half = tm(fb(model, params, tm(inputs), jax.random.key(3), 0.5))
    replaced = np.asarray(jnp.any(half != inputs, axis=-1))[:, 1:]
    assert 0.4 < replaced.mean() < 0.6  # about half of the inputs after the first
    np.testing.assert_array_equal(np.asarray(half)[:, 1:][replaced], np.asarray(preds)[:, :-1][replaced])


def test_mse_loss_feeds_predictions_and_noises_inputs_as_configured(tiny_model):
    model, params = tiny_model
    apply, jloss, _ = _jitted(model)
    examples = 0.2 * jax.random.normal(jax.random.key(4), (64, 7, F))  # quiet, so noise of 0.5 std matters
    inputs, targets = inputs_targets(examples)
    key = jax.random.key(5)
    k_noise, _ = jax.random.split(key)

    def loss(**train):  # the loss reads examples time-major (T+1, B, F), like the train step
        return float(jloss(params, model, jnp.swapaxes(examples, 0, 1), key, tiny_config(**train)))

    def mse_of(x):
        return float(jnp.mean((apply(params, x) - targets) ** 2))

    forced = loss()
    assert forced == pytest.approx(mse_of(inputs), rel=1e-5)
    preds = apply(params, inputs)
    fed = jnp.concatenate([inputs[:, :1], preds[:, :-1]], axis=1)
    assert loss(feedback_prob=1.0) == pytest.approx(mse_of(fed), rel=1e-5)
    assert loss(feedback_prob=1.0) != pytest.approx(forced, rel=1e-3)
    noise = jax.random.normal(k_noise, (inputs.shape[1], inputs.shape[0], F))  # drawn time-major, as the loss does
    noisy = inputs + 0.5 * jnp.swapaxes(noise, 0, 1)
    assert loss(input_noise=0.5) == pytest.approx(mse_of(noisy), rel=1e-5)
    assert loss(input_noise=0.5) != pytest.approx(forced, rel=1e-2)


def test_vq_training_writes_codebook_and_vq_metrics_with_a_scored_sample(vq_run):
    run_dir, _ = vq_run
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["model"]["output"] == "vq" and cfg["model"]["codebook"] == 16 and cfg["train"]["crossfade_ms"] == 1.0
    cb = vq.load(run_dir, k=16, frame_size=F, kind="gain-shape")
    assert cb.gain_shape
    (row,) = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert {"train_ce", "val_ce", "val_acc", "val_mse", "val_quant_mse", "zero_mse", "copy_mse"} <= set(row)
    assert row["val_ce"] < np.log(16)  # learned something: below a uniform guess
    assert 0 <= row["val_acc"] <= 1 and row["val_quant_mse"] <= row["val_mse"] + 1e-9
    # the sample clip was scored against the song (sample_every defaults to 5: the run's last epoch is sampled)
    assert row["sample"] == "samples/epoch-001.wav"
    for k in ("sample_audible_ratio", "sample_loudness_ratio", "sample_frechet_ratio", "sample_noise_likeness"):
        assert isinstance(row[k], float), k
    assert isinstance(row["sample_flags"], list)


def test_vq_resume_reuses_the_saved_codebook(vq_run, monkeypatch):
    from framegen import data
    from framegen.config import load_config
    from framegen.generate import load_song_for
    from framegen.train import Reporter, _codebook

    run_dir, _ = vq_run
    cfg = load_config(run_dir)
    song = load_song_for(cfg)
    saved = vq.load(run_dir, k=16, frame_size=F, kind="gain-shape")

    def refit(*a, **k):
        raise AssertionError("a resumed VQ run must not refit its codebook")

    monkeypatch.setattr(vq, "fit", refit)
    arrays, emission = _codebook(cfg, run_dir, song, data.check_fits(len(song), cfg.data), Reporter())
    np.testing.assert_array_equal(np.asarray(arrays["centroids"]), saved.centroids)
    np.testing.assert_array_equal(emission.table, vq.emission_table(saved, song, "exemplar"))
    np.testing.assert_array_equal(emission.offsets, saved.exemplar_offsets)
    assert _codebook(replace(cfg, model=replace(cfg.model, output="mse")), run_dir, song, None, None) == (None, None)


@pytest.mark.slow
def test_vq_loss_is_cross_entropy_against_the_target_codes():
    from framegen.train import vq_loss
    from tests.conftest import tiny_config

    cfg = tiny_config()
    cfg = replace(cfg, model=replace(cfg.model, output="vq", codebook=16))
    model = FrameGRU(frame_size=F, hidden=199, layers=2, out_dim=16)
    params = init_params(model, jax.random.key(0))
    examples = jax.random.normal(jax.random.key(1), (2, 51, F))
    cent = vq.unit(jax.random.normal(jax.random.key(2), (16, F)))
    loss = vq_loss(params, model, jnp.swapaxes(examples, 0, 1), jax.random.key(3), cfg, cent)  # time-major
    logits, _ = model.apply({"params": params}, examples[:, :-1])
    codes = vq.encode(examples[:, 1:], cent, True)
    manual = -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), codes[..., None], axis=-1))
    assert float(loss) == pytest.approx(float(manual), rel=1e-5)
    assert float(loss) == pytest.approx(math.log(16), rel=0.2)  # an untrained model is near uniform


def test_vq_refuses_scheduled_sampling():
    from framegen.data import Split
    from framegen.train import make_train_step
    from tests.conftest import tiny_config

    cfg = tiny_config(feedback_prob=0.5)
    cfg = replace(cfg, model=replace(cfg.model, output="vq", codebook=16))
    with pytest.raises(UsageError, match="--feedback-prob"):
        make_train_step(cfg, Split(100_000, 90_000), 10)
