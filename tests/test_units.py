"""Unit selection: real song frames chosen by the model's lookahead scores, jumps on the beat at the bar phase,
stretches capped, and a model's preference visible in what it chooses."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from framegen import units
from framegen.config import RECENT_JUMPS
from framegen.model import FrameGRU, init_params

F = 40
BEAT = 400  # samples per beat of the test grids: 10 frames


def _model(out_dim, tiers=(), clock_dim=0):
    model = FrameGRU(frame_size=F, hidden=199, layers=1, out_dim=out_dim, tiers=tiers, tier_hidden=16,
                     clock_dim=clock_dim)
    return model, init_params(model, jax.random.key(0))


def _run(model, params, song, *, own=None, n=120, n_train=None, hold=1.0, max_run=30, temperature=1.0,
         uniform=False, key=3, **ahead):
    n_train = n_train or len(song) - 8 * BEAT
    prompt_at = n_train + BEAT
    beats = 100.0 + BEAT * np.arange(len(song) // BEAT - 1)
    pos = (np.arange(n) * F / BEAT)[:, None].astype(np.float32)  # (n, 1) the output's beat position
    vq_mode = model.out_dim != F
    own = np.zeros((len(beats), model.out_dim), np.float32) if own is None else own
    got, frames = units.rollout_units(
        model, params, jnp.asarray(song[prompt_at : prompt_at + 3 * F].reshape(1, 3, F)), None,
        jnp.asarray([prompt_at + 2 * F]), jnp.asarray(pos), None,
        jnp.asarray(units.boundaries(pos, np.full((1,), F / BEAT))), jnp.asarray(song), jnp.asarray(own),
        jnp.asarray(beats, jnp.float32), jax.random.key(key), n_frames=n, stride=F // 4, n_train=n_train,
        n_bars=units.bars_in(beats, n_train, F), temperature=temperature, hold=hold, max_run=max_run,
        context_weight=5.0, hazard=4.0, sigma2=1.0, vq_mode=vq_mode, uniform=uniform, **ahead)
    got = np.asarray(got)[0]
    np.testing.assert_array_equal(np.asarray(frames)[0], song[got[:, None] + np.arange(F)])  # real song frames
    return got, pos[:, 0], beats


def test_boundaries_mark_one_frame_per_beat_nearest_to_it():
    pos = (np.arange(100) * 0.13 + 0.3)[:, None]
    b = units.boundaries(pos, np.array([0.13]))[:, 0]
    beats = np.arange(1, 14)  # every whole beat the frames 0.3 .. 13.17 cover
    marked = pos[b, 0]
    assert len(marked) == len(beats)
    np.testing.assert_array_less(np.abs(marked - beats), 0.065 + 1e-9)  # the frame start nearest each beat


@pytest.mark.parametrize("tiers", [(), (2, 2)])
def test_jumps_land_on_the_beat_at_the_clocks_bar_phase_inside_the_training_part(tiers):
    rng = np.random.default_rng(1)
    song = rng.standard_normal(48_000).astype(np.float32)
    model, params = _model(8, tiers)
    n_train = 40_000
    got, clock_pos, _ = _run(model, params, song, n_train=n_train, max_run=15, uniform=True)
    jumps = np.flatnonzero(np.diff(got) != F) + 1
    assert len(jumps) >= 5
    bound = units.boundaries(clock_pos[:, None], np.array([F / BEAT]))[:, 0]
    assert bound[jumps].all()  # only where a beat starts
    err = np.mod((got[jumps] - 100.0) / BEAT - clock_pos[jumps] + 2.0, 4.0) - 2.0
    np.testing.assert_allclose(err, 0.0, atol=(F // 8) / BEAT + 1e-3)  # at the output's bar phase (on the F/4 grid)
    assert got.min() >= 0 and got.max() + F <= n_train  # never a frame of the held-out part
    runs = np.diff(np.concatenate([[0], jumps, [len(got)]]))
    assert runs.max() <= 15 + 10  # a stretch ends at the first beat after max_run frames


def test_a_stretch_plays_on_until_max_run_and_max_run_0_jumps_every_beat():
    rng = np.random.default_rng(2)
    song = rng.standard_normal(48_000).astype(np.float32)
    model, params = _model(F)
    got, _, _ = _run(model, params, song, hold=1e30, max_run=35, uniform=True)  # the continuation wins while it may
    runs = np.diff(np.concatenate([[0], np.flatnonzero(np.diff(got) != F) + 1, [len(got)]]))
    assert set(runs[1:-1]) == {40}  # 35 frames, then the next beat's boundary
    every, _, _ = _run(model, params, song, max_run=0, uniform=True)
    assert np.all(np.diff(np.concatenate([[0], np.flatnonzero(np.diff(every) != F) + 1])) == 10)


@pytest.mark.parametrize("tiers", [(), (2,)])
def test_own_at_is_the_models_prediction_from_the_songs_own_past(tiers):
    rng = np.random.default_rng(3)
    song = rng.standard_normal(6_000).astype(np.float32)
    model, params = _model(8, tiers)
    at = np.array([400, 1213, 3000, 20])  # 1213 rounds to 1210 on the F/4 grid; 20 has no frame before it
    got = units.own_at(model, params, song, 5_000, at, F // 4, chunk=16)
    for i, a in enumerate([400, 1210, 3000]):
        past = song[a % F : a].reshape(1, -1, F)  # every whole frame before a, at its phase
        out, _ = model.apply({"params": params}, jnp.asarray(past))
        np.testing.assert_allclose(got[i], np.asarray(out)[0, -1], rtol=2e-4, atol=2e-5)
    np.testing.assert_array_equal(got[3], 0.0)


def test_context_is_the_kl_of_the_two_predictions():
    rng = np.random.default_rng(4)
    own = units.predictive(rng.standard_normal((5, 8)), True)
    played = units.predictive(rng.standard_normal((1, 8)), True)
    got = np.asarray(units.context(played, own, jnp.asarray([[0, 3]]), vq_mode=True, sigma2=1.0))[0]
    p, q = np.exp(np.asarray(own)), np.exp(np.asarray(played))[0]
    np.testing.assert_allclose(got, [np.sum(p[i] * np.log(p[i] / q)) for i in (0, 3)], rtol=1e-5)
    assert float(units.context(own[:1], own, jnp.asarray([[0]]), vq_mode=True, sigma2=1.0)[0, 0]) < 1e-6


@pytest.mark.parametrize("output", ["vq", "mse"])
def test_the_model_lands_where_its_prediction_matches_the_songs_own_and_uniform_scores_do_not(output):
    rng = np.random.default_rng(5)
    song = rng.standard_normal(64_000).astype(np.float32)
    model, params = _model(8 if output == "vq" else F)
    params["head"]["kernel"] = jnp.zeros_like(params["head"]["kernel"])  # a model that predicts one thing always
    params["head"]["bias"] = jnp.asarray(rng.standard_normal(model.out_dim) * 3, jnp.float32)
    vq_mode = output == "vq"
    beats = 100.0 + BEAT * np.arange(len(song) // BEAT - 1)
    liked = (np.arange(len(beats)) // 4) % 3 == 0  # every third bar: where the song's own past predicts the same
    own = np.asarray(units.predictive(np.where(liked[:, None], params["head"]["bias"][None],
                                               rng.standard_normal((len(beats), model.out_dim)) * 3), vq_mode))

    def landed_in_liked(got):
        jumps = got[np.flatnonzero(np.diff(got) != F) + 1]
        return liked[np.round(np.interp(jumps, beats, np.arange(len(beats)))).astype(int)]

    chosen, _, _ = _run(model, params, song, own=own, n=300, max_run=0)
    uniform, _, _ = _run(model, params, song, own=own, n=300, max_run=0, uniform=True)
    assert landed_in_liked(chosen).mean() > 0.95
    assert landed_in_liked(uniform).mean() < 0.6  # a third of the candidates, by chance




def test_jumps_go_where_the_model_expects_the_continuations_next_beat_and_something_new_later():
    """A model that predicts one thing always (its splices all alike): with own-past predictions after each beat,
    jumps land where the next beat is expected as after the continuation (near), and where what is expected a few
    bars on differs from what the continuation leads to (far: not a repeat of it)."""
    rng = np.random.default_rng(7)
    song = rng.standard_normal(64_000).astype(np.float32)
    model, params = _model(8)
    params["head"]["kernel"] = jnp.zeros_like(params["head"]["kernel"])
    params["head"]["bias"] = jnp.asarray(rng.standard_normal(8) * 3, jnp.float32)
    beats = 100.0 + BEAT * np.arange(len(song) // BEAT - 1)
    nb = len(beats)
    bias = np.broadcast_to(np.asarray(params["head"]["bias"]), (nb, 8))
    group = (np.arange(nb) // 4) % 3 == 0  # every third bar

    def predicted(x):
        return np.asarray(units.predictive(x, True))

    def group_of(got, at, after=0):
        return group[np.round(np.interp(got[at] + after, beats, np.arange(nb))).astype(int)]

    same = np.where(group[:, None], bias, rng.standard_normal((nb, 8)) * 3)  # near: as the continuation in-group
    own = np.stack([predicted(bias), predicted(same)], axis=1)  # (Nb, 1 + 1, D)
    near = dict(n_near=1, near_weight=3.0)
    chosen, _, _ = _run(model, params, song, own=own, n=300, max_run=0, **near)
    uniform, _, _ = _run(model, params, song, own=own, n=300, max_run=0, uniform=True, **near)

    def from_the_group(got):  # where the continuation was in the group, did the jump stay in it
        jumps = np.flatnonzero(np.diff(got) != F) + 1
        inside = group_of(got, jumps - 1, after=F)  # the continuation's beat
        assert inside.sum() >= 5
        return group_of(got, jumps)[inside].mean()

    assert from_the_group(chosen) > 0.8 and from_the_group(uniform) < 0.6  # chance: a third

    a, b = rng.standard_normal((2, 8)) * 3
    far = np.where(group[:, None], a, b)  # a few bars on: two kinds of place
    own = np.stack([predicted(bias), predicted(far)], axis=1)
    chosen, _, _ = _run(model, params, song, own=own, n=300, max_run=0, n_near=0, far_weight=4.0, far_cap=2.0)
    jumps = np.flatnonzero(np.diff(chosen) != F) + 1
    moved = group_of(chosen, jumps) != group_of(chosen, jumps - 1, after=F)  # landed in the other kind of place
    assert moved.mean() > 0.9  # uniform: a third or two thirds


def test_a_jump_never_lands_within_a_beat_of_the_last_landings():
    """Without it a model can cycle among a few places that each splice well after the other (measured on a real
    song: four landings over and over)."""
    rng = np.random.default_rng(2)
    song = rng.standard_normal(48_000).astype(np.float32)
    model, params = _model(8)
    got, _, _ = _run(model, params, song, n=400, max_run=0, uniform=True, beat_samples=BEAT)
    landings = got[np.flatnonzero(np.diff(got) != F) + 1]
    assert len(landings) > 20
    for i in range(1, len(landings)):
        back = landings[max(0, i - RECENT_JUMPS) : i]
        assert np.all(np.abs(back - landings[i]) >= BEAT)
    free, _, _ = _run(model, params, song, n=400, max_run=0, uniform=True)  # without: it lands near them again
    again = free[np.flatnonzero(np.diff(free) != F) + 1]
    assert any(np.any(np.abs(again[max(0, i - RECENT_JUMPS) : i] - again[i]) < BEAT) for i in range(1, len(again)))
