"""Shaping a continuation: the song's opening first (intro), its own ending last, passages to reach on time (toward),
a seamless loop. Host-side planning: turns these asks into per-frame arrays that unit selection's scan reads.

Each ask is a **waypoint**: the output must play song sample ``goal`` at output sample ``out_at``. It is reached
through a contiguous stretch of the song leading to it, entered on a beat of the output's clock inside a window of
beats before it; which beat (and so which stretch) is the model's plan (``framegen.units``: the entry whose splice it
finds most seamless, the beat phase kept). Before a passage to reach, the jumps are pulled toward song beats that
resemble it, more and more as the arrival nears. What was measured: experiments/quality/shape.md.
"""

from dataclasses import dataclass

import numpy as np

from framegen import clock
from framegen.errors import UsageError

INTRO_BARS = 2  # the song's opening plays this long before the model may jump away from it
ENDING_BARS = 4  # at least the output's last this many bars are the song's own last bars (8 s at 120 bpm)
ENTRY_BEATS = 8  # the stretch into a waypoint may start at any of this many beats of the output (the model picks)
LEAD_BEATS = 4  # ... the latest of them this many beats before a passage to reach (toward, loop)
PULL = 4.0  # nats: at the arrival, the weight of a candidate's similarity to the passage to reach
TARGET_BEATS = 8  # the passage to reach: this many beats from the asked time, what the output is pulled toward
PHASE = 20.0  # nats per beat^2: an entry off the song's beat phase (a quarter beat off: 1.25 nats)
BAR_MISS = 2.0  # nats: an entry on the beat but not at the song's bar phase

NONE, LOOP = -1, -2  # goal of frames without a waypoint; of a loop's (the output's own first frame)


@dataclass(frozen=True)
class Shape:
    """What ``framegen generate`` was asked to shape. intro: start with the song's opening; ending: finish with its
    own last ``ENDING_BARS`` bars or more; loop: the output's end leads seamlessly into its start; toward: (song
    seconds, output seconds) pairs, each passage of the song to arrive at by that time of the output."""

    intro: bool = False
    ending: bool = False
    loop: bool = False
    toward: tuple = ()

    def __post_init__(self):
        if self.ending and self.loop:
            raise UsageError("--ending and --loop both decide how the output ends: pass one of them")

    @property
    def any(self) -> bool:
        return bool(self.intro or self.ending or self.loop or self.toward)


@dataclass(frozen=True)
class Plan:
    """Per output frame (n, S): ``goal`` the song sample of the waypoint ahead (NONE, LOOP), ``rem`` output samples
    from the frame's start to the waypoint, ``window`` a beat where the stretch into it may start, ``window_end``
    the waypoint's last such frame (entering there is forced), ``hold_to`` the last frame played on once it is
    entered, ``pull`` (float) the weight of the similarity to the passage ahead, ``target`` its row of ``sims``.
    ``entries`` (S, E): the window frames (padded with -1), ``entry_clock`` (S, E) the output's beat position there.
    ``sims`` (W, Nb) float32: each song beat's similarity to each passage to reach."""

    goal: np.ndarray
    rem: np.ndarray
    window: np.ndarray
    window_end: np.ndarray
    hold_to: np.ndarray
    pull: np.ndarray
    target: np.ndarray
    entries: np.ndarray
    entry_clock: np.ndarray
    sims: np.ndarray

    def rows(self, first: int, count: int) -> tuple:
        """The per-frame arrays of frames first..first+count-1 (past the end: no waypoint), with each frame's index."""
        n = self.goal.shape[0]
        take = np.minimum(np.arange(first, first + count), n - 1)
        past = (np.arange(first, first + count) >= n)[:, None]
        idx = np.broadcast_to(np.arange(first, first + count, dtype=np.int32)[:, None], (count, self.goal.shape[1]))
        return (np.ascontiguousarray(idx), np.where(past, NONE, self.goal[take]), self.rem[take],
                self.window[take] & ~past, self.window_end[take], self.hold_to[take],
                np.where(past, 0.0, self.pull[take]).astype(np.float32), self.target[take])


def empty(n_frames: int, streams: int, n_beats: int) -> Plan:
    """The plan of an unshaped generation: no waypoint, no pull."""
    z = np.zeros((n_frames, streams), np.int32)
    return Plan(goal=z + NONE, rem=z, window=z.astype(bool), window_end=z + NONE, hold_to=z + NONE,
                pull=z.astype(np.float32), target=z, entries=np.full((streams, 1), NONE, np.int32),
                entry_clock=np.zeros((streams, 1), np.float32), sims=np.zeros((1, n_beats), np.float32))


def plan(shape: Shape, *, n_samples: int, frame_size: int, clock_pos: np.ndarray, bound: np.ndarray,
         per_frame: np.ndarray, song_len: int, sample_rate: int, beats: np.ndarray, sims: np.ndarray) -> Plan:
    """The ``Plan`` of ``shape`` for an output of ``n_samples``: ``clock_pos`` (n, S) the output's beat position at
    each frame's start, ``bound`` (n, S) the frames where its beats start, ``per_frame`` (S,) beats per frame;
    the song's ``beats`` (Nb,) (samples) and ``sims`` (W, Nb) (``similarity``, one row per ``shape.toward``).
    A waypoint that does not fit the output is one line naming the length it needs."""
    f, rate = frame_size, sample_rate
    n, streams = bound.shape
    p = empty(n, streams, len(beats))
    goal, rem, window, window_end, hold_to = p.goal.copy(), p.rem.copy(), p.window.copy(), p.window_end.copy(), \
        p.hold_to.copy()
    pull, target = p.pull.copy(), p.target.copy()
    entries = [[] for _ in range(streams)]
    frames_per_beat = 1.0 / np.asarray(per_frame, np.float64)  # (S,)
    free_from = np.zeros(streams, np.int64)  # the first frame each stream may spend on the next waypoint
    if shape.intro:  # the song's opening: entered at frame 0, held for INTRO_BARS bars
        goal[0], rem[0], window[0], window_end[0] = 0, 0, True, 0
        hold_to[0] = np.minimum(np.ceil(INTRO_BARS * clock.BAR * frames_per_beat).astype(np.int64), n - 1)
        free_from = hold_to[0].astype(np.int64) + 1
        for e in entries:
            e.append(0)

    def waypoint(s: int, song_at: int, out_at: int, lead: tuple, hold: int, what: str, row: int = -1):
        """Stream s arrives at song sample ``song_at`` (or LOOP) at output sample ``out_at``, entering on a beat
        ``lead`` (lo, hi) output samples before it."""
        lo, hi = lead
        if song_at >= 0:  # the stretch into it lies inside the song (a song shorter than its ending: all of it)
            hi = min(hi, song_at)
            lo = min(lo, hi)
        ks = np.flatnonzero(bound[:, s])
        rems = out_at - ks * f
        ok = (rems >= lo) & (rems <= hi) & (ks >= free_from[s])
        if not ok.any():  # the latest beat that still leaves the stretch its length
            ok = (rems >= lo) & (ks >= free_from[s])
            ok &= ks == (ks[ok].max() if ok.any() else -1)
        if not ok.any():
            need = (free_from[s] * f + lo) / rate + beat_s
            raise UsageError(f"{what} does not fit in this output: pass --seconds of at least {need:.1f}"
                             if what != "toward" else
                             f"--toward needs more room: pass a later --by (at least {need:.1f} s) or more --seconds")
        ks = ks[ok]
        last = int(ks.max())
        arrive = min(int(np.ceil(out_at / f)), n)  # the first frame at or after the waypoint
        span = slice(int(ks.min()), last + 1)
        goal[span, s], window_end[span, s] = song_at, last
        window[ks, s], rem[ks, s] = True, (out_at - ks * f)
        hold_to[ks, s] = min(arrive + hold, n) - 1
        if row >= 0:  # the approach: pulled toward the passage ever more, from the last waypoint to the window
            k0 = int(free_from[s])
            ramp = np.arange(k0, int(ks.min())) - k0
            pull[k0 : int(ks.min()), s] = PULL * (ramp + 1) / max(len(ramp), 1)
            target[k0 : int(ks.min()), s] = row
        entries[s].extend(int(k) for k in ks)
        free_from[s] = min(arrive + hold, n)

    beat_s = float(np.median(np.diff(beats))) / rate
    for row, (song_s, by_s) in enumerate(shape.toward):
        at = int(round(song_s * rate))
        if not 0 <= at < song_len:
            raise UsageError(f"--toward {song_s:g} s is outside the song (0-{song_len / rate:.1f} s): pass a time "
                             f"inside it")
        if not 0 < by_s < n_samples / rate:
            raise UsageError(f"--by {by_s:g} s is outside the output (0-{n_samples / rate:g} s): pass a time inside "
                             f"it, or more --seconds")
        song_at = int(round(beats[np.argmin(np.abs(beats - at))]))  # the song's beat nearest the asked time
        for s in range(streams):  # arrive on the output's beat nearest --by, as the song's beat there
            ks = np.flatnonzero(bound[:, s])
            k = int(ks[np.argmin(np.abs(ks * f - by_s * rate))])
            waypoint(s, song_at, k * f, (LEAD_BEATS * beat_s * rate, (LEAD_BEATS + ENTRY_BEATS) * beat_s * rate),
                     int(np.ceil(clock.BAR * frames_per_beat[s])), "toward", row)
    if shape.ending or shape.loop:
        lo = (ENDING_BARS * clock.BAR if shape.ending else LEAD_BEATS) * beat_s * rate
        for s in range(streams):
            waypoint(s, song_len if shape.ending else LOOP, n_samples, (lo, lo + ENTRY_BEATS * beat_s * rate), n,
                     "--ending" if shape.ending else "--loop")
    width = max(max((len(e) for e in entries), default=0), 1)
    ent = np.full((streams, width), NONE, np.int32)
    ent_clock = np.zeros((streams, width), np.float32)
    for s, e in enumerate(entries):
        ent[s, : len(e)] = e
        ent_clock[s, : len(e)] = clock_pos[e, s]
    return Plan(goal=goal, rem=rem, window=window, window_end=window_end, hold_to=hold_to, pull=pull, target=target,
                entries=ent, entry_clock=ent_clock, sims=sims if len(sims) else p.sims)


def marks(shape: Shape, *, song_len: int, sample_rate: int, first: int) -> dict:
    """Song seconds the output was asked to reach, by name, for the path sidecar (``first``: the song sample its
    first frame played, where a loop closes)."""
    out = {f"toward{i + 1 if len(shape.toward) > 1 else ''}": t for i, (t, _) in enumerate(shape.toward)}
    if shape.intro:
        out["intro"] = 0.0
    if shape.ending:
        out["ending"] = song_len / sample_rate
    if shape.loop:
        out["loop"] = first / sample_rate
    return out


def similarity(song: np.ndarray, sample_rate: int, beats: np.ndarray, targets: list[float]) -> np.ndarray:
    """(W, Nb) float32: how much the song's beat at each of ``beats`` (samples) sounds like each passage of
    ``targets`` (song seconds; TARGET_BEATS beats from there): 1 - the distance of its one-beat window (chroma +
    MFCC, ``framegen.transitions``) to the passage's nearest window, in units of two random beats' distance."""
    from framegen import transitions

    if not targets:
        return np.zeros((0, len(beats)), np.float32)
    tempo = 60.0 * sample_rate / float(np.median(np.diff(beats)))
    index = transitions.index_song(np.asarray(song, np.float32), sample_rate, tempo)
    hop = transitions.feature_hop(sample_rate)
    rows = np.clip(np.round(np.asarray(beats) / hop).astype(np.int64), 0, len(index.windows) - 1)
    at = index.windows[rows]  # (Nb, D)
    out = []
    for t in targets:
        first = np.searchsorted(beats, t * sample_rate)
        passage = at[first : first + TARGET_BEATS] if first < len(beats) else at[-1:]
        d = np.min(np.linalg.norm(at[:, None, :] - passage[None, :, :], axis=-1), axis=1)
        out.append(1.0 - d / index.unit)
    return np.asarray(out, np.float32)


def likeness_of(sims: np.ndarray, beats: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """(W, n): ``sims`` (W, Nb) at the song beat nearest each of ``positions`` (n,) (song samples; NaN where -1)."""
    at = np.clip(np.round(clock.beat_position(np.asarray(beats, np.float64), np.asarray(positions, np.float64))),
                 0, len(beats) - 1).astype(np.int64)
    return np.where(np.asarray(positions)[None, :] >= 0, sims[:, at], np.nan).astype(np.float32)
