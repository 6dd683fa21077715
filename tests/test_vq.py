"""framegen.vq: encoding, the k-means fit, emission, sampling and the codebook file, on signals whose right answer
is known (the VQ loss is tested in test_train.py, the sampled rollout in test_rollout.py)."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

from framegen import vq
from framegen.errors import RunError, UsageError

F = 40
LEVELS = (1.0, 3.0, -2.0)
FAST = dict(iters=20, batch=128)  # one compile of the k-means loop shared by the tests that fit


def _levels_song(blocks: int = 60, block_frames: int = 20, seed: int = 0) -> np.ndarray:
    """Long constant stretches at one of three levels: almost every F-frame at any offset is a constant frame."""
    rng = np.random.default_rng(seed)
    return np.repeat(rng.choice(LEVELS, blocks), block_frames * F).astype(np.float32)


def test_encode_is_the_nearest_centroid():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 7, F)).astype(np.float32)
    c = rng.normal(size=(16, F)).astype(np.float32) * rng.uniform(0.2, 3, size=(16, 1)).astype(np.float32)
    brute = np.argmin(((x[..., None, :] - c) ** 2).sum(-1), axis=-1)
    np.testing.assert_array_equal(np.asarray(vq.encode(jnp.asarray(x), jnp.asarray(c))), brute)
    # gain-shape compares directions only: scaling a frame never changes its code
    cu = c / np.linalg.norm(c, axis=1, keepdims=True)
    shape = np.asarray(vq.encode(jnp.asarray(x), jnp.asarray(cu), gain_shape=True))
    np.testing.assert_array_equal(shape, np.asarray(vq.encode(jnp.asarray(7.5 * x), jnp.asarray(cu), True)))
    xu = x / np.linalg.norm(x, axis=-1, keepdims=True)
    np.testing.assert_array_equal(shape, np.argmin(((xu[..., None, :] - cu) ** 2).sum(-1), axis=-1))


@pytest.mark.slow
def test_plain_fit_finds_each_level_and_gain_shape_merges_levels_of_one_sign():
    song = _levels_song()
    n_train = len(song)
    plain = vq.fit(song, n_train, frame_size=F, k=3, kind="plain", **FAST)
    means = np.sort(plain.centroids.mean(axis=1))
    np.testing.assert_allclose(means, sorted(LEVELS), atol=0.15)
    codes = [int(vq.encode(jnp.full((F,), lv), jnp.asarray(plain.centroids))) for lv in LEVELS]
    assert len(set(codes)) == 3
    for lv, code in zip(LEVELS, codes):
        assert plain.gains[code] == pytest.approx(abs(lv), rel=0.1)

    shape = vq.fit(song, n_train, frame_size=F, k=2, kind="gain-shape", **FAST)
    np.testing.assert_allclose(np.linalg.norm(shape.centroids, axis=1), 1.0, atol=1e-5)
    up, up3, down = (int(vq.encode(jnp.full((F,), lv), jnp.asarray(shape.centroids), True)) for lv in LEVELS)
    assert up == up3 != down
    assert 1.0 < shape.gains[up] < 3.0 and shape.gains[down] == pytest.approx(2.0, rel=0.1)
    # the frame a code stands for sits at its members' level, not at unit norm
    np.testing.assert_allclose(np.sqrt(np.mean(shape.means() ** 2, axis=1)), shape.gains, rtol=1e-5)


@pytest.mark.slow
def test_fit_is_deterministic_by_key_and_exemplars_are_real_training_frames_of_their_code():
    rng = np.random.default_rng(1)
    song = np.cumsum(rng.normal(size=30_000)).astype(np.float32)
    song = (song - song.mean()) / song.std()
    n_train = 25_000
    a = vq.fit(song, n_train, frame_size=F, k=12, key=jax.random.key(3), **FAST)
    b = vq.fit(song, n_train, frame_size=F, k=12, key=jax.random.key(3), **FAST)
    c = vq.fit(song, n_train, frame_size=F, k=12, key=jax.random.key(4), **FAST)
    for x, y in zip((a.centroids, a.gains, a.exemplar_offsets), (b.centroids, b.gains, b.exemplar_offsets)):
        np.testing.assert_array_equal(x, y)
    assert not np.allclose(a.centroids, c.centroids)
    assert a.exemplar_offsets.shape == (12, vq.EXEMPLARS)
    assert a.exemplar_offsets.min() >= 0 and a.exemplar_offsets.max() <= n_train - F  # never the held-out tail
    table = vq.emission_table(a, song, "exemplar")
    codes = np.asarray(vq.encode(jnp.asarray(table), jnp.asarray(a.centroids), True))
    used = a.counts > 0
    assert used.sum() >= 6
    assert np.all(codes[used] == np.arange(12)[used, None])
    np.testing.assert_array_equal(table[5, 2], song[a.exemplar_offsets[5, 2] : a.exemplar_offsets[5, 2] + F])


def test_fit_refuses_a_codebook_larger_than_the_training_part():
    with pytest.raises(UsageError, match="--codebook"):
        vq.fit(np.zeros(100, np.float32), 100, frame_size=F, k=100)


def test_emission_tables_centroid_scaled_exemplar():
    song = _levels_song()
    cb = vq.fit(song, len(song), frame_size=F, k=3, kind="plain", **FAST)
    cent = vq.emission_table(cb, song, "centroid")
    scaled = vq.emission_table(cb, song, "scaled")
    ex = vq.emission_table(cb, song, "exemplar")
    assert cent.shape == scaled.shape == (3, 1, F) and ex.shape == (3, vq.EXEMPLARS, F)
    np.testing.assert_array_equal(cent[:, 0], cb.centroids)
    np.testing.assert_allclose(np.sqrt(np.mean(scaled[:, 0] ** 2, axis=1)), cb.gains, rtol=1e-5)
    with pytest.raises(UsageError, match="--vq-emit"):
        vq.emission_table(cb, song, "loud")


def test_sample_codes_temperature_and_top_k():
    logits = jnp.log(jnp.array([0.5, 0.3, 0.15, 0.05]))
    keys = jax.random.split(jax.random.key(0), 20_000)
    freq = np.bincount(np.asarray(jax.vmap(lambda k: vq.sample_codes(k, logits, 1.0, 0))(keys)), minlength=4)
    np.testing.assert_allclose(freq / freq.sum(), [0.5, 0.3, 0.15, 0.05], atol=0.015)
    top2 = np.bincount(np.asarray(jax.vmap(lambda k: vq.sample_codes(k, logits, 1.0, 2))(keys)), minlength=4)
    assert top2[2:].sum() == 0
    assert top2[0] / top2.sum() == pytest.approx(0.5 / 0.8, abs=0.015)
    cold = np.bincount(np.asarray(jax.vmap(lambda k: vq.sample_codes(k, logits, 0.25, 0))(keys)), minlength=4)
    assert cold[0] / cold.sum() > 0.85  # (0.5/0.3)^4 ~ 7.7: a low temperature sharpens towards the likeliest
    assert int(vq.sample_codes(keys[0], logits, 0.0, 0)) == 0


def test_codebook_file_round_trips_and_refuses_what_it_cannot_read(tmp_path):
    song = _levels_song()
    cb = vq.fit(song, len(song), frame_size=F, k=2, **FAST)
    vq.save(tmp_path, cb)
    back = vq.load(tmp_path, k=2, frame_size=F, kind="gain-shape")
    for name in ("centroids", "gains", "exemplar_offsets", "counts"):
        np.testing.assert_array_equal(getattr(back, name), getattr(cb, name))
    assert back.gain_shape and not list(tmp_path.glob(".*tmp"))
    with pytest.raises(RunError, match="K=4"):
        vq.load(tmp_path, k=4, frame_size=F, kind="gain-shape")
    with pytest.raises(RunError, match="plain"):
        vq.load(tmp_path, k=2, frame_size=F, kind="plain")
    with np.load(tmp_path / vq.CODEBOOK_FILE) as z:
        newer = {k: z[k] for k in z.files}
    newer["version"] = np.int64(vq.CODEBOOK_VERSION + 1)
    np.savez(tmp_path / vq.CODEBOOK_FILE, **newer)
    with pytest.raises(RunError, match="newer framegen"):
        vq.load(tmp_path, k=2, frame_size=F, kind="gain-shape")
    (tmp_path / vq.CODEBOOK_FILE).write_bytes(b"not a zip")
    with pytest.raises(RunError, match=r"codebook.npz is damaged \(not an npz file\): retrain the run"):
        vq.load(tmp_path, k=2, frame_size=F, kind="gain-shape")
    with pytest.raises(RunError, match="without codebook.npz"):
        vq.load(tmp_path / "nothing", k=3, frame_size=F, kind="gain-shape")
