"""Generation-quality modes end to end: scheduled sampling and input noise (MSE), seam smoothing, the VQ mode from
the command line, sample clips scored into metrics.jsonl, ``framegen evaluate`` and generate's flags."""

import json
from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from framegen import generate as gen
from framegen import vq
from framegen.cli import cli
from framegen.data import inputs_targets
from framegen.model import FrameGRU, init_params
from framegen.train import feed_back, mse_loss
from tests.conftest import RATE, sine_song, tiny_config, write

F = 40
TINY = ["-F", "40", "-T", "50", "--hidden", "199", "--batch-size", "16", "--sample-rate", str(RATE)]


@pytest.fixture(scope="module")
def tiny_model():
    model = FrameGRU(frame_size=F, hidden=199, layers=2)
    return model, init_params(model, jax.random.key(0))


def _jitted(model):
    """model.apply and mse_loss compiled once per shape and config (eager scans recompile on every call)."""
    apply = jax.jit(lambda p, x: model.apply({"params": p}, x)[0])
    loss = jax.jit(mse_loss, static_argnums=(1, 4))
    fb = jax.jit(feed_back, static_argnums=(0, 4))
    return apply, loss, fb


# ------------------------------------------------------------------------------ scheduled sampling, input noise


def test_feedback_prob_one_replaces_every_input_after_the_first_by_the_previous_prediction(tiny_model):
    model, params = tiny_model
    apply, _, fb = _jitted(model)
    inputs = jax.random.normal(jax.random.key(1), (64, 6, F))
    preds = apply(params, inputs)
    tm = lambda a: jnp.swapaxes(a, 0, 1)  # noqa: E731  feed_back works time-major, like the train step
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


# ------------------------------------------------------------------------------------------------------- seams


def _max_seam_jump(y, frame_size):
    seams = np.arange(frame_size, len(y), frame_size)
    return float(np.max(np.abs(y[seams] - y[seams - 1])))


def test_smooth_seams_removes_steps_between_constant_frames_and_keeps_the_length():
    rng = np.random.default_rng(0)
    y = np.repeat(rng.uniform(-1, 1, 30), F).astype(np.float32)  # constant frames, a step at every border
    y = y[:-7]  # a partial last frame
    out = gen.smooth_seams(y, F, 8)
    assert out.shape == y.shape
    before, after = _max_seam_jump(y, F), _max_seam_jump(out, F)
    assert before > 0.5 and after < 0.02 * before
    assert np.max(np.abs(np.diff(out))) < 0.25 * before  # the step became a ramp, with no new jump inside it
    middle = np.arange(len(y)) % F
    far = (middle >= 8) & (middle < F - 8)
    np.testing.assert_array_equal(out[far], y[far])  # frame interiors are untouched
    np.testing.assert_array_equal(gen.smooth_seams(y, F, 0), y)


def test_smooth_seams_leaves_a_smooth_waveform_nearly_alone():
    t = np.arange(40 * F)
    y = np.sin(2 * np.pi * t / 97.0).astype(np.float32)
    out = gen.smooth_seams(y, F, 10)
    assert np.max(np.abs(out - y)) < 0.01


def test_overlap_add_of_true_successors_is_the_song_itself():
    song = np.random.default_rng(1).standard_normal(50 * F).astype(np.float32)
    offsets = np.array([[5 * F + 3 + i * F for i in range(20)], [7 + i * F for i in range(20)]])
    out = gen.overlap_add(song, offsets, F, 16)
    assert out.shape == (2, 19 * F)
    np.testing.assert_allclose(out[0], song[6 * F + 3 : 25 * F + 3], atol=1e-6)
    np.testing.assert_allclose(out[1], song[F + 7 : 20 * F + 7], atol=1e-6)


def test_overlap_add_crossfades_real_surroundings_instead_of_jumping():
    rng = np.random.default_rng(2)
    song = np.repeat(rng.uniform(-1, 1, 40), 4 * F).astype(np.float32)  # constant stretches of 4 frames
    offsets = (rng.integers(0, 40, (1, 25)) * 4 + 1) * F  # frames from the middle of random stretches
    hard = gen.overlap_add(song, offsets, F, 0)[0]
    soft = gen.overlap_add(song, offsets, F, 16)[0]
    assert hard.shape == soft.shape == (24 * F,)
    assert _max_seam_jump(hard, F) > 0.5 and _max_seam_jump(soft, F) < 0.1 * _max_seam_jump(hard, F)
    np.testing.assert_array_equal(hard, song[offsets[0, 1:, None] + np.arange(F)].reshape(-1))


def test_continue_audio_crossfade_is_exact_length_and_only_touches_the_borders(tiny_model):
    model, params = tiny_model
    cfg = tiny_config()
    seed = np.asarray(jax.random.normal(jax.random.key(6), (5, F)))
    plain = gen.continue_audio(model, params, seed, 1234, cfg)
    faded = gen.continue_audio(model, params, seed, 1234, cfg, crossfade_ms=1.0)  # 8 samples at 8 kHz
    assert plain.shape == faded.shape == (1, 1234)
    pos = np.arange(1234) % F
    far = (pos >= 8) & (pos < F - 8)
    np.testing.assert_allclose(faded[0, far], plain[0, far], atol=1e-6)
    assert not np.allclose(faded[0, ~far], plain[0, ~far])


# ------------------------------------------------------------------------------------------ VQ mode end to end


@pytest.fixture(scope="module")
def vq_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("vq")
    song = write(d / "song.wav", sine_song(6.0))
    r = CliRunner().invoke(cli, ["train", str(song), *TINY, "--epochs", "1", "--output", "vq", "--codebook", "16",
                                 "--crossfade", "1", "--run-dir", str(d / "run")], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return d / "run", song


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


def test_vq_generate_samples_with_temperature_and_top_k_and_prints_flags(vq_run, tmp_path):
    run_dir, _ = vq_run
    outs = []
    for seed in ("0", "0", "1"):
        out = tmp_path / f"g{len(outs)}.wav"
        r = CliRunner().invoke(cli, ["generate", "--run", str(run_dir), "--seconds", "1.5", "--out", str(out),
                                     "--temperature", "0.8", "--top-k", "4", "--sample-seed", seed])
        assert r.exit_code == 0, r.output
        assert "flags:" in r.output and "Frechet ratio" in r.output
        y, sr = sf.read(out, dtype="float32")
        assert sr == RATE and len(y) == 12000
        outs.append(y)
    np.testing.assert_array_equal(outs[0], outs[1])
    assert not np.array_equal(outs[0], outs[2])


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


def test_generate_warns_loudly_on_stderr_when_the_result_is_silent(vq_run, tmp_path, monkeypatch):
    run_dir, _ = vq_run
    monkeypatch.setattr(gen, "continue_audio", lambda *a, **k: np.zeros((1, 12000), np.float32))
    r = CliRunner().invoke(cli, ["generate", "--run", str(run_dir), "--seconds", "1.5", "--out",
                                 str(tmp_path / "s.wav")])
    assert r.exit_code == 0
    assert "flags: silent" in r.stdout
    warning = [line for line in r.stderr.splitlines() if line.startswith("WARNING")]
    assert len(warning) == 1 and "SILENT" in warning[0], r.stderr


# --------------------------------------------------------------------------------------------- framegen evaluate


def test_evaluate_command_flags_noise_exits_zero_and_writes_json_and_plot(tmp_path):
    song = write(tmp_path / "song.wav", sine_song(8.0))
    rng = np.random.default_rng(0)
    noise = write(tmp_path / "noise.wav", (0.3 * rng.standard_normal(3 * RATE)).astype(np.float32))
    r = CliRunner().invoke(cli, ["evaluate", str(noise), "--reference", str(song), "--json", "--plot",
                                 str(tmp_path / "cmp.png")])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert "noise_like" in doc["flags"] and doc["audible_ratio"] > 0.9 and doc["frechet_ratio"] > 4
    assert (tmp_path / "cmp.png").stat().st_size > 5000
    text = CliRunner().invoke(cli, ["evaluate", str(noise), "--reference", str(song)])
    assert text.exit_code == 0 and "flags: noise_like" in text.output and "frechet_ratio" in text.output


def test_evaluate_help_documents_every_metric_and_errors_are_one_line(tmp_path):
    from framegen.evaluate import Evaluation

    r = CliRunner().invoke(cli, ["evaluate", "--help"])
    assert r.exit_code == 0
    for name in ("audible_ratio", "loudness_ratio", "noise_likeness", "frechet_ratio", "novelty", "loop_period_s",
                 "clipping_ratio", "nonfinite_ratio", "rate_mismatch", "flags"):
        assert f"{name}:" in r.output, name
    assert "Euler gamma" in r.output  # quoted from the docstring, not paraphrased
    assert all(f"{f}:" in r.output for f in Evaluation.__dataclass_fields__)
    r = CliRunner().invoke(cli, ["evaluate", str(tmp_path / "missing.wav"), "--reference", str(tmp_path / "x.wav")])
    assert r.exit_code == 1 and len(r.output.strip().splitlines()) == 1 and "Traceback" not in r.output


# ---------------------------------------------------------------------------------------------- sweep axes


def test_output_modes_are_sweep_options_per_axis(tmp_path):
    from framegen import sweep

    song = write(tmp_path / "song.wav", sine_song(8.0))
    path = tmp_path / "modes.toml"
    path.write_text("""
[sweep]
frame_sizes = [40, 80]
seq_lens = [50]
budget_seconds = 10
[data]
sample_rate = 8000
[model]
hidden = 199
[train]
feedback_prob = 0.5
input_noise = 0.1
crossfade_ms = 2.0
[frame_size.80]
output = "vq"
codebook = 32
codebook_kind = "plain"
vq_emit = "scaled"
feedback_prob = 0.0
""")
    plan = {t.key: t.config for t in sweep.plan_sweep(sweep.make_spec(path, song=song), tmp_path / "sw").trials}
    mse, vqc = plan["f40-t50"], plan["f80-t50"]
    assert (mse.model.output, mse.train.feedback_prob, mse.train.input_noise) == ("mse", 0.5, 0.1)
    assert (vqc.model.output, vqc.model.codebook, vqc.model.codebook_kind, vqc.model.vq_emit) == \
        ("vq", 32, "plain", "scaled")
    assert vqc.train.feedback_prob == 0.0 and vqc.train.input_noise == 0.1 and vqc.train.crossfade_ms == 2.0


def test_crossfade_defaults_to_25_ms_for_vq_and_off_for_mse():
    from framegen.cli import _run_config
    from framegen.config import VQ_CROSSFADE_MS

    base = dict(frame_size=40, seq_len=50, sample_rate=RATE, val_fraction=0.1, hidden=199, layers=2, epochs=1,
                batch_size=8, lr=1e-3, seed=0, max_minutes=None, sample_every=0, feedback_prob=0.0, input_noise=0.0)
    assert _run_config(**base).train.crossfade_ms == 0.0  # the MSE path is unchanged
    assert _run_config(**base, output="vq").train.crossfade_ms == VQ_CROSSFADE_MS == 25.0
    assert _run_config(**base, output="vq", crossfade_ms=0.0).train.crossfade_ms == 0.0
