"""Generated audio: a model continues its prompts frame by frame and the frames become audio, a chunk at a time.

``stream_audio`` yields the audio of ``Inputs`` a chunk at a time (memory of one chunk, whatever the length);
``continue_audio`` is the same audio whole, one chunk of the entire clip. Which frames come next is one of the
generation paths in ``PATHS`` (MSE feedback, sampled VQ codes, unit selection), each a loop over the jitted chunk
functions of ``framegen.rollout`` or ``framegen.units``; how their borders become audio is ``framegen.seams``.
No files: ``framegen.generate`` reads a run and writes the WAVs.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from framegen import audio, clock, vq
from framegen.config import RunConfig
from framegen.errors import RunError
from framegen.model import FrameGRU
from framegen.rollout import MIN_SCAN, rollout_chunk, rollout_start, rollout_vq_chunk, rollout_vq_start
from framegen.seams import OverlapAdd, SeamSmoother, Unsmoothed, cut_around
from framegen.shape import Shape, plan, similarity
from framegen.units import Units, bars_in, boundaries, own_at, predictive, units_chunk, units_start

# Frames of one streamed chunk are chosen so a chunk holds about this many samples per stream (65 s at 16 kHz, 4 MB
# of float32): memory stays that of one chunk whatever --seconds is, and one compiled call per chunk costs nothing
# next to the chunk's own work (measured in experiments/generate/README.md).
CHUNK_SAMPLES = 1 << 20


@dataclass(frozen=True)
class Inputs:
    """What a generation reads besides its length (``generate.inputs_for`` makes it from a run directory).

    prompts: (streams, S, F) the normalised audio each stream continues; prompt_starts: (streams,) where each
    prompt starts in the song (or in ``prompt_source``, the normalised audio it was cut from when that is not the
    song; unit selection never continues such a prompt, and the border after it overlap-adds its own surroundings);
    grid: the beat grid of that audio (runs with a beat clock: the prompt reads its own beat phase and the clock runs
    on at its tempo). VQ runs: ``emission`` (what a sampled code plays), ``units`` (unit selection, or None), the
    sampling ``key`` (default key 0), ``temperature`` and ``top_k``. ``crossfade_ms`` > 0 smooths every frame border
    over that many ms (``_smoother``). ``song``: the run's normalised song, which clips are scored against.
    ``shape``: the song's opening first, its ending last, passages to reach, a loop (``framegen.shape``; unit
    selection only). With ``shape.intro`` the prompt is the silence before the song (``prompt_starts`` -F).
    ``likeness`` (W, Nb): how much each of the song's beats sounds like each passage of ``shape.toward``
    (``framegen.shape.similarity``; computed when None).
    """

    model: FrameGRU
    params: dict
    cfg: RunConfig
    prompts: np.ndarray
    prompt_starts: np.ndarray | int | None = None
    prompt_source: np.ndarray | None = None
    grid: clock.BeatGrid | None = None
    emission: vq.Emission | None = None
    units: Units | None = None
    key: jax.Array | None = None
    temperature: float = 1.0
    top_k: int = 0
    crossfade_ms: float = 0.0
    song: np.ndarray | None = None
    shape: Shape = Shape()
    likeness: np.ndarray | None = None

    @property
    def streams(self) -> int:
        return int(np.shape(self.prompts)[0])


@dataclass(frozen=True)
class _Prompt:
    """The prompts as every generation path reads them. frames (S, n, F) on device; starts (S,) where each starts in
    the audio it was cut from; clock (S, n, C) or None, the clock features each prompt frame reads; after (S,) where
    each stream's first generated frame starts in that audio (where the clock continues from)."""

    frames: jax.Array
    starts: np.ndarray
    clock: jax.Array | None
    after: np.ndarray


def _prompt(inp: Inputs) -> _Prompt:
    f, streams = inp.cfg.data.frame_size, inp.streams
    frames = jnp.asarray(np.asarray(inp.prompts, np.float32))
    n = frames.shape[1]
    starts = np.broadcast_to(np.asarray(0 if inp.prompt_starts is None else inp.prompt_starts, np.int64), (streams,))
    prompt_clock = None
    if inp.cfg.model.clock == "beat":
        if inp.grid is None or inp.prompt_starts is None:
            raise RunError("a run with a beat clock needs its beat grid and the prompt's place in the song")
        at = starts[:, None] + f * np.arange(1, n + 1)[None, :]  # each prompt frame reads its target's phase
        prompt_clock = jnp.asarray(clock.features(clock.beat_position(inp.grid.beats, at.astype(np.float64))))
    return _Prompt(frames, starts, prompt_clock, starts + n * f)


def _clock_inputs(grid: clock.BeatGrid, after: np.ndarray, first: int, count: int, frame_size: int):
    """Generated frames first..first+count-1: (their clock's beat position (count, S) float32, the clock features
    each reads as input, those of the next frame's start (count, S, C))."""
    pos = clock.continued(grid, after, count + 1, frame_size, first=first)  # (S, count + 1) frame starts
    return np.ascontiguousarray(pos[:, :-1].T, np.float32), np.swapaxes(clock.features(pos[:, 1:]), 0, 1)


def _smoother(inp: Inputs, p: _Prompt, real_frames: bool):
    """How the frames' borders become audio: exemplar frames whose song position is known (and a prompt whose place
    is known) are overlap-added with their real surroundings (``OverlapAdd``, width L = crossfade_ms); any other
    frames get the seam correction ramp (``SeamSmoother``, L/2 each side); no crossfade: nothing."""
    cfg = inp.cfg
    if not inp.crossfade_ms > 0:
        return Unsmoothed()
    f = cfg.data.frame_size
    width = int(round(inp.crossfade_ms * 1e-3 * cfg.data.sample_rate))
    if real_frames and inp.prompt_starts is not None:
        last = p.starts + (p.frames.shape[1] - 1) * f
        # a prompt from another file: its last frame with its own surroundings there
        lead = None if inp.prompt_source is None else cut_around(inp.prompt_source, last, f, width)
        if inp.shape.loop:  # a loop's file starts as the song does where it starts: its end leads into it
            last, lead = None, None
        return OverlapAdd(inp.units.song if inp.units is not None else inp.emission.song, last, f, width, lead)
    return SeamSmoother(np.asarray(p.frames[:, -1]), f, max(1, width // 2))


# ------------------------------------------------------------------------------------------------ generation paths
# Each path yields (frames (S, m, F), their song offsets (S, m) or None, whether they are the last) for the frames of
# n_samples in all, a chunk of c at a time, carrying its scan's state between chunks.


def _mse_chunks(inp: Inputs, p: _Prompt, n_samples: int, c: int, clock_at) -> Iterator:
    model, params = inp.model, inp.params
    n_frames = -(-n_samples // inp.cfg.data.frame_size)
    c = -(-c // MIN_SCAN) * MIN_SCAN  # whole head blocks, so they align with the whole clip's (rollout._mse_chunk)
    first, carry = rollout_start(model, params, p.frames, p.clock, None if p.clock is None else clock_at(0, 1)[1][0])
    done, pending = 1, np.asarray(first)[:, None]
    while done < n_frames:
        carry, frames = rollout_chunk(model, params, carry, c, clock_at(done, c)[1])
        m = min(c, n_frames - done)
        frames = np.swapaxes(np.asarray(frames)[:m], 0, 1)
        if pending is not None:
            frames, pending = np.concatenate([pending, frames], axis=1), None
        done += m
        yield frames, None, done == n_frames
    if pending is not None:
        yield pending, None, True


def _vq_chunks(inp: Inputs, p: _Prompt, n_samples: int, c: int, clock_at) -> Iterator:
    emission = inp.emission
    n_frames = -(-n_samples // inp.cfg.data.frame_size)
    carry = rollout_vq_start(inp.model, inp.params, p.frames, _key(inp), p.clock)
    table = jnp.asarray(emission.table)
    done = 0
    while done < n_frames:
        carry, (frames, codes, which) = rollout_vq_chunk(inp.model, inp.params, carry, table, c,
                                                         float(inp.temperature), int(inp.top_k), clock_at(done, c)[1])
        m = min(c, n_frames - done)
        sources = None
        if emission.offsets is not None:
            sources = emission.offsets[np.asarray(codes)[:, :m], np.asarray(which)[:, :m]]
        done += m
        yield np.asarray(frames)[:, :m], sources, done == n_frames


def _unit_chunks(inp: Inputs, p: _Prompt, n_samples: int, c: int, clock_at) -> Iterator:
    """Unit selection, in either mode: real song frames, jumping on the output's beat."""
    units, f = inp.units, inp.cfg.data.frame_size
    n_frames = -(-n_samples // f)
    clock_of = clock_at  # (first, count) -> (count, S) beat positions of those frames, their clock inputs or None
    if inp.cfg.model.clock == "beat":  # the output's beat continues the prompt's
        per_frame = np.diff(clock.continued(inp.grid, p.after, 2, f), axis=1)[:, 0]  # (S,) beats per frame
    else:  # a steady beat (units.beats' period) from the first generated frame: the same wherever the prompt is from
        per_frame = np.full(inp.streams, f / np.median(np.diff(units.beats)))

        def clock_of(first: int, count: int):
            return np.asarray((first + np.arange(count))[:, None] * per_frame[None, :], np.float32), None

    own = jnp.zeros((len(units.beats), 1, inp.model.out_dim or f // 2 + 1), jnp.float32)
    if units.score == "model":  # the model's prediction at each of the song's beats from its own past, and after
        at = units.ahead_at()
        own = predictive(own_at(inp.model, inp.params, units.song, len(units.song), at.reshape(-1), units.stride,
                                beats=units.beats if inp.cfg.model.clock == "beat" else None), units.vq, units.sigma2)
        own = own.reshape(*at.shape, -1)
    song = np.concatenate([units.song, np.zeros(f, np.float32)])  # a stretch played to the song's end reads past it
    consts = (jnp.asarray(song, jnp.float32), own, jnp.asarray(units.beats, jnp.float32))
    static = dict(n_frames=c, stride=units.stride, n_train=units.n_train,
                  n_bars=bars_in(units.beats, units.n_train, f), temperature=float(inp.temperature),
                  hold=float(units.hold), max_run=int(units.max_run), context_weight=float(units.context),
                  hazard=float(units.hazard), sigma2=float(units.sigma2), vq_mode=units.vq,
                  uniform=units.score == "uniform", n_near=len(units.near), near_weight=float(units.near_weight),
                  far_weight=float(units.far_weight), far_cap=float(units.far_cap),
                  beat_samples=int(round(np.median(np.diff(units.beats)))), lead_cap=float(units.lead_cap))
    planned = plan_of(inp, n_samples, clock_of, per_frame) if inp.shape.any else None
    plan_consts = None if planned is None else tuple(jnp.asarray(x) for x in (planned.entries, planned.entry_clock,
                                                                                 planned.sims))
    carry = units_start(inp.model, inp.params, p.frames, p.clock, _first_prev(inp, p), _key(inp))
    done = 0
    while done < n_frames:
        pos, cin = clock_of(done, c)
        rows = None if planned is None else tuple(jnp.asarray(x) for x in planned.rows(done, c))
        carry, positions, frames = units_chunk(inp.model, inp.params, carry, jnp.asarray(pos), cin,
                                               jnp.asarray(boundaries(pos, per_frame)), *consts, rows, plan_consts,
                                               **static)
        m = min(c, n_frames - done)
        done += m
        yield np.asarray(frames)[:, :m], np.asarray(positions, np.int64)[:, :m], done == n_frames


def plan_of(inp: Inputs, n_samples: int, clock_of, per_frame: np.ndarray):
    """The ``framegen.shape.Plan`` of ``inp.shape`` for ``n_samples`` of output (its clock and beats computed up
    front: a few numbers per frame)."""
    units, cfg = inp.units, inp.cfg
    pos = clock_of(0, -(-n_samples // cfg.data.frame_size))[0]
    sims = inp.likeness
    if sims is None:
        sims = similarity(units.song, cfg.data.sample_rate, units.beats, [t for t, _ in inp.shape.toward])
    return plan(inp.shape, n_samples=n_samples,
                frame_size=cfg.data.frame_size, clock_pos=np.asarray(pos), bound=boundaries(pos, per_frame),
                per_frame=per_frame, song_len=len(units.song), sample_rate=cfg.data.sample_rate, beats=units.beats,
                sims=sims)


def _key(inp: Inputs) -> jax.Array:
    return jax.random.key(0) if inp.key is None else inp.key


def _first_prev(inp: Inputs, p: _Prompt) -> jax.Array:
    """Song offset of each prompt's last frame, whose continuation unit selection may play; a prompt from another
    file has none in the song (n_train: its continuation is never a candidate)."""
    if inp.prompt_source is not None:
        return jnp.full(p.starts.shape, inp.units.n_train, jnp.int32)
    return jnp.asarray(p.starts + (p.frames.shape[1] - 1) * inp.cfg.data.frame_size, jnp.int32)


class GenerationPath(NamedTuple):
    chunks: Callable  # (inputs, prompt, n_samples, c, clock_at) -> the path's chunks (see above)
    real: Callable  # inputs -> whether its frames are real song frames with known offsets (overlap-added)


PATHS = {
    "mse": GenerationPath(_mse_chunks, lambda inp: False),
    "vq": GenerationPath(_vq_chunks, lambda inp: inp.emission.offsets is not None),
    "units": GenerationPath(_unit_chunks, lambda inp: True),
}


def path_of(inp: Inputs) -> str:
    """The generation path of ``inp``: "units" with unit selection (either mode); else "mse" or "vq"."""
    if inp.units is not None:
        return "units"
    if inp.cfg.model.output != "vq":
        return "mse"
    if inp.emission is None:
        raise RunError("a VQ run needs its codebook's emission to generate")
    return "vq"


def stream_audio(inp: Inputs, n_samples: int, *, chunk_frames: int | None = None,
                 sources_out: list | None = None) -> Iterator[np.ndarray]:
    """(streams, n_samples) denormalised audio continuing ``inp.prompts``, yielded in pieces (streams, k) of
    ``chunk_frames`` frames (default about ``CHUNK_SAMPLES`` samples), so memory holds one chunk whatever
    ``n_samples`` is. The frames fed back to the model are never changed, only the audio.

    The scan runs a chunk at a time through one compiled chunk function (the same length every call, so nothing
    recompiles; the last chunk's frames past the end are dropped), carrying the GRU state, the PRNG key, the clock
    and unit selection's previous frame and run length between chunks; the clock's inputs are computed a chunk at
    a time, and the seam ramp and the overlap-add continue across chunk borders: any chunk length gives the same
    audio, bit for bit on CPU (tests/test_stream.py). ``sources_out``, when given, collects each chunk's song
    offsets (S, m) of the frames played, when they are frames of the song (unit selection, exemplars).
    """
    f = inp.cfg.data.frame_size
    n_frames = -(-n_samples // f)
    c = max(1, min(int(chunk_frames or max(1, CHUNK_SAMPLES // f)), n_frames))
    p = _prompt(inp)
    path = PATHS[path_of(inp)]

    def clock_at(first: int, count: int):
        if inp.cfg.model.clock != "beat":
            return np.zeros((count, inp.streams), np.float32), None
        pos, cin = _clock_inputs(inp.grid, p.after, first, count, f)
        return pos, jnp.asarray(cin)

    smoother = _smoother(inp, p, path.real(inp))
    left = n_samples
    for frames, sources, last in path.chunks(inp, p, n_samples, c, clock_at):
        if sources_out is not None and sources is not None:
            sources_out.append(sources)
        y = smoother.push(frames.reshape(inp.streams, -1), sources, last)[:, :left]
        left -= y.shape[1]
        if y.shape[1]:
            yield audio.denormalise(y, inp.cfg.norm)


def continue_audio(inp: Inputs, n_samples: int) -> np.ndarray:
    """``stream_audio``'s audio whole: (streams, n_samples), one chunk of the entire clip."""
    pieces = list(stream_audio(inp, n_samples, chunk_frames=-(-n_samples // inp.cfg.data.frame_size)))
    return np.concatenate(pieces, axis=1) if pieces else np.zeros((inp.streams, 0), np.float32)
