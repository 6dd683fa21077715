"""framegen.rollout: each new frame is the model's output fed back (MSE) or a sampled code's frame (VQ), in fp32,
bf16 and with tiers and a clock, checked against stepping the model by hand."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from framegen import rollout as ro
from framegen.model import FrameGRU, init_params

F = 40


@pytest.mark.slow
def test_rollout_feeds_each_prediction_back_and_strips_the_prompt():
    model = FrameGRU(frame_size=40, hidden=199, layers=2)
    params = init_params(model, jax.random.key(0))
    prompt = jax.random.normal(jax.random.key(1), (2, 5, 40))
    frames = ro.rollout(model, params, prompt, 4)
    assert frames.shape == (2, 4, 40)
    # Frame k must be what the model predicts after reading the prompt and frames 0..k-1 teacher-forced.
    for k in range(4):
        ctx = jnp.concatenate([prompt, frames[:, :k]], axis=1)
        out, _ = model.apply({"params": params}, ctx)
        np.testing.assert_allclose(frames[:, k], out[:, -1], atol=2e-5)


@pytest.mark.parametrize("frame_size", [40, 800])  # 800 > 3H/4: head and W_i0 folded into one matrix
def test_fast_rollout_equals_feeding_step_outputs_back(frame_size):
    model = FrameGRU(frame_size=frame_size, hidden=256, layers=2)
    params = init_params(model, jax.random.key(0))
    prompt = jax.random.normal(jax.random.key(1), (3, 5, frame_size))
    got = ro.rollout(model, params, prompt, 25)
    out, h = model.apply({"params": params}, prompt)
    frame, want = out[:, -1], []
    for _ in range(25):  # the plain rollout: every step's output is the next step's input
        want.append(frame)
        frame, h = model.apply({"params": params}, frame, h, method=FrameGRU.step)
    np.testing.assert_allclose(got, jnp.stack(want, axis=1), atol=2e-6, rtol=1e-5)
    assert ro.rollout(model, params, prompt, 1).shape == (3, 1, frame_size)


@pytest.mark.slow
def test_rollout_vq_samples_from_the_model_and_feeds_the_emitted_frame_back():
    k = 16
    model = FrameGRU(frame_size=F, hidden=199, layers=2, out_dim=k)
    params = init_params(model, jax.random.key(0))
    prompt = jax.random.normal(jax.random.key(1), (2, 5, F))
    table = jax.random.normal(jax.random.key(2), (k, 3, F))
    # greedy: frame j is a row of the likeliest code after reading the prompt and frames 0..j-1 (one causal pass)
    frames, codes, which = ro.rollout_vq(model, params, prompt, 6, table, jax.random.key(3), 0.0, 0)
    assert frames.shape == (2, 6, F) and codes.shape == (2, 6)
    logits, _ = model.apply({"params": params}, jnp.concatenate([prompt, frames[:, :-1]], axis=1))
    np.testing.assert_array_equal(codes, jnp.argmax(logits[:, 4:], axis=-1))
    np.testing.assert_array_equal(frames, table[codes, which])  # the emitted row of the sampled code
    assert which.min() >= 0 and which.max() < 3
    # sampling: the key decides, reproducibly
    a = ro.rollout_vq(model, params, prompt, 6, table, jax.random.key(5), 1.0, 0)[1]
    b = ro.rollout_vq(model, params, prompt, 6, table, jax.random.key(5), 1.0, 0)[1]
    c = ro.rollout_vq(model, params, prompt, 6, table, jax.random.key(6), 1.0, 0)[1]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_bf16_rollout_is_the_bf16_model_fed_back_and_near_fp32():
    params = init_params(FrameGRU(frame_size=40, hidden=199, layers=2), jax.random.key(0))
    prompt = jax.random.normal(jax.random.key(1), (2, 5, 40))
    frames = {p: ro.rollout(FrameGRU(frame_size=40, hidden=199, layers=2, precision=p), params, prompt, 4)
              for p in ("fp32", "bf16")}
    model = FrameGRU(frame_size=40, hidden=199, layers=2, precision="bf16")
    for k in range(4):
        ctx = jnp.concatenate([prompt, frames["bf16"][:, :k]], axis=1)
        out, _ = model.apply({"params": params}, ctx)
        np.testing.assert_allclose(frames["bf16"][:, k], out[:, -1], atol=2e-3)
    rel = np.linalg.norm(frames["bf16"] - frames["fp32"]) / np.linalg.norm(frames["fp32"])
    assert 0 < rel < 0.03



TOWER = dict(frame_size=F, hidden=16, layers=2, tiers=(2, 3), tier_hidden=12)


def test_tiered_rollout_equals_feeding_step_by_hand_with_a_clock():
    """MSE with tiers and a beat clock: the rollout is FrameGRU.step fed its own output (the prompt of 7 frames is not
    a whole number of spans of 6, so generation starts mid-span)."""
    from framegen import clock

    model = FrameGRU(**TOWER, clock_dim=4)
    params = init_params(model, jax.random.key(0))
    prompt = jax.random.normal(jax.random.key(1), (2, 7, F))
    prompt_clock = jnp.asarray(clock.features(np.linspace(0, 3, 14, dtype=np.float32).reshape(2, 7)))
    clock_in = jnp.asarray(clock.features(np.linspace(3, 6, 26, dtype=np.float32).reshape(13, 2)))
    got = ro.rollout(model, params, prompt, 13, prompt_clock=prompt_clock, clock_in=clock_in)
    step = jax.jit(lambda x, h, c: model.apply({"params": params}, x, h, c, method=FrameGRU.step))
    h = model.initial_state(2)
    for t in range(7):
        out, h = step(prompt[:, t], h, prompt_clock[:, t])
    frame, want = out, []
    for k in range(13):
        want.append(frame)
        frame, h = step(frame, h, clock_in[k])
    np.testing.assert_allclose(got, jnp.stack(want, axis=1), atol=2e-6, rtol=1e-5)


def test_tiered_vq_rollout_samples_what_stepping_by_hand_gives():
    k = 16
    model = FrameGRU(**TOWER, out_dim=k)
    params = init_params(model, jax.random.key(0))
    prompt = jax.random.normal(jax.random.key(1), (3, 8, F))  # 3 streams
    table = jax.random.normal(jax.random.key(2), (k, 3, F))
    frames, codes, which = ro.rollout_vq(model, params, prompt, 11, table, jax.random.key(3), 0.0, 0)
    np.testing.assert_array_equal(frames, table[codes, which])
    step = jax.jit(lambda x, h: model.apply({"params": params}, x, h, method=FrameGRU.step))
    h = model.initial_state(3)
    for t in range(8):
        logits, h = step(prompt[:, t], h)
    for j in range(11):  # greedy: each code is the argmax after the prompt and the frames emitted before it
        np.testing.assert_array_equal(codes[:, j], jnp.argmax(logits, axis=-1))
        logits, h = step(frames[:, j], h)
