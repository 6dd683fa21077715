"""The training step's pure core: optimizer, losses (MSE, VQ cross-entropy, scheduled sampling), the jitted step
over a device mesh, and validation sums. No files, clocks or printing: the epoch loop in ``train`` drives these.

State that changes (params, optimizer state, step) is one pytree passed into the jitted step and returned. Every
random draw of a run comes from one root key, split once by purpose (``run_keys``); the batch for step s is drawn
from ``fold_in(keys["steps"], s)``, so the data order depends on the step alone: a resumed run sees exactly the
batches an uninterrupted one would.
"""

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from framegen import clock, data, vq
from framegen.config import RunConfig
from framegen.errors import UsageError
from framegen.model import build, init_params

VAL_CHUNK = 64  # validation examples per jitted call: one compile, bounded memory
KEY_PURPOSES = ("init", "steps", "codebook", "samples")


def run_keys(seed: int) -> dict:
    """The run's PRNG keys, one per purpose, split once from the root key of its RNG ``seed``: parameter init, the
    training steps (each folds in its step number), the codebook's k-means and the sample clips; no two purposes
    share randomness, and each is the same on every resume."""
    return dict(zip(KEY_PURPOSES, jax.random.split(jax.random.key(seed), len(KEY_PURPOSES)), strict=True))


def make_optimizer(cfg: RunConfig, total_steps: int):
    """Adam with global-norm clipping; linear warm-up then cosine decay to 10% of the peak rate."""
    lr, warmup = cfg.train.lr, max(1, min(100, total_steps // 10))
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, lr, warmup_steps=warmup, decay_steps=max(total_steps, warmup + 1), end_value=0.1 * lr
    )
    return optax.chain(optax.clip_by_global_norm(cfg.train.clip_norm), optax.adam(schedule))


def total_steps(cfg: RunConfig, steps_per_epoch: int) -> int:
    """Steps of the whole run: its epochs, or fewer when ``max_steps`` caps them."""
    total = cfg.train.epochs * steps_per_epoch
    return total if cfg.train.max_steps is None else min(total, cfg.train.max_steps)


def init_state(cfg: RunConfig, total_steps: int) -> dict:
    """The training state pytree: {"params", "opt_state", "step"}."""
    model = build(cfg.model, cfg.data.frame_size)
    params = init_params(model, run_keys(cfg.train.seed)["init"])
    opt_state = make_optimizer(cfg, total_steps).init(params)
    return {"params": params, "opt_state": opt_state, "step": jnp.zeros((), jnp.int32)}


def scheduled_sampling(model, params, inputs, key, prob: float, clock_in=None):
    """Scheduled sampling: replace each input frame t >= 1 by the model's own prediction of it with ``prob``.
    inputs: (T, B, F), time-major like everything in the train step.

    One teacher-forced pass (no gradient) gives every prediction at once: a parallel approximation of sampling
    the model's outputs one step at a time.
    """
    preds, _ = model.apply({"params": jax.lax.stop_gradient(params)}, inputs, time_major=True, clock=clock_in)
    preds = jax.lax.stop_gradient(preds)
    mask = jax.random.bernoulli(key, prob, inputs.shape[:2])[..., None]
    mask = mask.at[0].set(False)
    shifted = jnp.concatenate([inputs[:1], preds[:-1]], axis=0)
    return jnp.where(mask, shifted, inputs)


def mse_loss(params, model, examples, key, cfg: RunConfig, clock_in=None):
    """Mean squared error of next-frame predictions; examples: (T+1, B, F) time-major (``data.gather(...,
    time_major=True)``: the scan's layout, so no transposes in the step); inputs may be noised or fed back.
    ``clock_in`` (T, B, C): the beat clock of each input frame, for models that read one."""
    inputs, targets = data.inputs_targets(examples, time_major=True)
    k_noise, k_fb = jax.random.split(key)
    if cfg.train.input_noise > 0:
        inputs = inputs + cfg.train.input_noise * jax.random.normal(k_noise, inputs.shape, inputs.dtype)
    if cfg.train.feedback_prob > 0:
        inputs = scheduled_sampling(model, params, inputs, k_fb, cfg.train.feedback_prob, clock_in)
    preds, _ = model.apply({"params": params}, inputs, time_major=True, clock=clock_in)
    return jnp.mean((preds - targets) ** 2)


def vq_loss(params, model, examples, key, cfg: RunConfig, centroids, clock_in=None):
    """VQ mode: softmax cross-entropy of the logits (T, B, K) against the code of each target frame (T, B);
    examples (T+1, B, F) time-major as in ``mse_loss``.

    The model reads real (optionally noised) frames; targets are encoded on device with the codebook's
    ``centroids`` (K, F) each step, since examples start at any sample offset.
    """
    inputs, targets = data.inputs_targets(examples, time_major=True)
    codes = vq.encode(targets, centroids, cfg.model.codebook_kind == "gain-shape")
    if cfg.train.input_noise > 0:
        inputs = inputs + cfg.train.input_noise * jax.random.normal(key, inputs.shape, inputs.dtype)
    logits, _ = model.apply({"params": params}, inputs, time_major=True, clock=clock_in)
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, codes))


def data_mesh(batch_size: int, devices=None) -> Mesh:
    """The 1-D mesh "data" over ``devices`` (default: every local device) that the batch is split over.

    One device is the same code path: a mesh of one, so nothing is split."""
    devices = list(jax.local_devices() if devices is None else devices)
    if batch_size % len(devices):
        raise UsageError(f"--batch-size {batch_size} does not split evenly over the {len(devices)} local devices: "
                         f"pass a multiple of {len(devices)}")
    return Mesh(np.array(devices), ("data",))


def replicate(tree, mesh: Mesh):
    """Put every array of ``tree`` whole on every device of ``mesh`` (params, optimizer state, the song)."""
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))


def make_train_step(cfg: RunConfig, split: data.Split, total_steps: int, devices=None):
    """A jitted ``step(state, song[, codebook]) -> (state, loss)``; the batch is drawn on device from the step
    number. VQ runs pass their codebook arrays ({"centroids", "means"}, see ``vq_arrays``).

    Data parallel over ``devices`` (default: all local ones): each device gets batch_size / devices examples, the
    state is replicated (pass it through ``replicate``), and the gradient mean is all-reduced by XLA (GSPMD)."""
    mesh = data_mesh(cfg.train.batch_size, devices)
    replicated = NamedSharding(mesh, PartitionSpec())
    by_example = NamedSharding(mesh, PartitionSpec(None, "data"))  # examples (T+1, B, F): split along B
    model = build(cfg.model, cfg.data.frame_size)
    optimizer = make_optimizer(cfg, total_steps)
    base_key = run_keys(cfg.train.seed)["steps"]
    if cfg.model.output == "vq" and cfg.train.feedback_prob > 0:
        raise UsageError("--feedback-prob is for --output mse only (VQ feeds back sampled frames at generation); "
                         "use --input-noise to make a VQ model robust")

    @partial(jax.jit, donate_argnums=0, out_shardings=replicated)
    def step(state, song, codebook=None, beats=None):
        k_batch, k_loss = jax.random.split(jax.random.fold_in(base_key, state["step"]))
        offsets = data.random_offsets(k_batch, cfg.train.batch_size, split, cfg.data)
        examples = data.gather(song, offsets, cfg.data, time_major=True)
        examples = jax.lax.with_sharding_constraint(examples, by_example)
        clock_in = _clock_in(beats, offsets, cfg)
        if cfg.model.output == "vq":
            loss, grads = jax.value_and_grad(vq_loss)(state["params"], model, examples, k_loss, cfg,
                                                      codebook["centroids"], clock_in)
        else:
            loss, grads = jax.value_and_grad(mse_loss)(state["params"], model, examples, k_loss, cfg, clock_in)
        updates, opt_state = optimizer.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        return {"params": params, "opt_state": opt_state, "step": state["step"] + 1}, loss

    return step


def _clock_in(beats, offsets, cfg: RunConfig):
    """(T, B, C) clock features of the input frames of examples at ``offsets`` (B,); None without a clock."""
    if beats is None:
        return None
    return clock.example_features(beats, offsets, cfg.data.seq_len, cfg.data.frame_size)


def make_eval_chunk(cfg: RunConfig):
    """Jitted sums over a chunk of validation examples: squared error of the model and of two trivial predictors.

    VQ runs (which pass their codebook arrays) also sum the cross-entropy, the correct codes, and the squared error
    of the true code's frame (the codebook's floor); "model" is then the squared error of the argmax code's frame.
    """
    model = build(cfg.model, cfg.data.frame_size)
    gain_shape = cfg.model.codebook_kind == "gain-shape"

    @jax.jit
    def eval_chunk(params, song, offsets, mask, codebook=None, beats=None):
        inputs, targets = data.inputs_targets(data.gather(song, offsets, cfg.data, time_major=True), time_major=True)
        preds, _ = model.apply({"params": params}, inputs, time_major=True, clock=_clock_in(beats, offsets, cfg))
        w = mask[None, :, None]  # mask: (B,) real examples of the chunk; arrays are (T, B, ...)
        sums = {"zero": jnp.sum(w * targets**2), "copy": jnp.sum(w * (inputs - targets) ** 2)}
        if cfg.model.output == "vq":
            codes = vq.encode(targets, codebook["centroids"], gain_shape)
            ce = optax.softmax_cross_entropy_with_integer_labels(preds, codes)
            best = jnp.argmax(preds, axis=-1)
            sums["ce"] = jnp.sum(mask[None, :] * ce)
            sums["correct"] = jnp.sum(mask[None, :] * (best == codes))
            sums["quant"] = jnp.sum(w * (codebook["means"][codes] - targets) ** 2)
            preds = codebook["means"][best]
        sums["model"] = jnp.sum(w * (preds - targets) ** 2)
        return sums

    return eval_chunk


def vq_arrays(cb) -> dict:
    """The codebook arrays the jitted step and validation read: centroids (K, F) to encode, means (K, F) to score."""
    return {"centroids": jnp.asarray(cb.centroids), "means": jnp.asarray(cb.means())}


def validate(eval_chunk, params, song, split: data.Split, cfg: RunConfig, codebook=None, beats=None) -> dict:
    """Per-sample MSE on the held-out tail, its SNR in dB, and the zero / copy-previous-frame predictors' MSE.

    VQ runs: val_mse is the MSE of the argmax code's frame, plus val_ce (nats per frame), val_acc (share of frames
    whose code is the argmax) and val_quant_mse (the MSE of the true code's frame: what a perfect model would get).
    """
    offsets = data.val_offsets(split, cfg.data)
    chunk = min(VAL_CHUNK, len(offsets))
    pad = -len(offsets) % chunk
    mask = np.concatenate([np.ones(len(offsets), np.float32), np.zeros(pad, np.float32)])
    offsets = np.concatenate([offsets, np.full(pad, offsets[0], np.int32)])
    totals = {}
    extra = () if codebook is None and beats is None else (codebook, beats)
    # every chunk is dispatched before the first is read back: one host sync per validation, not one per chunk
    parts = [eval_chunk(params, song, offsets[i : i + chunk], mask[i : i + chunk], *extra)
             for i in range(0, len(offsets), chunk)]
    for sums in parts:
        for k, v in sums.items():
            totals[k] = totals.get(k, 0.0) + float(v)
    count = float(mask.sum()) * cfg.data.seq_len * cfg.data.frame_size
    val = totals["model"] / count
    snr = 10 * math.log10(totals["zero"] / totals["model"]) if totals["model"] > 0 else float("inf")
    row = {"val_mse": val, "val_snr_db": snr, "zero_mse": totals["zero"] / count, "copy_mse": totals["copy"] / count}
    if "ce" in totals:
        frames = float(mask.sum()) * cfg.data.seq_len
        row.update(val_ce=totals["ce"] / frames, val_acc=totals["correct"] / frames,
                   val_quant_mse=totals["quant"] / count)
    return row
