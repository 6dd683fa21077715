import jax
import jax.numpy as jnp
import numpy as np
import pytest

from framegen.config import ModelConfig
from framegen.model import FrameGRU, build, init_params


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def reference_forward(params, frames):
    """PyTorch's GRU equations in NumPy float64, one step at a time, then the linear head."""
    p = {k: np.asarray(v, np.float64) for k, v in params.items() if k != "head"}
    x = np.asarray(frames, np.float64)
    b, t, _ = x.shape
    layer = 0
    while f"w_i_{layer}" in p:
        w_i, b_i, w_h, b_h = (p[f"{n}_{layer}"] for n in ("w_i", "b_i", "w_h", "b_h"))
        hdim = w_h.shape[0]
        h = np.zeros((b, hdim))
        out = np.zeros((b, t, hdim))
        for s in range(t):
            gx = x[:, s] @ w_i + b_i
            gh = h @ w_h + b_h
            r = _sigmoid(gx[:, :hdim] + gh[:, :hdim])
            z = _sigmoid(gx[:, hdim:2 * hdim] + gh[:, hdim:2 * hdim])
            n = np.tanh(gx[:, 2 * hdim:] + r * gh[:, 2 * hdim:])
            h = (1 - z) * n + z * h
            out[:, s] = h
        x = out
        layer += 1
    head = params["head"]
    return x @ np.asarray(head["kernel"], np.float64) + np.asarray(head["bias"], np.float64)


def test_frame_gru_matches_float64_reference():
    model = FrameGRU(frame_size=40, hidden=199, layers=2)
    params = init_params(model, jax.random.key(1))
    frames = jax.random.normal(jax.random.key(2), (3, 17, 40))
    got, state = model.apply({"params": params}, frames)
    want = reference_forward(params, frames)
    rel = np.linalg.norm(np.asarray(got, np.float64) - want) / np.linalg.norm(want)
    assert rel < 1e-5
    assert state.shape == (2, 3, 199)
    got_tm, state_tm = model.apply({"params": params}, frames.swapaxes(0, 1), time_major=True)
    np.testing.assert_array_equal(got_tm, got.swapaxes(0, 1))  # the same computation, only the layout differs
    np.testing.assert_array_equal(state_tm, state)


def test_step_by_step_equals_whole_sequence():
    model = FrameGRU(frame_size=40, hidden=199, layers=2)
    params = init_params(model, jax.random.key(1))
    frames = jax.random.normal(jax.random.key(3), (2, 6, 40))
    whole, final = model.apply({"params": params}, frames)
    h = model.initial_state(2)
    for t in range(6):
        out, h = model.apply({"params": params}, frames[:, t], h, method=FrameGRU.step)
        np.testing.assert_allclose(out, whole[:, t], atol=1e-5)
    np.testing.assert_allclose(h, final, atol=1e-5)


def test_output_sizes_follow_the_mode():
    for output, width in (("mse", 40), ("vq", 64)):
        model = build(ModelConfig(hidden=199, output=output, codebook=64), 40)
        params = init_params(model, jax.random.key(0))
        out, _ = model.apply({"params": params}, jnp.zeros((1, 3, 40)))
        assert out.shape == (1, 3, width)


@pytest.mark.slow
def test_long_sequence_path_matches_float64_reference(monkeypatch):
    """Above GX_BYTES the layers run gru_layer_x (fused, chunked); same function, same params."""
    import framegen.model as m

    monkeypatch.setattr(m, "GX_BYTES", 0)
    model = FrameGRU(frame_size=40, hidden=199, layers=2)
    params = init_params(model, jax.random.key(1))
    frames = jax.random.normal(jax.random.key(2), (3, 40, 40))  # T=40: one chunk of 40, then chunks of 20 below
    got, _ = model.apply({"params": params}, frames)
    want = reference_forward(params, frames)
    assert np.linalg.norm(np.asarray(got, np.float64) - want) / np.linalg.norm(want) < 1e-5
    monkeypatch.setattr(m, "CHUNK", 20)
    grads = [jax.grad(lambda p: jnp.sum(model.apply({"params": p}, frames)[0] ** 2))(params)]
    monkeypatch.setattr(m, "GX_BYTES", 2**62)
    grads.append(jax.grad(lambda p: jnp.sum(model.apply({"params": p}, frames)[0] ** 2))(params))
    for a, b in zip(jax.tree.leaves(grads[0]), jax.tree.leaves(grads[1])):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
