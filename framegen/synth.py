"""The built-in demo song: a deterministic synthetic piece of a few repeating patterns with different periods.

Like the electronic music of the seed discussion it has structure at several time scales: a 0.25 s percussive
pulse, a 2 s bass figure and an 8 s pad, so short frames, long sequences and multi-scale models all have something
to learn, and no file or download is needed.
"""

import numpy as np

DEMO_SECONDS = 60.0
DEMO_RATE = 16000


def demo_song(seconds: float = DEMO_SECONDS, sample_rate: int = DEMO_RATE, *, seed: int = 0) -> np.ndarray:
    """A mono float32 song in [-1, 1] of round(seconds * sample_rate) samples; the same for the same arguments."""
    n = int(round(seconds * sample_rate))
    t = np.arange(n) / sample_rate
    rng = np.random.default_rng(seed)

    # 0.25 s pulse: a decaying noise burst plus a pitched click, every beat (240 bpm sixteenths of 60 bpm).
    beat = 0.25
    phase = np.mod(t, beat)
    env = np.exp(-phase / 0.012)
    burst = rng.standard_normal(int(round(beat * sample_rate)))
    pulse = env * (0.5 * np.tile(burst, n // len(burst) + 1)[:n] + np.sin(2 * np.pi * 180 * phase))

    # 2 s bass figure: four notes of 0.5 s, each a saw-ish tone with a short fade.
    notes = np.array([55.0, 65.41, 73.42, 49.0])
    note_idx = (np.floor(t / 0.5).astype(int)) % len(notes)
    f_bass = notes[note_idx]
    note_phase = np.mod(t, 0.5)
    bass_env = np.minimum(1.0, note_phase / 0.01) * np.exp(-note_phase / 0.4)
    bass_wave = sum(np.sin(2 * np.pi * k * f_bass * note_phase) / k for k in range(1, 6))
    bass = bass_env * bass_wave

    # 8 s pad: a slowly swelling chord that changes every 8 s between two voicings.
    chord_a = np.array([220.0, 277.18, 329.63])
    chord_b = np.array([196.0, 246.94, 293.66])
    which = (np.floor(t / 8.0).astype(int)) % 2
    swell = 0.5 - 0.5 * np.cos(2 * np.pi * np.mod(t, 8.0) / 8.0)
    pad = np.zeros(n)
    for fa, fb in zip(chord_a, chord_b):
        f = np.where(which == 0, fa, fb)
        pad += np.sin(2 * np.pi * f * np.mod(t, 8.0))
    pad *= swell / 3.0

    song = 0.35 * pulse + 0.35 * bass + 0.3 * pad
    song /= np.max(np.abs(song)) + 1e-9
    return (0.8 * song).astype(np.float32)


def choice_song(sections: int = 150, sample_rate: int = 8000, *, section_s: float = 0.2, cue_s: float = 0.01,
                answer_s: float = 0.08, seed: int = 0) -> np.ndarray:
    """A song whose next frame depends on a choice made long before: ``sections`` sections of ``section_s`` each
    open with one of two cues (a 400 Hz or a 1 kHz tone, chosen at random), continue with the same quiet 150 Hz
    filler, and close with an answer that names the cue (a 600 Hz tone after the first, 1.4 kHz after the second).
    Only the cue, section_s - answer_s earlier, tells which answer comes: a model must carry one bit across the
    filler (tests/test_train.py: slower tiers carry it better than one frame-rate GRU)."""
    rng = np.random.default_rng(seed)
    n, cue, answer = (int(round(s * sample_rate)) for s in (section_s, cue_s, answer_s))
    t = np.arange(n) / sample_rate
    out = []
    for c in rng.integers(0, 2, sections):
        y = 0.3 * np.sin(2 * np.pi * 150 * t)
        y[:cue] = np.sin(2 * np.pi * (400 if c else 1000) * t[:cue])
        y[n - answer :] = np.sin(2 * np.pi * (600 if c else 1400) * t[:answer])
        out.append(y)
    return (0.8 * np.concatenate(out)).astype(np.float32)
