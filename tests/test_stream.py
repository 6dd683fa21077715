"""framegen.stream: generated audio a chunk at a time is the whole clip's, bit for bit, in every generation path;
the MSE path plays the rollout's frames; crossfades touch only frame borders."""

from dataclasses import replace

import jax
import numpy as np
import pytest

from framegen import clock, vq
from framegen.config import ModelConfig
from framegen.model import build, init_params
from framegen.rollout import rollout
from framegen.stream import Inputs, continue_audio, stream_audio
from framegen.units import Units
from tests.conftest import RATE, tiny_config

F = 40


def test_continue_audio_crossfade_is_exact_length_and_only_touches_the_borders(tiny_model):
    model, params = tiny_model
    plain = Inputs(model=model, params=params, cfg=tiny_config(),
                   prompts=np.asarray(jax.random.normal(jax.random.key(6), (1, 5, F))))
    faded = replace(plain, crossfade_ms=1.0)  # 8 samples at 8 kHz
    plain, faded = continue_audio(plain, 1234), continue_audio(faded, 1234)
    assert plain.shape == faded.shape == (1, 1234)
    pos = np.arange(1234) % F
    far = (pos >= 8) & (pos < F - 8)
    np.testing.assert_allclose(faded[0, far], plain[0, far], atol=1e-6)
    assert not np.allclose(faded[0, ~far], plain[0, ~far])


def test_the_mse_path_plays_the_rollouts_frames(tiny_model):
    """Without a crossfade the audio is the pure rollout's frames, denormalised, cut to the length asked for."""
    model, params = tiny_model
    cfg = tiny_config()
    prompts = np.asarray(jax.random.normal(jax.random.key(7), (2, 5, F)))
    y = continue_audio(Inputs(model=model, params=params, cfg=cfg, prompts=prompts), 1234)
    frames = np.asarray(rollout(model, params, prompts, -(-1234 // F))).reshape(2, -1)[:, :1234]
    np.testing.assert_array_equal(y, frames * cfg.norm.std + cfg.norm.mean)


def _synthetic(case: str) -> Inputs:
    """The ``Inputs`` of an untrained model in every generation path: MSE or VQ, exemplar or centroid emission, unit
    selection, a beat clock, a prompt from another signal, tiers."""
    k, e = 16, 3
    vq_mode = not case.startswith("mse")
    clocked = case.endswith("clock")
    cfg = replace(tiny_config(), model=ModelConfig(
        hidden=199, layers=2, output="vq" if vq_mode else "mse", codebook=k, clock="beat" if clocked else "none",
        tiers=(5, 2) if "tiers" in case else (), tier_hidden=16))
    model = build(cfg.model, F)
    rng = np.random.default_rng(3)
    song = rng.standard_normal(200 * F).astype(np.float32)
    grid = clock.steady(0.5 * RATE, len(song), RATE) if clocked else None
    starts = np.array([100 * F + 7, 120 * F])
    inp = Inputs(model=model, params=init_params(model, jax.random.key(0)), cfg=cfg,
                 prompts=np.stack([song[s : s + 5 * F].reshape(5, F) for s in starts]), prompt_starts=starts,
                 grid=grid, key=jax.random.key(4), crossfade_ms=1.0)
    if vq_mode:
        offsets = rng.integers(0, 150 * F, (k, e))
        table = song[offsets[..., None] + np.arange(F)]
        inp = replace(inp, emission=vq.Emission(table[:, :1]) if case == "vq-centroid" else
                      vq.Emission(table, offsets, song))
    if case.startswith("units"):  # model-scored in either mode; without a clock on a steady grid of its own
        beats = grid.beats if clocked else clock.steady(12 * F, len(song), RATE).beats
        inp = replace(inp, units=Units(song=song, n_train=150 * F, beats=beats, hold=5.0, max_run=3, stride=10,
                                       vq=vq_mode))
    if case == "units-promptfile":  # the prompt cut from another signal: its own surroundings, never continued
        source = rng.standard_normal(30 * F).astype(np.float32)
        starts = np.array([3, 11 * F])
        inp = replace(inp, prompt_source=source, prompt_starts=starts,
                      prompts=np.stack([source[s : s + 5 * F].reshape(5, F) for s in starts]))
    return inp


STREAM_CASES = ["mse", "units-clock", "units-promptfile"] + [
    pytest.param(c, marks=pytest.mark.slow) for c in ("mse-clock", "vq-exemplar", "vq-centroid", "units", "mse-tiers",
                                                      "units-tiers-clock")]


@pytest.mark.parametrize("case", STREAM_CASES)
def test_streamed_audio_equals_the_in_memory_clip_bit_for_bit(case):
    """Chunks of 1 frame (every border a chunk border; MSE scans run 16 at least) and 23 (dividing neither the 71
    frames of 2834 samples nor F): the same samples as one scan and one smoothing of the whole clip, in every path:
    the carried state, key, clock and unit-selection state, the seam ramp and the overlap-add all continue across
    chunk borders."""
    inp = _synthetic(case)
    whole = continue_audio(inp, 2834)
    assert whole.shape == (2, 2834) and not np.array_equal(whole[0], whole[1])  # two streams from two prompts
    for chunk in (1, 23):
        pieces = list(stream_audio(inp, 2834, chunk_frames=chunk))
        assert len(pieces) >= 3 and {p.shape[0] for p in pieces} == {2}
        np.testing.assert_array_equal(np.concatenate(pieces, axis=1), whole)
