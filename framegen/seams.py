"""Seam smoothing: how generated frames become continuous audio at their borders, for a whole clip or a chunk at a
time. The raised-cosine seam ramp bends frames that have no surroundings; the overlap-add crossfades real song frames
with their real surroundings.
"""

import numpy as np


def smooth_seams(y: np.ndarray, frame_size: int, width: int) -> np.ndarray:
    """Remove the step at every frame border of ``y`` (..., N) (borders at multiples of ``frame_size``) with a
    raised-cosine correction ramp; the length is unchanged.

    At a border b (between y[b-1] and y[b]) the excess jump is
        d = (y[b] - y[b-1]) - (y[b-1] - y[b-2] + y[b+1] - y[b]) / 2,
    the step minus the local slope, so a smooth waveform crossing the border is left (nearly) alone. Then
        y[b-1-j] += d/2 * w(j)   and   y[b+j] -= d/2 * w(j),   w(j) = (1 + cos(pi (j + 1/2) / L)) / 2,
    for j = 0..L-1, L = ``width`` (at most F/2, so neighbouring ramps never overlap): the two sides meet half way
    and the step becomes a raised-cosine slope over 2L samples. Frames have no samples beyond their borders to
    overlap-add, so the ramp bends each frame's own edges instead. Borders with fewer than 2 samples on a side of
    the signal are left alone.
    """
    y = np.array(y, np.float32, copy=True)
    n = y.shape[-1]
    width = min(int(width), frame_size // 2)
    seams = np.arange(frame_size, n - 1, frame_size)
    seams = seams[seams >= 2]
    if width < 1 or len(seams) == 0:
        return y
    step = y[..., seams] - y[..., seams - 1]
    slope = 0.5 * ((y[..., seams - 1] - y[..., seams - 2]) + (y[..., seams + 1] - y[..., seams]))
    half = 0.5 * (step - slope)  # (..., M)
    j = np.arange(width)
    w = (0.5 * (1.0 + np.cos(np.pi * (j + 0.5) / width))).astype(np.float32)  # (L,)
    left = seams[:, None] - 1 - j  # (M, L): indices are unique across seams since L <= F/2
    right = seams[:, None] + j
    ok_r = right < n
    y[..., left] += half[..., None] * w
    y[..., right[ok_r]] -= (half[..., None] * w)[..., ok_r]
    return y


class SeamSmoother:
    """``smooth_seams`` a chunk at a time: the audio after ``lead`` (S, F) (the prompt's last frame), bit for bit as
    ``smooth_seams(concatenate([lead, all frames]))[:, F:]``.

    Each ``push`` smooths the held last frame of the previous chunk together with the new frames and holds the new
    last frame back (its seam with the next chunk is not known yet). A seam's correction is computed from the two
    samples either side of it, which no other seam's ramp touches (ramps are at most F/2 long), so a frame whose
    first seam was corrected in the previous chunk joins the next one exactly as in one call.
    """

    def __init__(self, lead: np.ndarray, frame_size: int, width: int):
        self.held = np.asarray(lead, np.float32)
        self.f, self.width, self.skip = frame_size, width, frame_size

    def push(self, y: np.ndarray, sources=None, last: bool = False) -> np.ndarray:
        """Frames (S, m F) in, the audio now final out (the held frame of the last push comes out with it)."""
        buf = smooth_seams(np.concatenate([self.held, y], axis=1), self.f, self.width)
        out, self.held = (buf, buf[:, :0]) if last else (buf[:, : -self.f], buf[:, -self.f :])
        out, self.skip = out[:, self.skip :], max(self.skip - out.shape[1], 0)
        return out


def cut_around(y: np.ndarray, offsets, frame_size: int, width: int) -> np.ndarray:
    """(S, F + 2h) the frames of ``y`` at ``offsets`` (S,) with h = min(``width``, F) // 2 samples either side,
    zeros past its ends: what ``overlap_add`` cuts for a frame."""
    h = min(int(width), frame_size) // 2
    pad = np.concatenate([np.zeros(h, np.float32), np.asarray(y, np.float32), np.zeros(frame_size + h, np.float32)])
    return pad[np.asarray(offsets, np.int64)[:, None] + np.arange(frame_size + 2 * h)]


class OverlapAdd:
    """``overlap_add`` a chunk of frames at a time, bit for bit as one call over all of them.

    Frame 0 (the prompt's last frame) is cut from ``song`` at ``lead_offset`` (S,) (-F: the silence before the
    song), or given whole as ``lead`` (S, F + 2h) when the prompt comes from another file (``cut_around`` it
    there); with neither it is the first frame's own predecessor in the song (a loop's output starts as the song
    does there). Each ``push`` of song offsets
    (S, m) adds their windowed cuts and returns the samples no later frame reaches; the 2h samples of the last
    frame's fade-out are carried into the next push. Every sample is one cut's, or the sum of two neighbours'
    (h <= F/2), whichever chunk they came in.
    """

    def __init__(self, song: np.ndarray, lead_offset, frame_size: int, width: int, lead: np.ndarray | None = None):
        f = frame_size
        h = self.h = min(int(width), f) // 2
        self.f = f
        # zeros a frame before the song (what an intro's first frame follows) and past its end
        self.pad = np.concatenate([np.zeros(f + h, np.float32), np.asarray(song, np.float32),
                                   np.zeros(f + h, np.float32)])
        self.span = np.arange(f + 2 * h)
        w = np.ones(f + 2 * h, np.float32)
        if h:
            t = (np.arange(2 * h) + 0.5) / (2 * h)
            w[: 2 * h] = np.sin(0.5 * np.pi * t) ** 2
            w[-2 * h :] = np.cos(0.5 * np.pi * t) ** 2
        self.w = w
        self.w_last = w.copy()
        self.w_last[f:] = 1.0  # the last frame has no successor: it plays to the end of the output unfaded
        self.lazy = lead is None and lead_offset is None  # the lead is known at the first push
        self.lead = (np.asarray(lead, np.float32) if lead is not None
                     else None if self.lazy else self._cut(np.asarray(lead_offset, np.int64)))
        self.tail = np.zeros((0 if self.lazy else len(self.lead), 2 * h), np.float32)
        self.skip = f + h  # the output starts after frame 0, at frame 1's first sample

    def _cut(self, offsets: np.ndarray) -> np.ndarray:
        """(..., F + 2h) the song around offsets (...,) (at least -F), zeros past its ends."""
        return self.pad[np.asarray(offsets, np.int64)[..., None] + self.f + self.span]

    def push(self, y=None, sources: np.ndarray | None = None, last: bool = False) -> np.ndarray:
        """Song offsets ``sources`` (S, m) of the next frames in (``y``, their frames, is not needed: the cuts are
        taken from the song), the audio now final out; ``last`` ends the output with the last frame unfaded."""
        f, h = self.f, self.h
        sources = np.asarray(sources, np.int64)
        cuts = self._cut(sources)  # (S, m, F + 2h)
        if self.lazy:  # no lead given: the first frame's own predecessor in the song
            self.lead, self.tail = self._cut(sources[:, 0] - f), np.zeros((len(sources), 2 * h), np.float32)
            self.lazy = False
        if self.lead is not None:
            cuts, self.lead = np.concatenate([self.lead[:, None], cuts], axis=1), None
        weights = np.broadcast_to(self.w, cuts.shape[1:]).copy()
        if last:
            weights[-1] = self.w_last
        cuts *= weights
        out = cuts[:, :, :f].copy()  # (S, n, F): frame i's core and lead-in, placed at [i F, (i + 1) F) ...
        out[:, :, : 2 * h] += np.concatenate([self.tail[:, None], cuts[:, :-1, f:]], axis=1)  # ... plus i-1's fade-out
        self.tail = cuts[:, -1, f:]
        out = out.reshape(len(out), -1)
        if last:
            out = np.concatenate([out, self.tail[:, :h]], axis=1)
        out, self.skip = out[:, self.skip :], max(self.skip - out.shape[1], 0)
        return out


def overlap_add(song: np.ndarray, offsets: np.ndarray, frame_size: int, width: int,
                lead: np.ndarray | None = None) -> np.ndarray:
    """Concatenate frames cut from ``song`` at ``offsets`` (S, N), overlap-adding their real surroundings across
    every border -> (S, (N - 1) * F): the audio of frames 1..N-1, frame 0 being the one before the output.

    Frame i is cut with h = ``width`` // 2 extra samples each side, song[o_i - h : o_i + F + h], weighted by a
    window that rises as sin^2 over its first 2h samples, is 1 in the middle and falls as cos^2 over its last 2h,
    and placed so its core lands on [i F, (i + 1) F). Across a border, frame i's real continuation fades out while
    frame i+1's real lead-in fades in; the weights sum to 1 everywhere, so a frame followed by its true successor
    (o_{i+1} = o_i + F) comes out exactly as the song. The last frame is not faded out. ``width`` is capped at F
    (only neighbours overlap); the song is zero-padded where a cut runs past its ends. ``lead`` (S, F + 2h), when
    given, is frame 0's cut (a prompt from another file; ``offsets[:, 0]`` is then not read).
    """
    offsets = np.asarray(offsets, np.int64)
    return OverlapAdd(song, offsets[:, 0], frame_size, width, lead).push(sources=offsets[:, 1:], last=True)


class Unsmoothed:
    """No smoothing, with the streaming smoothers' ``push``: frames in, the same audio out."""

    def push(self, y, sources=None, last: bool = False) -> np.ndarray:
        return y
