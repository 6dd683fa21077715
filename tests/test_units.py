"""Unit selection: real song frames chosen by the model's logits, held runs, beat-aligned jumps."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from framegen import units
from framegen.model import FrameGRU, init_params

F = 40


def _run(song, codes, *, beats=None, hold=1.0, max_run=5, temperature=1.0, n=60, k=8, prompt_at=2000, n_train=None,
         favour=None, tiers=()):
    model = FrameGRU(frame_size=F, hidden=199, layers=1, out_dim=k, tiers=tiers, tier_hidden=16)
    params = init_params(model, jax.random.key(0))
    if favour is not None:  # a model sure of one code, whatever it hears
        params["head"]["bias"] = params["head"]["bias"].at[favour].add(100.0)
    n_train = n_train or len(song) - 4 * F
    prompt = jnp.asarray(song[prompt_at : prompt_at + 3 * F].reshape(1, 3, F))
    offsets = np.tile(np.arange(k)[:, None] * 7 * F, (1, 4)).astype(np.int32)  # exemplars: a fixed frame per code
    n_bars = units.bars_in(beats, n_train, F) if beats is not None else 0
    pos = jnp.asarray(np.tile((np.arange(n) * F / 400.0)[:, None], (1, 1)), jnp.float32)  # beat = 400 samples
    got, frames = units.rollout_units(
        model, params, prompt, None, jnp.asarray([prompt_at + 2 * F]), pos, None, jnp.asarray(song), jnp.asarray(codes),
        jnp.asarray(offsets), None if beats is None else jnp.asarray(beats, jnp.float32),
        jax.random.key(3), n_frames=n, stride=F // 4, n_train=n_train, n_bars=n_bars, temperature=temperature,
        top_k=0, hold=hold, max_run=max_run)
    got = np.asarray(got)[0]
    np.testing.assert_array_equal(np.asarray(frames)[0], song[got[:, None] + np.arange(F)])  # real song frames
    return got


def test_runs_of_continuations_are_capped_and_stay_in_the_training_part():
    rng = np.random.default_rng(0)
    song = rng.standard_normal(20_000).astype(np.float32)
    codes = np.zeros(20_000 // (F // 4), np.int32)  # every frame has code 0: the continuation always qualifies
    got = _run(song, codes, hold=1e6, max_run=5, n_train=12_000, favour=0)
    steps = np.diff(got)
    longest, run = 0, 0
    for held in steps == F:
        run = run + 1 if held else 0
        longest = max(longest, run)
    assert longest == 5  # held as long as allowed, never longer
    assert np.mean(steps == F) > 0.6  # held most of the time
    assert got.max() + F <= 12_000  # never a frame of the held-out part
    no_hold = _run(song, codes, hold=1e6, max_run=0, n_train=12_000, favour=0)
    assert np.mean(np.diff(no_hold) == F) < 0.3


@pytest.mark.parametrize("tiers", [(), (2, 2)])  # the flat model, and a tower whose state steps inside the scan
def test_with_a_beat_grid_every_jump_lands_on_the_clocks_bar_phase(tiers):
    rng = np.random.default_rng(1)
    song = rng.standard_normal(40_000).astype(np.float32)
    beats = 100.0 + 400.0 * np.arange(95)  # a beat every 400 samples from sample 100
    codes = rng.integers(0, 8, 40_000 // (F // 4)).astype(np.int32)
    got = _run(song, codes, beats=beats, hold=1.0, max_run=3, tiers=tiers)
    clock_pos = np.arange(len(got)) * F / 400.0
    song_pos = (got - 100.0) / 400.0
    jumps = np.flatnonzero(np.diff(got) != F) + 1
    assert len(jumps) > 10
    # a jump lands where the song is at the clock's phase within the bar (4 beats)
    err = np.mod(song_pos[jumps] - clock_pos[jumps] + 2.0, 4.0) - 2.0
    np.testing.assert_allclose(err, 0.0, atol=0.5 * (F // 4) / 400.0 + 1e-3)


def test_code_grid_encodes_training_frames():
    rng = np.random.default_rng(2)
    centroids = rng.standard_normal((4, F)).astype(np.float32)
    song = np.concatenate([np.tile(centroids[i], 10) for i in (0, 1, 2, 3)]).astype(np.float32)
    codes, stride = units.code_grid(song, len(song), centroids, gain_shape=False)
    assert stride == F // 4
    np.testing.assert_array_equal(codes[0 : 10 * 4 : 4], 0)  # frames on the code-0 stretch, at multiples of F
    assert codes[(20 * F) // stride] == 2
