"""framegen.gru against PyTorch's GRU equations: a float64 NumPy reference, autodiff of a plain scan, finite
differences, and torch.nn.GRU itself with copied weights."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from framegen.gru import gru_cell, gru_layer, gru_layer_x, matmul, upsample

T, B, H = 6, 3, 4


def np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def np_cell(w_h, b_h, gx_t, h):
    """PyTorch's GRU step, written out in float64 NumPy."""
    gh = h @ w_h + b_h
    r = np_sigmoid(gx_t[:, :H] + gh[:, :H])
    z = np_sigmoid(gx_t[:, H : 2 * H] + gh[:, H : 2 * H])
    n = np.tanh(gx_t[:, 2 * H :] + r * gh[:, 2 * H :])
    return (1.0 - z) * n + z * h


def np_layer(w_h, b_h, gx, h0):
    hs, h = [], h0
    for gx_t in gx:
        h = np_cell(w_h, b_h, gx_t, h)
        hs.append(h)
    return np.stack(hs)


def plain_scan_layer(w_h, b_h, gx, h0):
    """The straightforward JAX GRU (jax.nn.sigmoid, lax.scan, autodiff): the gradient reference."""

    def step(h, gx_t):
        gh = h @ w_h + b_h
        r = jax.nn.sigmoid(gx_t[:, :H] + gh[:, :H])
        z = jax.nn.sigmoid(gx_t[:, H : 2 * H] + gh[:, H : 2 * H])
        n = jnp.tanh(gx_t[:, 2 * H :] + r * gh[:, 2 * H :])
        h = (1.0 - z) * n + z * h
        return h, h

    return jax.lax.scan(step, h0, gx)[1]


def make_args(seed=0, t=T, scale=0.7):
    rng = np.random.default_rng(seed)
    return [scale * rng.standard_normal(s) for s in [(H, 3 * H), (3 * H,), (t, B, 3 * H), (B, H)]]


def rel_err(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - b)) / np.max(np.abs(b)))


def test_cell_float32_matches_float64_reference():
    w_h, b_h, gx, h0 = make_args()
    got = gru_cell(*(jnp.asarray(a, jnp.float32) for a in (w_h, b_h, gx[0], h0)))
    assert got.dtype == jnp.float32
    assert rel_err(got, np_cell(w_h, b_h, gx[0], h0)) < 1e-5


@pytest.mark.parametrize("unroll", [1, 2])
def test_layer_float32_matches_float64_reference(unroll):
    args = make_args(seed=1, t=7)
    got = gru_layer(*(jnp.asarray(a, jnp.float32) for a in args), unroll=unroll)
    assert got.shape == (7, B, H)
    assert rel_err(got, np_layer(*args)) < 1e-5


def test_layer_float64_matches_reference_tightly():
    args = make_args(seed=2)
    with jax.enable_x64(True):
        got = jax.jit(gru_layer)(*(jnp.asarray(a) for a in args))
        assert got.dtype == jnp.float64
    assert rel_err(got, np_layer(*args)) < 1e-12


def test_single_step_layer_is_the_cell():
    w_h, b_h, gx, h0 = (jnp.asarray(a, jnp.float32) for a in make_args(seed=3, t=1))
    np.testing.assert_allclose(gru_layer(w_h, b_h, gx, h0)[0], gru_cell(w_h, b_h, gx[0], h0), rtol=1e-6)


def _loss(layer, cot):
    # A scalar that weights every output differently, so every (t, b, h) cotangent is exercised.
    return lambda w_h, b_h, gx, h0: jnp.sum(jnp.sin(layer(w_h, b_h, gx, h0)) * cot)


@pytest.mark.parametrize("unroll", [1, 3])
def test_loss_and_grads_match_autodiff_of_plain_scan_float64(unroll):
    args = make_args(seed=4)
    cot = np.random.default_rng(5).standard_normal((T, B, H))
    with jax.enable_x64(True):
        args = [jnp.asarray(a) for a in args]
        ours = jax.value_and_grad(_loss(lambda *a: gru_layer(*a, unroll=unroll), cot), argnums=(0, 1, 2, 3))
        ref = jax.value_and_grad(_loss(plain_scan_layer, cot), argnums=(0, 1, 2, 3))
        (l1, g1), (l2, g2) = jax.jit(ours)(*args), ref(*args)
    np.testing.assert_allclose(l1, l2, rtol=1e-12)
    for name, a, b in zip(("w_h", "b_h", "gx", "h0"), g1, g2):
        assert a.shape == b.shape, name
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=name)


def test_grads_match_finite_differences_float64():
    args = make_args(seed=6, t=4)
    with jax.enable_x64(True):
        check_grads(jax.jit(gru_layer), [jnp.asarray(a) for a in args], order=1, modes=["rev"], atol=1e-6, rtol=1e-6)


def test_float32_grads_close_to_float64_reference():
    args = make_args(seed=7)
    cot = np.random.default_rng(8).standard_normal((T, B, H))
    with jax.enable_x64(True):
        ref = jax.grad(_loss(plain_scan_layer, cot), argnums=(0, 1, 2, 3))(*(jnp.asarray(a) for a in args))
    got = jax.grad(_loss(gru_layer, cot.astype(np.float32)), argnums=(0, 1, 2, 3))(
        *(jnp.asarray(a, jnp.float32) for a in args)
    )
    for name, a, b in zip(("w_h", "b_h", "gx", "h0"), got, ref):
        assert a.dtype == jnp.float32, name
        assert rel_err(a, np.asarray(b)) < 1e-5, name


def test_program_size_does_not_grow_with_time():
    # Compile time must not depend on T: the traced program is the same for 5 and 500 steps.
    def size(t):
        args = [jnp.zeros(a.shape, jnp.float32) for a in make_args(t=t)]
        grad = jax.grad(lambda *a: jnp.sum(gru_layer(*a, unroll=2)), argnums=(0, 2))
        return len(str(jax.make_jaxpr(grad)(*args)).split())  # tokens: the printer wraps lines by width

    assert size(5) == size(500)


def test_matches_torch_gru_with_copied_weights():
    torch = pytest.importorskip("torch")
    f_in = 5
    torch.manual_seed(0)
    net = torch.nn.GRU(f_in, H, num_layers=1, batch_first=True)
    x = torch.randn(B, T, f_in)
    h0 = torch.randn(1, B, H)
    with torch.no_grad():
        want, _ = net(x, h0)
    w_ih, w_hh, b_ih, b_hh = (p.detach().numpy() for p in (net.weight_ih_l0, net.weight_hh_l0, net.bias_ih_l0,
                                                            net.bias_hh_l0))
    gx = np.swapaxes(x.numpy(), 0, 1) @ w_ih.T + b_ih  # (T, B, 3H), torch's gate order r, z, n
    hs = gru_layer(jnp.asarray(w_hh.T), jnp.asarray(b_hh), jnp.asarray(gx), jnp.asarray(h0[0].numpy()))
    np.testing.assert_allclose(np.swapaxes(np.asarray(hs), 0, 1), want.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("chunk", [4, 5])  # 5 does not divide T=12: the largest divisor below is used
@pytest.mark.parametrize("f_in", [5, H])  # input size H: an upper layer, whose dx overwrites dhs in place
def test_fused_chunked_layer_equals_projection_then_layer_float64(chunk, f_in):
    t = 12
    rng = np.random.default_rng(9)
    w_i, b_i = 0.5 * rng.standard_normal((f_in, 3 * H)), 0.5 * rng.standard_normal(3 * H)
    w_h, b_h, _, h0 = make_args(seed=10, t=t)
    x = rng.standard_normal((t, B, f_in))
    cot = rng.standard_normal((t, B, H))
    with jax.enable_x64(True):
        args = [jnp.asarray(a) for a in (w_i, b_i, w_h, b_h, x, h0)]

        def ref(w_i, b_i, w_h, b_h, x, h0):
            return jnp.sum(plain_scan_layer(w_h, b_h, x @ w_i + b_i, h0) * cot)

        def ours(*a):
            return jnp.sum(gru_layer_x(*a, chunk=chunk) * cot)

        (l1, g1), (l2, g2) = (jax.jit(jax.value_and_grad(fn, argnums=tuple(range(6))))(*args) for fn in (ours, ref))
    np.testing.assert_allclose(l1, l2, rtol=1e-12)
    for name, a, b in zip(("w_i", "b_i", "w_h", "b_h", "x", "h0"), g1, g2):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=name)


def test_upsample_is_one_projection_per_sub_step():
    rng = np.random.default_rng(11)
    o, w, b = rng.standard_normal((3, 2, 5)), rng.standard_normal((4, 5, 6)), rng.standard_normal((4, 6))
    got = np.asarray(upsample(jnp.asarray(o), jnp.asarray(w), jnp.asarray(b)))
    assert got.shape == (12, 2, 6)
    for t in range(12):  # step t = 4s + j of the fast layer reads slow step s through projection j
        np.testing.assert_allclose(got[t], o[t // 4] @ w[t % 4] + b[t % 4], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("chunk", [4, 7])  # 7: the largest multiple of R=2 dividing T=12 below it, 6, is used
def test_fused_chunked_layer_with_a_slow_input_equals_the_materialised_gates_float64(chunk):
    t, r, hs = 12, 2, 5
    rng = np.random.default_rng(12)
    w_i, b_i = 0.5 * rng.standard_normal((3, 3 * H)), 0.5 * rng.standard_normal(3 * H)
    w_h, b_h, _, h0 = make_args(seed=13, t=t)
    x = rng.standard_normal((t, B, 3))
    o, w_o, b_o = rng.standard_normal((t // r, B, hs)), 0.5 * rng.standard_normal((r, hs, 3 * H)), \
        0.5 * rng.standard_normal((r, 3 * H))
    cot = rng.standard_normal((t, B, H))
    with jax.enable_x64(True):
        args = [jnp.asarray(a) for a in (w_i, b_i, w_h, b_h, x, h0, o, w_o, b_o)]

        def ref(w_i, b_i, w_h, b_h, x, h0, o, w_o, b_o):
            return jnp.sum(plain_scan_layer(w_h, b_h, x @ w_i + b_i + upsample(o, w_o, b_o), h0) * cot)

        def ours(w_i, b_i, w_h, b_h, x, h0, o, w_o, b_o):
            return jnp.sum(gru_layer_x(w_i, b_i, w_h, b_h, x, h0, chunk=chunk, slow=(o, w_o, b_o)) * cot)

        (l1, g1), (l2, g2) = (jax.jit(jax.value_and_grad(fn, argnums=tuple(range(9))))(*args) for fn in (ours, ref))
    np.testing.assert_allclose(l1, l2, rtol=1e-12)
    for name, a, b in zip(("w_i", "b_i", "w_h", "b_h", "x", "h0", "o", "w_o", "b_o"), g1, g2):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=name)


def _rel_l2(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.mark.parametrize("fused", [False, True])
def test_bfloat16_layer_and_grads_stay_float32_and_near_float32(fused):
    """bf16 operands, float32 accumulation: outputs and every gradient float32, within bf16's rounding (2^-8 per
    operand; 2% relative L2 allowed) of the float32 layer; the fused chunked layer is the same function."""
    t, f_in = 12, 5
    rng = np.random.default_rng(11)
    w_i, b_i = 0.5 * rng.standard_normal((f_in, 3 * H)), 0.5 * rng.standard_normal(3 * H)
    w_h, b_h, _, h0 = make_args(seed=12, t=t)
    x, cot = rng.standard_normal((t, B, f_in)), rng.standard_normal((t, B, H))
    args = [jnp.asarray(a, jnp.float32) for a in (w_i, b_i, w_h, b_h, x, h0)]

    def loss(dtype):
        def fn(w_i, b_i, w_h, b_h, x, h0):
            if fused:
                hs = gru_layer_x(w_i, b_i, w_h, b_h, x, h0, chunk=4, dtype=dtype)
            else:
                hs = gru_layer(w_h, b_h, matmul(x, w_i, dtype) + b_i, h0, dtype=dtype)
            return jnp.sum(jnp.sin(hs) * cot)

        return jax.jit(jax.value_and_grad(fn, argnums=tuple(range(6))))(*args)

    (l32, g32), (l16, g16) = loss(jnp.float32), loss(jnp.bfloat16)
    assert l16.dtype == jnp.float32 and abs(float(l16) - float(l32)) < 0.02 * abs(float(l32)) + 1e-3
    for name, a, b in zip(("w_i", "b_i", "w_h", "b_h", "x", "h0"), g16, g32):
        assert a.dtype == jnp.float32, name
        assert _rel_l2(a, b) < 0.02, name
    assert _rel_l2(g16[0], g32[0]) > 0  # it did run in bf16


def test_bfloat16_matmul_grads_are_bfloat16_products_of_the_float32_ones():
    rng = np.random.default_rng(13)
    x, w = jnp.asarray(rng.standard_normal((7, 3, 16)), jnp.float32), jnp.asarray(rng.standard_normal((16, 5)),
                                                                                   jnp.float32)
    cot = jnp.asarray(rng.standard_normal((7, 3, 5)), jnp.float32)
    bf = jnp.bfloat16
    y, vjp = jax.vjp(lambda x, w: matmul(x, w, bf), x, w)
    dx, dw = vjp(cot)
    np.testing.assert_allclose(y, x.astype(bf).astype(jnp.float32) @ w.astype(bf).astype(jnp.float32), rtol=1e-5)
    np.testing.assert_allclose(dx, cot.astype(bf).astype(jnp.float32) @ w.astype(bf).astype(jnp.float32).T,
                               rtol=1e-5, atol=1e-5)
    want_dw = jnp.einsum("tbk,tbn->kn", x.astype(bf).astype(jnp.float32), cot.astype(bf).astype(jnp.float32))
    np.testing.assert_allclose(dw, want_dw, rtol=1e-5, atol=1e-5)
    assert dx.dtype == dw.dtype == jnp.float32


@pytest.mark.parametrize("fused", [False, True])
def test_bfloat16_slow_input_grads_stay_float32_and_near_float32(fused):
    """A tier's conditioning in bf16 (the precision of the frame GRU's matmuls): float32 gradients within bf16's
    rounding of the float32 ones, chunked or materialised."""
    t, r, hs = 12, 2, 5
    rng = np.random.default_rng(14)
    w_i, b_i = 0.5 * rng.standard_normal((3, 3 * H)), 0.5 * rng.standard_normal(3 * H)
    w_h, b_h, _, h0 = make_args(seed=15, t=t)
    x, cot = rng.standard_normal((t, B, 3)), rng.standard_normal((t, B, H))
    o, w_o, b_o = rng.standard_normal((t // r, B, hs)), 0.5 * rng.standard_normal((r, hs, 3 * H)), \
        0.5 * rng.standard_normal((r, 3 * H))
    args = [jnp.asarray(a, jnp.float32) for a in (w_i, b_i, w_h, b_h, x, h0, o, w_o, b_o)]

    def loss(dtype):
        def fn(w_i, b_i, w_h, b_h, x, h0, o, w_o, b_o):
            if fused:
                out = gru_layer_x(w_i, b_i, w_h, b_h, x, h0, chunk=4, dtype=dtype, slow=(o, w_o, b_o))
            else:
                gx = matmul(x, w_i, dtype) + b_i + upsample(o, w_o, b_o, dtype)
                out = gru_layer(w_h, b_h, gx, h0, dtype=dtype)
            return jnp.sum(jnp.sin(out) * cot)

        return jax.jit(jax.value_and_grad(fn, argnums=tuple(range(9))))(*args)

    (l32, g32), (l16, g16) = loss(jnp.float32), loss(jnp.bfloat16)
    assert abs(float(l16) - float(l32)) < 0.02 * abs(float(l32)) + 1e-3
    for name, a, b in zip(("w_i", "b_i", "w_h", "b_h", "x", "h0", "o", "w_o", "b_o"), g16, g32):
        assert a.dtype == jnp.float32, name
        assert _rel_l2(a, b) < 0.02, name
    assert _rel_l2(g16[7], g32[7]) > 0  # it did run in bf16
