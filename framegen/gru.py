"""The GRU recurrence as pure JAX functions: one cell step, a whole layer over time, and stacks of layers.

The cell computes PyTorch's ``torch.nn.GRU`` function (gate order r, z, n; the hidden-side bias b_hn sits inside
the reset product), so weights and results can be compared with PyTorch directly:

    r  = sigmoid(x W_ir + b_ir + h W_hr + b_hr)
    z  = sigmoid(x W_iz + b_iz + h W_hz + b_hz)
    n  = tanh(x W_in + b_in + r * (h W_hn + b_hn))
    h' = (1 - z) * n + z * h

The input side ``gx = x W_i + b_i`` is computed for all time steps outside the recurrence as one matmul; only
``h W_h + b_h`` runs inside ``lax.scan``.

``gru_layer`` has a hand-written VJP: the reverse scan carries only dh, recomputes the gates from the saved hidden
states, and emits the per-step gate gradients; the weight gradients are then one matmul and one sum outside the
scan. See experiments/bench/gru-kernels-cpu.md for why (measured on XLA CPU).

Mixed precision (``dtype=jnp.bfloat16``): every matmul, forward and backward, takes bfloat16 operands and
accumulates in float32 (``matmul``); parameters, their gradients, the hidden-state carry and the gate arithmetic
stay float32. ``dtype=jnp.float32`` is the plain float32 code, unchanged.
"""

from functools import partial

import jax
import jax.numpy as jnp


def _sigmoid(x):
    # Same function as jax.nn.sigmoid; on XLA CPU the logistic op fused with other transcendentals in one loop
    # vectorises badly, while tanh plus an FMA stays vectorised (measured, see the bench notes).
    return 0.5 * jnp.tanh(0.5 * x) + 0.5


def dot(a, b):
    """``a @ b`` in ``b``'s precision with a float32 result: ``a`` is cast to b's dtype (a bfloat16 weight makes a
    bfloat16 product that accumulates in float32). Contracts a's last axis with b's first."""
    if b.dtype != jnp.bfloat16:
        return a @ b
    dims = (((a.ndim - 1,), (0,)), ((), ()))
    return jax.lax.dot_general(a.astype(b.dtype), b, dims, preferred_element_type=jnp.float32)


def _einsum(spec, a, b, dtype):
    """``jnp.einsum(spec, a, b)`` with operands in ``dtype``, accumulated and returned in float32."""
    if dtype == jnp.float32:
        return jnp.einsum(spec, a, b)
    return jnp.einsum(spec, a.astype(dtype), b.astype(dtype), preferred_element_type=jnp.float32)


def _cast(a, dtype):
    """``a`` in ``dtype`` when that is bfloat16; as it is otherwise (float32, or float64 in the reference tests)."""
    return a.astype(dtype) if dtype == jnp.bfloat16 else a


def matmul(x, w, dtype=jnp.float32):
    """``x @ w``: x (..., K), w (K, N) -> (..., N) float32, its operands in ``dtype`` (float32 or bfloat16; the
    product accumulates in float32). Differentiable: the two backward products run in ``dtype`` too, and the
    gradients come back float32 (autodiff of a cast would leave them mixed float32 x bfloat16 products)."""
    if jnp.dtype(dtype) == jnp.float32:
        return x @ w
    return _matmul(jnp.dtype(dtype), x, w)


@partial(jax.custom_vjp, nondiff_argnums=(0,))
def _matmul(dtype, x, w):
    return dot(x, w.astype(dtype))


def _matmul_fwd(dtype, x, w):
    xc, wc = x.astype(dtype), w.astype(dtype)
    return dot(xc, wc), (xc, wc)


def _matmul_bwd(dtype, residuals, g):
    xc, wc = residuals
    dx = dot(g, wc.T)
    dw = _einsum("...k,...n->kn", xc, g, dtype)
    return dx, dw


_matmul.defvjp(_matmul_fwd, _matmul_bwd)


def _gates(w_h, b_h, gx_t, h):
    """Gate activations of one step: r, z, n: (B, H) and gh_n = h W_hn + b_hn: (B, H); w_h's dtype is the
    product's precision (h is cast to it), everything else is float32."""
    hidden = h.shape[-1]
    gh = dot(h, w_h) + b_h
    r = _sigmoid(gx_t[..., :hidden] + gh[..., :hidden])
    z = _sigmoid(gx_t[..., hidden : 2 * hidden] + gh[..., hidden : 2 * hidden])
    gh_n = gh[..., 2 * hidden :]
    n = jnp.tanh(gx_t[..., 2 * hidden :] + r * gh_n)
    return r, z, n, gh_n


def gru_cell(w_h, b_h, gx_t, h):
    """One GRU step. w_h: (H, 3H), b_h: (3H,), gx_t: (B, 3H) precomputed input gates, h: (B, H) -> (B, H).
    A bfloat16 ``w_h`` makes the recurrent product bfloat16 (float32 accumulation); the rest stays float32."""
    _, z, n, _ = _gates(w_h, b_h, gx_t, h)
    return n + z * (h - n)  # == (1 - z) * n + z * h, one op fewer


def _scan(f, init, xs, *, reverse=False, unroll=1):
    """``lax.scan(f, init, xs, reverse=reverse)`` that hands ``f`` its slice of ``xs`` through the loop carry.

    On XLA CPU (jax 0.10), a fusion that reads its operand through the loop's dynamic-slice of ``xs`` and holds
    more than one transcendental is compiled to scalar code (no vector instructions in the kernel's LLVM IR);
    this made the GRU's gate arithmetic cost more than its matmul at B=32. Fetching step t+1's slice at the end
    of step t into the carry leaves the gate fusion reading a plain buffer, which vectorises.
    Versions: needed on jax/jaxlib 0.10.x (re-measured on 0.10.2, 2-core CPU, a GRU layer's forward + backward,
    H=256: T=1000 B=32 623 vs 741 ms with lax.scan, T=100 B=128 272 vs 294 ms; experiments/bench/scan_workaround.py).
    pyproject bounds jax below 0.11: re-run that script before lifting the bound, and drop this for lax.scan once
    it is no faster.
    """
    length = jax.tree.leaves(xs)[0].shape[0]
    index = (lambda i: length - 1 - i) if reverse else (lambda i: i)

    def take(i):
        return jax.tree.map(lambda a: jax.lax.dynamic_index_in_dim(a, i, keepdims=False), xs)

    x_first = take(index(0))
    _, y_shapes = jax.eval_shape(f, init, x_first)
    ys = jax.tree.map(lambda s: jnp.zeros((length, *s.shape), s.dtype), y_shapes)

    def body(i, state):
        carry, x_t, ys = state
        carry, y = f(carry, x_t)
        ys = jax.tree.map(lambda buf, v: jax.lax.dynamic_update_index_in_dim(buf, v, index(i), 0), ys, y)
        return carry, take(index(jnp.minimum(i + 1, length - 1))), ys

    carry, _, ys = jax.lax.fori_loop(0, length, body, (init, x_first, ys), unroll=unroll)
    return carry, ys


def _scan_forward(w_h, b_h, gx, h0, unroll, dtype=jnp.float32):
    w_h = _cast(w_h, dtype)  # cast once, outside the loop

    def step(h, gx_t):
        h = gru_cell(w_h, b_h, gx_t, h)
        return h, h

    _, hs = _scan(step, h0, gx, unroll=unroll)
    return hs


def gru_layer(w_h, b_h, gx, h0, *, unroll=1, dtype=jnp.float32):
    """Run one GRU layer over time. gx: (T, B, 3H) time-major input gates, h0: (B, H) -> hs: (T, B, H).

    Differentiable in all four arguments. The backward pass keeps only ``hs`` (and the inputs) from the forward
    pass and recomputes the gates, so it stores O(T*B*H) and not the O(T*B*9H) of autodiff through the scan.
    ``unroll`` is passed to both scans (a fixed small factor; compile time does not depend on T). ``dtype``: the
    matmuls' operand precision (float32 or bfloat16), see the module docstring; w_h stays float32 and so does its
    gradient.
    """
    return _gru_layer(unroll, jnp.dtype(dtype), w_h, b_h, gx, h0)


@partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _gru_layer(unroll, dtype, w_h, b_h, gx, h0):
    return _scan_forward(w_h, b_h, gx, h0, unroll, dtype)


def _gru_layer_fwd(unroll, dtype, w_h, b_h, gx, h0):
    hs = _scan_forward(w_h, b_h, gx, h0, unroll, dtype)
    return hs, (w_h, b_h, gx, h0, hs)


def _bwd_step(w_h, b_h, dtype=jnp.float32):
    """Reverse-scan step: carry dL/dh_t, emit (dL/d gh_t: (B, 3H), dL/d a_n,t: (B, H)); gates recomputed."""
    w_h = _cast(w_h, dtype)
    w_h_t = w_h.T

    def step(dh, inputs):
        gx_t, hp, dh_out = inputs
        r, z, n, gh_n = _gates(w_h, b_h, gx_t, hp)
        g = dh + dh_out  # dL/dh_t: from step t+1 and from the layer output
        da_n = g * (1.0 - z) * (1.0 - n * n)
        da_z = g * (hp - n) * z * (1.0 - z)
        da_r = da_n * gh_n * r * (1.0 - r)
        dgh = jnp.concatenate([da_r, da_z, da_n * r], axis=-1)  # dL/d(h W_h + b_h): (B, 3H)
        return g * z + dot(dgh, w_h_t), (dgh, da_n)

    return step


def _gru_layer_bwd(unroll, dtype, residuals, dhs):
    w_h, b_h, gx, h0, hs = residuals
    hidden = h0.shape[-1]
    h_prev = jnp.concatenate([h0[None], hs[:-1]], axis=0)  # (T, B, H): the state each step started from
    dh0, (dgh, da_n) = _scan(_bwd_step(w_h, b_h, dtype), jnp.zeros_like(h0), (gx, h_prev, dhs), reverse=True,
                             unroll=unroll)
    dgx = jnp.concatenate([dgh[..., : 2 * hidden], da_n], axis=-1)  # (T, B, 3H)
    dw_h = _einsum("tbh,tbg->hg", h_prev, dgh, dtype)
    db_h = jnp.sum(dgh, axis=(0, 1))
    return dw_h.astype(w_h.dtype), db_h.astype(b_h.dtype), dgx.astype(gx.dtype), dh0.astype(h0.dtype)


_gru_layer.defvjp(_gru_layer_fwd, _gru_layer_bwd)


def upsample(o, w, b, dtype=jnp.float32):
    """A slower input at the rate of the layer it conditions: o (S, B, Hs), w (R, Hs, G), b (R, G) -> (S*R, B, G).

    Step s*R + j of the fast layer reads ``o[s] @ w[j] + b[j]``: one learned projection per sub-step of the slow
    step (SampleRNN's upsampling), added to the fast layer's input gates. One (S*B, Hs) x (Hs, R*G) ``matmul`` in
    ``dtype``; ``b`` None: no bias.
    """
    s, batch, hs = o.shape
    r, _, g = w.shape
    y = matmul(o, jnp.swapaxes(w, 0, 1).reshape(hs, r * g), dtype).reshape(s, batch, r, g)
    y = y if b is None else y + b[None, None]
    return jnp.swapaxes(y, 1, 2).reshape(s * r, batch, g)


def chunk_size(length: int, chunk: int, ratio: int = 1) -> int:
    """The largest multiple of ``ratio`` that divides ``length`` and is at most ``chunk`` (at least ``ratio``)."""
    return max(c for c in range(ratio, max(chunk, ratio) + 1, ratio) if length % c == 0)


def gru_layer_x(w_i, b_i, w_h, b_h, x, h0, *, chunk=100, unroll=1, dtype=jnp.float32, slow=None):
    """``gru_layer(w_h, b_h, x @ w_i + b_i [+ upsample(*slow)], h0)`` in O(T*B*(H + F)) memory: the layer for long
    sequences.

    x: (T, B, F) time-major inputs, w_i: (F, 3H), b_i: (3H,) -> hs: (T, B, H). Time runs in chunks of ``chunk``
    steps (the largest divisor of T not above it): each chunk's input gates are one (chunk*B, F) x (F, 3H)
    matmul, made in the forward pass and again in the backward pass, so neither gx (T, B, 3H) nor its gradient
    is ever held whole; the backward pass keeps only hs and x. Weight gradients are per-chunk matmuls.
    ``slow`` = (o (T/R, B, Hs), w (R, Hs, 3H), b (R, 3H)): a slower tier's conditioning (``upsample``), made per
    chunk too (chunks are then whole multiples of R), so the (T, B, 3H) conditioning is never held either.
    """
    length = x.shape[0]
    chunk = chunk_size(length, chunk, 1 if slow is None else slow[1].shape[0])
    return _gru_layer_x(chunk, unroll, jnp.dtype(dtype), w_i, b_i, w_h, b_h, x, h0, slow)


def _chunked(a, chunk):
    return a.reshape(a.shape[0] // chunk, chunk, *a.shape[1:])


def _slow_chunks(slow, chunk):
    """The slow input's rows of each chunk: (T/chunk, chunk/R, B, Hs), or None."""
    return None if slow is None else _chunked(slow[0], chunk // slow[1].shape[0])


def _gx(w_ic, b_i, slow, x_c, o_c, dtype):
    gx = dot(x_c, w_ic) + b_i
    return gx if slow is None else gx + upsample(o_c, slow[1], slow[2], dtype)


@partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2))
def _gru_layer_x(chunk, unroll, dtype, w_i, b_i, w_h, b_h, x, h0, slow):
    return _gru_layer_x_fwd(chunk, unroll, dtype, w_i, b_i, w_h, b_h, x, h0, slow)[0]


def _gru_layer_x_fwd(chunk, unroll, dtype, w_i, b_i, w_h, b_h, x, h0, slow):
    w_ic = _cast(w_i, dtype)

    def outer(h, xs):
        x_c, o_c = xs
        hs_c = _scan_forward(w_h, b_h, _gx(w_ic, b_i, slow, x_c, o_c, dtype), h, unroll, dtype)
        return hs_c[-1], hs_c

    _, hs = jax.lax.scan(outer, h0, (_chunked(x, chunk), _slow_chunks(slow, chunk)))
    hs = hs.reshape(x.shape[0], *h0.shape)
    return hs, (w_i, b_i, w_h, b_h, x, h0, slow, hs)


def _gru_layer_x_bwd(chunk, unroll, dtype, residuals, dhs):
    w_i, b_i, w_h, b_h, x, h0, slow, hs = residuals
    hidden = h0.shape[-1]
    hs_c = _chunked(hs, chunk)
    starts = jnp.concatenate([h0[None], hs_c[:-1, -1]], axis=0)  # (T/chunk, B, H): state before each chunk
    step = _bwd_step(w_h, b_h, dtype)
    w_ic = _cast(w_i, dtype)

    x_all, dhs_all, o_all = _chunked(x, chunk), _chunked(dhs, chunk), _slow_chunks(slow, chunk)
    # An upper layer's input has dhs's shape (H): its dx overwrites dhs chunk by chunk in the loop carry, in
    # place, so the layer's backward holds one (T, B, H) gradient buffer instead of two.
    in_place = x.shape[-1] == hidden

    def body(i, carry):
        c = len(x_all) - 1 - i  # chunks in reverse
        (dh, dw_i, db_i, dw_h, db_h, dslow), out, do = carry
        x_c, hs_cc, dhs_c = x_all[c], hs_c[c], (out if in_place else dhs_all)[c]
        o_c = None if slow is None else o_all[c]
        h_prev = jnp.concatenate([starts[c][None], hs_cc[:-1]], axis=0)
        dh, (dgh, da_n) = _scan(step, dh, (_gx(w_ic, b_i, slow, x_c, o_c, dtype), h_prev, dhs_c), reverse=True,
                                unroll=unroll)
        dgx = jnp.concatenate([dgh[..., : 2 * hidden], da_n], axis=-1)  # (chunk, B, 3H)
        dw_i = dw_i + _einsum("tbf,tbg->fg", x_c, dgx, dtype)
        dw_h = dw_h + _einsum("tbh,tbg->hg", h_prev, dgh, dtype)
        if slow is not None:  # upsample's gradients: per slow row s and sub-step r
            dg = dgx.reshape(o_c.shape[0], -1, *dgx.shape[1:])  # (chunk/R, R, B, 3H)
            dslow = (dslow[0] + _einsum("sbh,srbg->rhg", o_c, dg, dtype), dslow[1] + jnp.sum(dg, axis=(0, 2)))
            do = do.at[c].set(_einsum("srbg,rhg->sbh", dg, slow[1], dtype).astype(do.dtype))
        grads = (dh, dw_i, db_i + jnp.sum(dgx, axis=(0, 1)), dw_h, db_h + jnp.sum(dgh, axis=(0, 1)), dslow)
        return grads, out.at[c].set(dot(dgx, w_ic.T).astype(out.dtype)), do

    dslow0 = None if slow is None else (jnp.zeros_like(slow[1]), jnp.zeros_like(slow[2]))
    grads = (jnp.zeros_like(h0), jnp.zeros_like(w_i), jnp.zeros_like(b_i), jnp.zeros_like(w_h), jnp.zeros_like(b_h),
             dslow0)
    out = dhs_all if in_place else jnp.zeros(x_all.shape, x.dtype)
    do0 = None if slow is None else jnp.zeros(o_all.shape, o_all.dtype)
    (dh0, dw_i, db_i, dw_h, db_h, dslow), dx, do = jax.lax.fori_loop(0, len(x_all), body, (grads, out, do0))
    dslow = None if slow is None else (do.reshape(slow[0].shape), *dslow)
    return dw_i, db_i, dw_h, db_h, dx.reshape(x.shape), dh0, dslow


_gru_layer_x.defvjp(_gru_layer_x_fwd, _gru_layer_x_bwd)


# ---------------------------------------------------------------------------------------------------- stacks

# Input gates gx (T, B, 3H) float32 above this size are never materialised: the layer runs ``gru_layer_x`` (input
# projection fused into time chunks, recomputed in the backward pass: a quarter of the memory at T=10,000). Below it,
# precomputing gx once is cheaper: it saves the backward's second x @ W_i (experiments/bench/gru-kernels-cpu.md).
GX_BYTES = 256 * 2**20
CHUNK = 100  # time steps per chunk of gru_layer_x (the largest divisor of T not above it)


def uniform(scale: float):
    """An initializer drawing uniformly from [-scale, scale]."""

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -scale, scale)

    return init


def init_cells(param, prefix: str, fan_ins: list, hidden: int) -> list:
    """The parameters of a stack of GRU layers of ``hidden`` units, layer i reading ``fan_ins[i]`` inputs, made with
    ``param(name, init, shape)`` (a Flax module's ``self.param``) and named ``{prefix}w_i_{i}`` and so on."""
    k_h = 1.0 / hidden**0.5  # PyTorch's GRU init for the recurrent side
    return [
        {
            # input side scaled by fan-in so a 40,000-sample frame does not saturate the gates
            "w_i": param(f"{prefix}w_i_{i}", uniform((1.0 / fan_in) ** 0.5), (fan_in, 3 * hidden)),
            "b_i": param(f"{prefix}b_i_{i}", uniform(k_h), (3 * hidden,)),
            "w_h": param(f"{prefix}w_h_{i}", uniform(k_h), (hidden, 3 * hidden)),
            "b_h": param(f"{prefix}b_h_{i}", uniform(k_h), (3 * hidden,)),
        }
        for i, fan_in in enumerate(fan_ins)
    ]


def _layer(cell, x, h0, slow=None, dtype=jnp.float32):
    """One GRU layer over time-major x: (T, B, I) -> hs (T, B, H), by the cheaper path for its size. ``slow``:
    a slower tier's conditioning (o, w, b) added to the input gates (``upsample``); ``dtype``: the matmuls'
    operand precision."""
    t, b = x.shape[:2]
    three_h = cell["w_h"].shape[1]
    chunk = chunk_size(t, CHUNK, 1 if slow is None else slow[1].shape[0])
    if t * b * three_h * 4 > GX_BYTES and chunk >= 10:  # a T with no divisor near CHUNK keeps the plain path
        return gru_layer_x(cell["w_i"], cell["b_i"], cell["w_h"], cell["b_h"], x, h0, chunk=chunk, dtype=dtype,
                           slow=slow)
    gx = matmul(x, cell["w_i"], dtype) + cell["b_i"]  # all T projections at once
    gx = gx if slow is None else gx + upsample(*slow, dtype)
    return gru_layer(cell["w_h"], cell["b_h"], gx, h0, dtype=dtype)


def stack(cells, x, state, slow=None, dtype=jnp.float32):
    """GRU layers over time-major x (T, B, I), layer 0 conditioned by ``slow`` -> (hs of the top layer (T, B, H),
    the state after the last step (L, B, H))."""
    last = []
    for i, (cell, h0) in enumerate(zip(cells, state)):
        x = _layer(cell, x, h0, slow if i == 0 else None, dtype)
        last.append(x[-1])
    return x, jnp.stack(last)


def stack_step(cells, x, state, cond=None, dtype=jnp.float32):
    """One step of GRU layers: x (B, I), state (L, B, H), ``cond`` (B, 3H) added to layer 0's input gates ->
    (top (B, H), new state)."""
    new = []
    for i, (cell, h) in enumerate(zip(cells, state)):
        gx = matmul(x, cell["w_i"], dtype) + cell["b_i"]
        x = gru_cell(cell["w_h"].astype(dtype), cell["b_h"], gx if cond is None or i else gx + cond, h)
        new.append(x)
    return x, jnp.stack(new)
