"""framegen.step: the losses (MSE, scheduled sampling, input noise, VQ cross-entropy) against their definitions, and
the run's keys."""

import math
from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from framegen import vq
from framegen.data import inputs_targets
from framegen.errors import UsageError
from framegen.model import FrameGRU, init_params
from framegen.step import KEY_PURPOSES, mse_loss, run_keys, scheduled_sampling
from tests.conftest import tiny_config

F = 40


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


@pytest.mark.slow
def test_vq_loss_is_cross_entropy_against_the_target_codes():
    from framegen.step import vq_loss
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


@pytest.mark.slow
def test_one_jitted_step_trains_every_tier_of_a_vq_tower():
    """The tower is one jitted step: after two, every parameter of both tiers has moved (the gradient reaches tier 2
    through tier 1's conditioning), and the loss is finite."""
    from framegen.data import Split
    from framegen.step import data_mesh, init_state, make_train_step, replicate

    base = tiny_config()
    cfg = replace(base, model=replace(base.model, output="vq", codebook=16, tiers=(5, 2), tier_hidden=16))
    song = jnp.asarray(np.random.default_rng(0).standard_normal(40_000), jnp.float32)
    cent = vq.unit(jax.random.normal(jax.random.key(2), (16, F)))
    codebook = {"centroids": cent, "means": cent}  # what vq_arrays hands the step
    state, song, codebook = replicate((init_state(cfg, 10), song, codebook), data_mesh(8))  # as train() does
    before = jax.tree.map(np.asarray, state["params"])
    step = make_train_step(cfg, Split(40_000, 36_000), 10)
    for _ in range(2):  # the warm-up's rate is 0 at step 0
        state, loss = step(state, song, codebook)
    assert np.isfinite(float(loss))
    moved = {k: not np.array_equal(v, np.asarray(state["params"][k])) for k, v in before.items() if k != "head"}
    assert all(moved.values()), [k for k, v in moved.items() if not v]
    assert {k for k in moved if k.startswith("tier2_")}


def test_vq_refuses_scheduled_sampling():
    from framegen.data import Split
    from framegen.step import make_train_step
    from tests.conftest import tiny_config

    cfg = tiny_config(feedback_prob=0.5)
    cfg = replace(cfg, model=replace(cfg.model, output="vq", codebook=16))
    with pytest.raises(UsageError, match="--feedback-prob"):
        make_train_step(cfg, Split(100_000, 90_000), 10)


def test_one_bf16_step_matches_fp32_loss_and_gradients():
    """Tolerance: loss within 1% and every parameter's gradient within 3% relative L2 (cosine > 0.999) of float32's,
    on the same parameters and batch. bf16 rounds each matmul operand to 8 bits of mantissa (0.4%); accumulation,
    gates and the loss stay float32, so the errors average out over K-long sums instead of adding up."""
    import jax.numpy as jnp

    from framegen import data
    from framegen.model import build
    from framegen.step import init_state, mse_loss
    from tests.conftest import sine_song

    cfg32, cfg16 = tiny_config("fp32"), tiny_config("bf16")
    song = jnp.asarray(sine_song() / 0.35)
    split = data.check_fits(len(song), cfg32.data)
    offsets = data.random_offsets(jax.random.key(3), 8, split, cfg32.data)
    examples = data.gather(song, offsets, cfg32.data, time_major=True)
    params = init_state(cfg32, 10)["params"]
    key = jax.random.key(4)
    (l32, g32), (l16, g16) = (
        jax.jit(jax.value_and_grad(mse_loss), static_argnums=(1, 4))(params, build(c.model, 40), examples, key, c)
        for c in (cfg32, cfg16))
    assert abs(float(l16) / float(l32) - 1) < 0.01
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(g16), jax.tree.leaves(g32)):
        a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
        assert a.dtype == b.dtype and np.linalg.norm(a - b) < 0.03 * np.linalg.norm(b), path
        assert a @ b > 0.999 * np.linalg.norm(a) * np.linalg.norm(b), path


def test_each_purpose_of_a_run_draws_from_its_own_key_and_the_same_one_on_resume():
    bits = {p: np.asarray(jax.random.key_data(k)).tobytes() for p, k in run_keys(0).items()}
    assert tuple(bits) == KEY_PURPOSES and len(set(bits.values())) == len(KEY_PURPOSES)
    assert {p: np.asarray(jax.random.key_data(k)).tobytes() for p, k in run_keys(0).items()} == bits
    assert np.asarray(jax.random.key_data(run_keys(1)["init"])).tobytes() != bits["init"]
