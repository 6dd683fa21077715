import jax
import jax.numpy as jnp
import numpy as np
import pytest

from framegen.config import ModelConfig
from framegen.model import FrameGRU, build, init_params


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _np_cell(p, prefix, i, x, h, cond=None):
    """PyTorch's GRU equations in NumPy float64: layer ``i`` of the stack named ``prefix``, one step."""
    w_i, b_i, w_h, b_h = (p[f"{prefix}{n}_{i}"] for n in ("w_i", "b_i", "w_h", "b_h"))
    hdim = w_h.shape[0]
    gx = x @ w_i + b_i + (0 if cond is None else cond)
    gh = h @ w_h + b_h
    r = _sigmoid(gx[:, :hdim] + gh[:, :hdim])
    z = _sigmoid(gx[:, hdim:2 * hdim] + gh[:, hdim:2 * hdim])
    n = np.tanh(gx[:, 2 * hdim:] + r * gh[:, 2 * hdim:])
    return (1 - z) * n + z * h


def _np(params):
    return {k: np.asarray(v, np.float64) for k, v in params.items() if k != "head"}


def _np_head(params, x):
    head = params["head"]
    return x @ np.asarray(head["kernel"], np.float64) + np.asarray(head["bias"], np.float64)


def reference_forward(params, frames):
    """PyTorch's GRU equations in NumPy float64, one step at a time, then the linear head."""
    p = _np(params)
    x = np.asarray(frames, np.float64)
    b, t, _ = x.shape
    layer = 0
    while f"w_i_{layer}" in p:
        h = np.zeros((b, p[f"w_h_{layer}"].shape[0]))
        out = []
        for s in range(t):
            h = _np_cell(p, "", layer, x[:, s], h)
            out.append(h)
        x = np.stack(out, axis=1)
        layer += 1
    return _np_head(params, x)


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
    import framegen.gru as m

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


# ------------------------------------------------------------------------------------------------ tiers

TOWER = dict(frame_size=40, hidden=16, layers=2, tiers=(2, 3), tier_hidden=12, tier_layers=2)


def _np_log_mel(frames, frame_size):
    """Each frame's log-mel bands in float64: log(1 + 10^4 x (rFFT power / F) through the mel filterbank) / 8."""
    from framegen.tower import mel_bands

    power = np.abs(np.fft.rfft(frames, axis=-1)) ** 2 / frame_size
    return np.log(1 + 1e4 * (power @ mel_bands(frame_size).astype(np.float64))) / 8


def reference_tower(params, frames, tiers):
    """The tower frame by frame in NumPy float64, written from its definition (SampleRNN's wiring): the frame GRU
    at position s reads frame s, its layer 0's gates plus tier 1's projection number s mod R_1 of tier 1's output
    after its last whole span (zeros before the first); when frame s ends a span of tier k (P_k = R_1...R_k frames),
    tier k reads that span (R_1 frames' log-mel bands concatenated and projected, R_2 of those concatenated and
    projected, ...)
    with its own gates plus tier k+1's projection of its sub-step, as it was before this frame."""
    p = _np(params)
    x = np.asarray(frames, np.float64)
    b, t, _ = x.shape
    n_layers = sum(k.startswith("w_i_") for k in p)
    n_tier = sum(k.startswith("tier1_w_i_") for k in p)
    h = [np.zeros((b, p["w_h_0"].shape[0])) for _ in range(n_layers)]
    th = [[np.zeros((b, p[f"tier{k + 1}_w_h_0"].shape[0])) for _ in range(n_tier)] for k in range(len(tiers))]
    tops = []
    for s in range(t):
        j = s % tiers[0]
        cond = th[0][-1] @ p["tier1_up_w"][j] + p["tier1_up_b"][j]
        inp = x[:, s]
        for i in range(n_layers):
            h[i] = inp = _np_cell(p, "", i, inp, h[i], cond if i == 0 else None)
        tops.append(inp)
        before = [tier[-1] for tier in th]  # every tier's output before this frame
        span = 1
        for k, r in enumerate(tiers):
            span *= r
            if (s + 1) % span:
                continue
            u = _np_log_mel(x[:, s + 1 - span : s + 1], x.shape[2])  # (B, span, n)
            for kk in range(k + 1):
                u = u.reshape(b, -1, tiers[kk] * u.shape[2]) @ p[f"tier{kk + 1}_embed_w"] + p[f"tier{kk + 1}_embed_b"]
            u = u[:, 0]
            up = None
            if k + 1 < len(tiers):
                i_up = ((s + 1) // span - 1) % tiers[k + 1]
                up = before[k + 1] @ p[f"tier{k + 2}_up_w"][i_up] + p[f"tier{k + 2}_up_b"][i_up]
            for i in range(n_tier):
                th[k][i] = u = _np_cell(p, f"tier{k + 1}_", i, u, th[k][i], up if i == 0 else None)
    return _np_head(params, np.stack(tops, axis=1))


@pytest.fixture(scope="module")
def tower():
    model = FrameGRU(**TOWER)
    return model, init_params(model, jax.random.key(1))


def _stepped(model, params, frames, state=None):
    """Outputs (B, T, out) and the state of feeding ``frames`` (B, T, F) to ``step`` one frame at a time."""
    step = jax.jit(lambda x, st: model.apply({"params": params}, x, st, method=FrameGRU.step))
    state = model.initial_state(frames.shape[0]) if state is None else state
    outs = []
    for t in range(frames.shape[1]):
        out, state = step(frames[:, t], state)
        outs.append(out)
    return jnp.stack(outs, axis=1), state


def test_tower_sequence_and_step_match_a_naive_per_step_reference(tower):
    """Whole spans run as one scan per tier with learned upsampling; the 2 frames after the last whole span (14 =
    2 spans of 6 + 2) and ``step`` run frame by frame: all three agree with the float64 loop."""
    model, params = tower
    frames = jax.random.normal(jax.random.key(2), (3, 14, 40))
    want = reference_tower(params, frames, TOWER["tiers"])
    got, _ = jax.jit(lambda p, x: model.apply({"params": p}, x))(params, frames)
    assert np.linalg.norm(np.asarray(got, np.float64) - want) / np.linalg.norm(want) < 1e-5
    stepped, _ = _stepped(model, params, frames)
    assert np.linalg.norm(np.asarray(stepped, np.float64) - want) / np.linalg.norm(want) < 1e-5
    flat = reference_tower({**params, "tier1_up_w": 0 * params["tier1_up_w"], "tier1_up_b": 0 * params["tier1_up_b"]},
                           frames, TOWER["tiers"])
    assert np.linalg.norm(flat - want) > 0.05 * np.linalg.norm(want)  # the tiers do change the frame GRU's output


@pytest.mark.parametrize("length", [12, 14, 5])  # whole spans, whole spans + a part, less than one span
def test_prompt_warm_up_leaves_the_state_stepping_leaves(tower, length):
    model, params = tower
    frames = jax.random.normal(jax.random.key(3), (2, length, 40))
    _, state = jax.jit(lambda p, x: model.apply({"params": p}, x))(params, frames)
    _, want = _stepped(model, params, frames)
    assert jax.tree.structure(state) == jax.tree.structure(want)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), state, want)
    assert int(state["pos"]) == length % 6
    # a sequence from a state part-way through a span (the generation of a second clip, say) continues it exactly
    more = jax.random.normal(jax.random.key(4), (2, 7, 40))
    got, after = jax.jit(lambda p, x, st: model.apply({"params": p}, x, st))(params, more, state)
    out, again = _stepped(model, params, more, want)
    np.testing.assert_allclose(got, out, atol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5), after, again)


def test_tower_is_causal_no_output_reads_a_later_frame(tower):
    """Output i predicts frame i+1 from frames 0..i: changing frame j leaves every output before j as it was (at
    span borders and inside spans), and changes output j."""
    model, params = tower
    apply = jax.jit(lambda x: model.apply({"params": params}, x)[0])
    frames = jax.random.normal(jax.random.key(5), (2, 18, 40))
    base = np.asarray(apply(frames))
    for j in (0, 1, 5, 6, 7, 11, 12, 17):
        got = np.asarray(apply(frames.at[:, j].add(3.0)))
        np.testing.assert_allclose(got[:, :j], base[:, :j], atol=1e-6, err_msg=f"frame {j} leaked backwards")
        assert np.abs(got[:, j] - base[:, j]).max() > 1e-3


@pytest.mark.slow
def test_long_sequence_tower_path_matches_the_plain_one(tower, monkeypatch):
    """Above GX_BYTES the frame GRU's conditioning is made chunk by chunk inside gru_layer_x; same values and
    gradients as the materialised (T, B, 3H) path."""
    import framegen.gru as m

    model, params = tower
    frames = jax.random.normal(jax.random.key(6), (2, 60, 40))

    def run():
        loss = lambda p: jnp.sum(jnp.sin(model.apply({"params": p}, frames)[0]))  # noqa: E731
        return jax.jit(jax.value_and_grad(loss))(params)

    plain = run()
    monkeypatch.setattr(m, "GX_BYTES", 0)
    monkeypatch.setattr(m, "CHUNK", 20)  # frame GRU: 3 chunks of 20 (whole spans of R_1=2); tier 1: 2 of 15 (R_2=3)
    chunked = run()
    np.testing.assert_allclose(chunked[0], plain[0], rtol=1e-5)
    for a, b in zip(jax.tree.leaves(chunked[1]), jax.tree.leaves(plain[1])):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)


def test_bf16_tower_is_near_fp32_and_its_steps_agree_with_its_sequence(tower):
    """The tiers' matmuls take the frame GRU's precision: a bf16 tower stays within bf16 rounding of the fp32 one."""
    _, params = tower
    frames = jax.random.normal(jax.random.key(7), (2, 14, 40))
    out = {}
    for p in ("fp32", "bf16"):
        model = FrameGRU(**TOWER, precision=p)
        out[p] = np.asarray(jax.jit(lambda x, m=model: m.apply({"params": params}, x)[0])(frames))
    rel = np.linalg.norm(out["bf16"] - out["fp32"]) / np.linalg.norm(out["fp32"])
    assert 0 < rel < 0.03
    stepped, _ = _stepped(FrameGRU(**TOWER, precision="bf16"), params, frames)
    np.testing.assert_allclose(stepped, out["bf16"], atol=1e-5)
