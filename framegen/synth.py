"""The built-in demo song: a deterministic synthetic pop tune at a steady 120 bpm in 4/4, varied from bar to bar;
and two test signals: ``loop_song`` (the earlier demo song, one exact 16 s loop) and ``choice_song`` (the next
frame depends on a choice made long before).

A loop that repeats exactly cannot be continued without copying it, so the demo song keeps only what a listener
would call its style fixed (tempo, metre, drum pattern, instruments, key) and varies its content: an 8-bar chord
progression that differs between its A and B sections, a melody drawn afresh for every bar from that bar's chord,
a bass figure per section and a drum fill every 4th bar. No file or download is needed: rendering takes about half a
second.
"""

import numpy as np

DEMO_RATE = 16000
DEMO_BPM = 120.0  # librosa's tempo prior peaks here, so the tracker and the pulse metrics hold on to it at once
BEATS_PER_BAR = 4
BAR_S = BEATS_PER_BAR * 60.0 / DEMO_BPM  # 2 s
# 72 s: an intro bar and 35 bars. The held-out tail (the last 10%, 7.2 s: generation's seed) is 3.6 bars of melody
# the training part never had; a longer song would only make the 2-minute demo's epochs longer.
DEMO_BARS = 36
DEMO_SECONDS = DEMO_BARS * BAR_S
COMPOSITION_SEED = 22  # the notes; demo_song's `seed` redraws only the drums' noise (the same tune, another take)

# Chords as semitones above A (A minor / C major); two 8-bar progressions, so A and B sections differ in harmony.
CHORDS = {"Am": (0, 3, 7), "F": (-4, 0, 3), "C": (3, 7, 10), "G": (-2, 2, 5), "Dm": (5, 8, 12), "E": (-5, -1, 2),
          "Em": (-5, -2, 2)}
PROGRESSIONS = (("Am", "F", "C", "G", "Am", "F", "E", "E"), ("F", "G", "Em", "Am", "Dm", "G", "C", "E"))
SCALE = (0, 2, 3, 5, 7, 8, 10)  # A natural minor: the melody's passing notes


def _hz(semitones) -> np.ndarray:
    return 220.0 * 2.0 ** (np.asarray(semitones, np.float64) / 12.0)


def _tone(hz: float, seconds: float, rate: int, *, partials: int, decay: float, attack: float = 0.005) -> np.ndarray:
    """A note of `partials` harmonics (amplitude 1/k: saw-like) with a linear attack and an exponential decay."""
    t = np.arange(int(seconds * rate)) / rate
    wave = sum(np.sin(2 * np.pi * k * hz * t) / k for k in range(1, partials + 1) if k * hz < 0.45 * rate)
    return wave * np.minimum(1.0, t / attack) * np.exp(-t / decay)


def _add(out: np.ndarray, start_s: float, sound: np.ndarray, rate: int, gain: float) -> None:
    i = int(round(start_s * rate))
    n = min(len(sound), len(out) - i)
    if n > 0:
        out[i : i + n] += gain * sound[:n]


def demo_song(seconds: float = DEMO_SECONDS, sample_rate: int = DEMO_RATE, *, seed: int = 0) -> np.ndarray:
    """A mono float32 song in [-1, 1] of round(seconds * sample_rate) samples; the same for the same arguments.
    `seed` draws the noise of snare and hi-hat only: the notes come from COMPOSITION_SEED, so another seed is
    another take of the same tune."""
    rate = sample_rate
    n = int(round(seconds * rate))
    out = np.zeros(n)
    notes = np.random.default_rng(COMPOSITION_SEED)
    noise = np.random.default_rng(seed)
    beat, eighth = BAR_S / BEATS_PER_BAR, BAR_S / 8
    kick = _tone(55.0, 0.25, rate, partials=1, decay=0.08) * np.exp(-np.arange(int(0.25 * rate)) / rate / 0.05)
    for bar in range(int(np.ceil(seconds / BAR_S))):
        t0 = bar * BAR_S
        intro, section = bar == 0, ((bar - 1) // 8) % 2  # bar 0 is the intro; then A, B, A, B... of 8 bars
        chord = np.array(CHORDS[PROGRESSIONS[section][(bar - 1) % 8]])
        fill = bar % 4 == 0 and not intro  # the 4th bar of every 4 ends in a snare roll
        # Drums: kick on 1 and 3 (and the "and" of 3 in B), snare on 2 and 4, hi-hat on every eighth. The same
        # pattern throughout keeps the pulse steady; the fill marks the 4-bar phrases.
        for k in (0, 2, 2.5) if section else (0, 2):
            _add(out, t0 + k * beat, kick, rate, 0.9)
        snares = [1] + ([2.75, 3, 3.25, 3.5, 3.75] if fill else [3])
        for k in snares:
            m = int(0.12 * rate)  # fresh noise for every hit, over a 190 Hz body
            hit = noise.standard_normal(m) * np.exp(-np.arange(m) / rate / 0.035)
            _add(out, t0 + k * beat, hit + _tone(190.0, 0.12, rate, partials=1, decay=0.04), rate, 0.45)
        for k in range(8) if not fill else range(6):
            m = int(0.05 * rate)  # differenced noise (the highs of a closed hi-hat), decaying
            hat = np.diff(noise.standard_normal(m + 1)) * np.exp(-np.arange(m) / rate / 0.012)
            _add(out, t0 + k * eighth, hat, rate, 0.12 if k % 2 else 0.2)
        # Pad: the chord held over the bar, softly (sine partials), so harmony is heard between the notes.
        for s in chord:
            _add(out, t0, _tone(float(_hz(s)), BAR_S, rate, partials=2, decay=3.0, attack=0.1), rate, 0.12)
        if intro:
            continue
        # Bass: the chord's root (its first entry) two octaves down, in quarters (A) or a syncopated figure (B).
        figure = ((0, 0), (1, 0), (2, 7), (3, 0)) if section == 0 else ((0, 0), (1.5, 0), (2, 12), (3, 7), (3.5, 0))
        for k, step in figure:
            _add(out, t0 + k * beat, _tone(float(_hz(chord[0] - 24 + step)), 0.45, rate, partials=6, decay=0.25),
                 rate, 0.35)
        # Melody: eight eighth-note slots drawn afresh every bar: a rest (1 in 4), a chord tone (11 in 20) or a
        # passing note of the scale (1 in 5); in B half of the notes an octave higher. This is what makes every bar
        # new while the style stays the same.
        for k in range(8):
            r = notes.random()
            if r < 0.25:
                continue
            pitch = notes.choice(chord) if r < 0.8 else notes.choice(SCALE)
            pitch += 12 + 12 * section * (notes.random() < 0.5)
            _add(out, t0 + k * eighth, _tone(float(_hz(pitch)), 0.3, rate, partials=4, decay=0.15), rate, 0.3)
    out /= np.max(np.abs(out)) + 1e-9
    return (0.8 * out).astype(np.float32)


def loop_song(seconds: float = 60.0, sample_rate: int = DEMO_RATE, *, seed: int = 0) -> np.ndarray:
    """The demo song before issue 22, a mono float32 loop in [-1, 1]: a 0.25 s pulse (decaying noise burst and
    click; `seed` draws the burst), a 2 s four-note bass figure and a pad alternating two chords every 8 s, so it
    repeats exactly every 16 s and any excerpt of it is a verbatim copy. framegen.evaluate's thresholds quote its
    scores, and tests/test_evaluate.py scores its failure cases against it."""
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
