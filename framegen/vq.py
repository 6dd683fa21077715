"""The VQ output mode's codebook: k-means codes of the song's frames, nearest-code encoding, what a code emits,
and the versioned ``codebook.npz`` a run keeps beside its checkpoints.

All arrays are in the normalised song's units (song std = 1); frames are (..., F), codes int32 in [0, K).
Two kinds of codebook:
  plain       k-means on the raw frames. Its centroids are quiet and dull: averaging waveforms whose phases differ
              cancels them, so most frames land on a few low-energy means.
  gain-shape  k-means on unit-norm frames (the "shape"; spherical k-means), the frame's level (the "gain") kept per
              code as its members' mean RMS. Every code then stands for a direction of the waveform, not a level,
              and frames spread over many more codes (measured in experiments/quality/README.md).
"""

import math
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from framegen.atomic import atomic_path
from framegen.checksums import read_npz
from framegen.config import CODEBOOK_KINDS as KINDS
from framegen.config import RunConfig
from framegen.config import VQ_EMITS as EMITS
from framegen.errors import RunError, UsageError

CODEBOOK_FILE = "codebook.npz"
CODEBOOK_VERSION = 1
EXEMPLARS = 8  # real frames kept per code for emit="exemplar": variety, so a repeated code does not loop

BATCH = 2048  # frames per mini-batch k-means iteration
SAMPLES_PER_CENTRE = 30  # iterations chosen so each centre sees ~30 frames in all
MIN_ITERS, MAX_ITERS = 40, 200
GRID_PER_CENTRE = 4  # frames assigned once at the end (exemplars and gains): 4 per code, at least 8,192
CHUNK = 4096  # frames per jitted assignment call: bounds the (chunk, K) distance matrix
POOL_PER_CENTRE, MAX_POOL = 4, 16_384  # k-means++ seeds are drawn from a pool of 4K random frames (at most 16k)
PROJECTION = 64  # dimensions k-means++ measures distances in


@dataclass(frozen=True)
class Codebook:
    """A fitted codebook of K codes of F samples.

    centroids: (K, F) the k-means centres; unit vectors for a gain-shape codebook.
    gains: (K,) mean RMS of the frames assigned to each code.
    exemplar_offsets: (K, E) sample offsets into the normalised song (training part only) of real frames assigned
        to each code, nearest first; a code no assignment-grid frame chose gets the grid frames nearest to it.
    counts: (K,) assignment-grid frames per code (0: no grid frame chose it).
    gain_shape: whether frames are compared by shape (unit norm) alone.
    """

    centroids: np.ndarray
    gains: np.ndarray
    exemplar_offsets: np.ndarray
    counts: np.ndarray
    gain_shape: bool

    @property
    def size(self) -> int:
        return self.centroids.shape[0]

    @property
    def frame_size(self) -> int:
        return self.centroids.shape[1]

    def means(self) -> np.ndarray:
        """(K, F) the frame each code stands for: the centroid, or for gain-shape the direction at the code's gain."""
        if not self.gain_shape:
            return self.centroids
        return (self.centroids * (self.gains * math.sqrt(self.frame_size))[:, None]).astype(np.float32)


# ---------------------------------------------------------------------------------------------------- pure core


def unit(frames):
    """Frames (..., F) scaled to unit L2 norm (silence stays ~0)."""
    return frames / jnp.maximum(jnp.sqrt(jnp.sum(frames**2, axis=-1, keepdims=True)), 1e-6)


def encode(frames, centroids, gain_shape: bool = False):
    """Nearest-centroid codes of ``frames`` (..., F) -> (...,) int32, from the ||x||^2 - 2 x.c + ||c||^2 form:
    ||x||^2 is the same for every code of a frame, so one matmul and ||c||^2 decide. A gain-shape codebook compares
    unit-norm frames."""
    x = unit(frames) if gain_shape else frames
    c2 = jnp.sum(centroids**2, axis=-1)
    return jnp.argmin(c2 - 2.0 * x @ centroids.T, axis=-1).astype(jnp.int32)


def _sq_distances(x, centroids):
    """(..., K) squared distances ||x||^2 - 2 x.c + ||c||^2 (clamped at 0 against rounding)."""
    c2 = jnp.sum(centroids**2, axis=-1)
    return jnp.maximum(jnp.sum(x**2, axis=-1, keepdims=True) - 2.0 * x @ centroids.T + c2, 0.0)


def _frames_at(song, offsets, frame_size: int):
    """(B,) sample offsets -> (B, F) frames sliced out of the on-device song."""
    return jax.vmap(lambda s: jax.lax.dynamic_slice(song, (s,), (frame_size,)))(offsets)


def n_iterations(k: int, batch: int = BATCH) -> int:
    """Mini-batch iterations for K codes: fixed by K alone, so the fit does the same work on every machine."""
    return int(min(MAX_ITERS, max(MIN_ITERS, math.ceil(SAMPLES_PER_CENTRE * k / batch))))


def _kmeans_pp(key, pool, k: int):
    """k-means++ seeding: indices (K,) into ``pool`` (P, D), each drawn with probability ~ squared distance to the
    nearest one drawn before."""
    k_first, k_rest = jax.random.split(key)
    first = jax.random.randint(k_first, (), 0, pool.shape[0])
    d2 = jnp.sum((pool - pool[first]) ** 2, axis=-1)

    def body(i, carry):
        idx, d2 = carry
        nxt = jax.random.categorical(jax.random.fold_in(k_rest, i), jnp.log(jnp.maximum(d2, 1e-30)))
        d2 = jnp.minimum(d2, jnp.sum((pool - pool[nxt]) ** 2, axis=-1))
        return idx.at[i].set(nxt), d2

    idx, _ = jax.lax.fori_loop(1, k, body, (jnp.zeros((k,), jnp.int32).at[0].set(first), d2))
    return idx


@partial(jax.jit, static_argnames=("frame_size", "k", "iters", "batch", "gain_shape"))
def _kmeans(song, max_start, key, *, frame_size: int, k: int, iters: int, batch: int, gain_shape: bool):
    """Mini-batch k-means (Sculley 2010) on frames at uniform random sample offsets in [0, max_start] of ``song``."""
    k_pool, k_proj, k_pp, k_iter = jax.random.split(key, 4)
    # Init: k-means++ on a pool of random frames, with distances taken in a random 64-d projection of them
    # (Johnson-Lindenstrauss: they are kept to ~15%). k-means++ is K sequential passes over the pool; in F=800
    # dimensions that is most of the budget at K=4096, in 64 it is a second. Plain random frames (Forgy) are
    # cheaper still but leave whole clusters unseeded (two seeds in one cluster, one between two others) that
    # mini-batch updates never repair.
    n_pool = max(k, min(POOL_PER_CENTRE * k, MAX_POOL))
    pool = _frames_at(song, jax.random.randint(k_pool, (n_pool,), 0, max_start + 1), frame_size)
    if gain_shape:
        pool = unit(pool)
    proj = jax.random.normal(k_proj, (frame_size, PROJECTION), pool.dtype) / math.sqrt(PROJECTION)
    centroids = pool[_kmeans_pp(k_pp, pool @ proj, k)]

    def body(i, carry):
        c, v = carry
        offs = jax.random.randint(jax.random.fold_in(k_iter, i), (batch,), 0, max_start + 1)
        x = _frames_at(song, offs, frame_size)
        if gain_shape:
            x = unit(x)
        codes = encode(x, c)
        n = jax.ops.segment_sum(jnp.ones((batch,), jnp.float32), codes, num_segments=k)
        s = jax.ops.segment_sum(x, codes, num_segments=k)
        v = v + n
        # Each centre moves to the running mean of every frame it was ever assigned (step n_k / v_k).
        c = c + (s - n[:, None] * c) / jnp.maximum(v, 1.0)[:, None]
        if gain_shape:
            c = unit(c)  # spherical k-means: the mean direction
        return c, v

    centroids, _ = jax.lax.fori_loop(0, iters, body, (centroids, jnp.zeros((k,), jnp.float32)))
    return centroids


@partial(jax.jit, static_argnames=("frame_size", "gain_shape"))
def _assign(song, offsets, centroids, *, frame_size: int, gain_shape: bool):
    """For the frames at ``offsets`` (B,): codes, squared distance to their centre, RMS."""
    x = _frames_at(song, offsets, frame_size)
    d = _sq_distances(unit(x) if gain_shape else x, centroids)
    codes = jnp.argmin(d, axis=-1).astype(jnp.int32)
    return codes, jnp.take_along_axis(d, codes[:, None], axis=-1)[:, 0], jnp.sqrt(jnp.mean(x**2, axis=-1))


@partial(jax.jit, static_argnames=("frame_size", "gain_shape"))
def _distances_to(song, offsets, centroids, *, frame_size: int, gain_shape: bool):
    x = _frames_at(song, offsets, frame_size)
    return _sq_distances(unit(x) if gain_shape else x, centroids)


def fit(song_norm: np.ndarray, n_train: int, *, frame_size: int, k: int, key=None, kind: str = "gain-shape",
        iters: int | None = None, batch: int = BATCH, exemplars: int = EXEMPLARS) -> Codebook:
    """Fit a K-code codebook on the training part ``song_norm[:n_train]``, frames at every sample offset.

    Mini-batch k-means in JAX on the song's device (no library: scikit-learn's MiniBatchKMeans would copy the frames
    to the host and run single-threaded; this is ~60 lines and jits into one loop). Each iteration draws ``batch``
    frames at random offsets (every offset, so the codes cover every phase the model is trained on), assigns them
    with one matmul and moves each centre to the running mean of its frames. The iteration count depends on K alone
    and the draws on the PRNG ``key`` (default ``jax.random.key(0)``), so a fit is deterministic. A grid of frames
    is then assigned once for each code's exemplars (real frames) and gain (members' mean RMS). Work is ~iters x
    batch x K x F multiply-adds: ~10 s for K=512 and ~40 s for K=4096 at F=800 on a busy 2-core CPU.
    """
    if kind not in KINDS:
        raise UsageError(f"unknown codebook kind {kind!r}: pass one of {', '.join(KINDS)}")
    gain_shape = kind == "gain-shape"
    max_start = n_train - frame_size
    if k > max_start + 1:
        raise UsageError(f"codebook size {k} exceeds the {max(max_start + 1, 0):,} frame offsets of the song's "
                         f"training part: pass a smaller --codebook")
    song = jnp.asarray(song_norm[:n_train], jnp.float32)
    iters = n_iterations(k, batch) if iters is None else iters
    key = jax.random.key(0) if key is None else key
    centroids = _kmeans(song, max_start, key, frame_size=frame_size, k=k, iters=iters, batch=batch,
                        gain_shape=gain_shape)

    m = min(max_start + 1, max(GRID_PER_CENTRE * k, 8192))
    grid = np.linspace(0, max_start, m).round().astype(np.int32)
    padded = np.concatenate([grid, np.zeros(-m % CHUNK, np.int32)])
    chunks = [padded[i : i + CHUNK] for i in range(0, len(padded), CHUNK)]
    parts = [_assign(song, c, centroids, frame_size=frame_size, gain_shape=gain_shape) for c in chunks]
    codes, dist, rms = (np.concatenate([np.asarray(p[j]) for p in parts])[:m] for j in range(3))

    counts = np.bincount(codes, minlength=k)
    sums = np.zeros(k, np.float64)
    np.add.at(sums, codes, rms)
    c_np = np.asarray(centroids, np.float32)
    fallback = np.sqrt(np.mean(c_np**2, axis=1)) * (math.sqrt(frame_size) if gain_shape else 1.0)
    gains = np.where(counts > 0, sums / np.maximum(counts, 1), fallback).astype(np.float32)

    order = np.lexsort((dist, codes))  # by code, then nearest first
    bounds = np.searchsorted(codes[order], np.arange(k + 1))
    offsets = np.zeros((k, exemplars), np.int64)
    empty = []
    for j in range(k):
        members = order[bounds[j] : bounds[j + 1]]
        if len(members):
            offsets[j] = grid[members[np.arange(exemplars) % len(members)]]
        else:
            empty.append(j)
    if empty:  # codes no grid frame chose: their nearest grid frames, whichever code those took
        e = np.asarray(empty)
        d = np.concatenate([np.asarray(_distances_to(song, c, centroids[e], frame_size=frame_size,
                                                     gain_shape=gain_shape)) for c in chunks])[:m]
        offsets[e] = grid[np.argsort(d, axis=0, kind="stable")[:exemplars].T]
    return Codebook(centroids=c_np, gains=gains, exemplar_offsets=offsets, counts=counts.astype(np.int64),
                    gain_shape=gain_shape)


def emission_table(cb: Codebook, song_norm: np.ndarray, emit: str) -> np.ndarray:
    """(K, E, F) frames each code can emit (generation picks one of the E uniformly), in normalised units.

    exemplar: E real training frames of the code, sliced from the song (full loudness, real phases).
    centroid: the frame the code stands for (``Codebook.means``; E=1).
    scaled: that frame rescaled to the code's members' mean RMS (E=1); the same as centroid for gain-shape.
    """
    if emit == "exemplar":
        idx = cb.exemplar_offsets[..., None] + np.arange(cb.frame_size)
        if idx.size and idx.max() >= len(song_norm):
            raise RunError("the codebook's exemplars lie past the song's end: the song file changed since training")
        return np.asarray(song_norm, np.float32)[idx]
    means = cb.means()
    if emit == "centroid":
        return means[:, None, :]
    if emit == "scaled":
        rms = np.sqrt(np.mean(means**2, axis=1))
        return (means * (cb.gains / np.maximum(rms, 1e-8))[:, None])[:, None, :].astype(np.float32)
    raise UsageError(f"unknown --vq-emit {emit!r}: pass one of {', '.join(EMITS)}")


@dataclass(frozen=True)
class Emission:
    """What generation emits for a code: ``table`` (K, E, F) of frames; for emit="exemplar" also where each row
    came from, ``offsets`` (K, E) into ``song`` (the normalised song), so the audio can overlap-add each exemplar's
    real surroundings across frame borders (``seams.overlap_add``)."""

    table: np.ndarray
    offsets: np.ndarray | None = None
    song: np.ndarray | None = None


def emission(cb: Codebook, song_norm: np.ndarray, emit: str) -> Emission:
    """The ``Emission`` of ``emit`` for a codebook (see ``emission_table``)."""
    table = emission_table(cb, song_norm, emit)
    if emit == "exemplar":
        return Emission(table, cb.exemplar_offsets, np.asarray(song_norm, np.float32))
    return Emission(table)


def codebook_for(run_dir: Path, cfg: RunConfig) -> Codebook:
    """A VQ run's saved codebook (``load``), checked against the run's config."""
    return load(run_dir, k=cfg.model.codebook, frame_size=cfg.data.frame_size, kind=cfg.model.codebook_kind)


def sample_codes(key, logits, temperature: float, top_k: int = 0):
    """Codes (...,) drawn from softmax(logits / temperature) over the ``top_k`` most likely codes (0: all of them).
    Temperature 0 takes the most likely code."""
    if temperature == 0:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    return jax.random.categorical(key, keep_top_k(logits / temperature, top_k), axis=-1).astype(jnp.int32)


def keep_top_k(logits, top_k: int):
    """``logits`` (..., K) with all but the ``top_k`` largest set to -inf (0 or K and more: unchanged)."""
    if 0 < top_k < logits.shape[-1]:
        kth = jax.lax.top_k(logits, top_k)[0][..., -1:]
        logits = jnp.where(logits < kth, -jnp.inf, logits)
    return logits


# ---------------------------------------------------------------------------------------------------- the file


def save(run_dir: Path, cb: Codebook) -> Path:
    """Write ``codebook.npz`` atomically (temp file + rename): a kill mid-write never leaves half a codebook."""
    path = Path(run_dir) / CODEBOOK_FILE
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, version=np.int64(CODEBOOK_VERSION), centroids=cb.centroids, gains=cb.gains,
                     exemplar_offsets=cb.exemplar_offsets, counts=cb.counts, gain_shape=np.bool_(cb.gain_shape))
    except OSError as e:
        raise RunError(
            f"cannot write {path} ({e.strerror or e}): free disk space or pass a writable --run-dir"
        ) from None
    return path


def exists(run_dir: Path) -> bool:
    return (Path(run_dir) / CODEBOOK_FILE).is_file()


def load(run_dir: Path, *, k: int, frame_size: int, kind: str) -> Codebook:
    """The run's codebook, checked against its config; refuses a damaged file (``checksums.read_npz``: the zip's
    CRC-32 of every array), a newer version's or one of the wrong shape."""
    path = Path(run_dir) / CODEBOOK_FILE
    if not path.is_file():
        raise RunError(f"{run_dir} is a VQ run without {CODEBOOK_FILE}: retrain it with 'framegen train --output vq'")
    z = read_npz(path, ("version", "centroids", "gains", "exemplar_offsets", "counts", "gain_shape"))
    version = int(z["version"])
    if version > CODEBOOK_VERSION:
        raise RunError(f"{path} was written by a newer framegen (version {version}): upgrade framegen")
    cb = Codebook(centroids=z["centroids"].astype(np.float32), gains=z["gains"].astype(np.float32),
                  exemplar_offsets=z["exemplar_offsets"].astype(np.int64), counts=z["counts"],
                  gain_shape=bool(z["gain_shape"]))
    if cb.centroids.shape != (k, frame_size) or cb.gain_shape != (kind == "gain-shape"):
        raise RunError(f"{path} holds a {'gain-shape' if cb.gain_shape else 'plain'} codebook of "
                       f"{cb.centroids.shape[0]} codes x {cb.centroids.shape[1]} samples but the run's config says "
                       f"{kind}, K={k}, F={frame_size}: the run directory is inconsistent, retrain it")
    return cb
