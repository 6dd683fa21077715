"""Generated-audio metrics and verdict flags: is a continuation silent, noise, stuck in a loop, a drone, a copy of the
song, far from it, or without its beat? Plain numpy/scipy/librosa signal processing against the song; no learned
models.

The measures come from the modules below it: loudness and loops from framegen.waveform, frame statistics from
framegen.spectral, time structure (pulse, rhythm pattern, tempo, held notes) from framegen.rhythm, where a clip goes
from beat to beat (transitions, jumps, change) from framegen.transitions. Here `evaluate` gathers them into an
`Evaluation` and turns them into flags with the thresholds below; METRICS says what each field means (docstring,
report, CLI help); `evaluate_files` and `score_clip` are the edges. framegen.explain puts an Evaluation in words.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from framegen import rhythm, songpath, transitions
from framegen import waveform as wf
from framegen.errors import AudioError
from framegen.spectral import NOISE_FLATNESS, band_flatness, frechet_and_novelty, noise_likeness

# Thresholds and analysis settings. The values were set from measurements on the demo song (framegen.synth) and on
# real music (the 31 pieces of Debian's drascula-music); the scores of each case are in tests/test_evaluate.py.

SILENT_BELOW = 0.5
"""'silent' when fewer than half of the windows are audible: a rest or a fade at the end does not make a clip
silent, a generator that dies out within seconds does (a 0.5 s exponential fade over 10 s scores 0.11)."""

NOISE_LIKE_ABOVE = 0.5
"""'noise_like' needs the band flatness more than half way from the song's own to that of noise (noise_likeness >
0.5): white and pink noise score 1.05-1.28, excerpts of the song -0.3-0.1, music with noise mixed in at 10 dB SNR
~0.1, at 0 dB ~0.5, at -10 dB ~0.9."""

NOISE_FLAT_ABOVE = 0.8 * NOISE_FLATNESS
"""... and the band flatness itself above 0.45, 80% of that of noise: a busy band (0.35-0.39, the flattest of the
31 drascula pieces) is halfway to noise next to a solo organ (0.05-0.15), yet it is not noise; noise scores
0.57-0.61."""

FAR_ABOVE = 4.0
"""'far_from_song' when the Frechet distance is more than 4x that of a real excerpt. Real excerpts score 0.3-1.3
(0.1 on the demo, see REAL_FLOOR), music in the song's style 0.4-3.3 (the demo re-pitched or re-seeded, drascula
pieces of like instrumentation); white or pink noise 9.6-17 against real music and 300-400 against the demo; very
different pieces (solo organ against a band) 4.2-17."""

COPYING_BELOW = 0.15
"""'copying' when the generated seconds are, on average, nearer to some second of the song than 0.15 of the
distance between two random moments of it. A verbatim copy scores ~0 (1e-9), a copy under -40 dB of noise or 10-bit
mu-law 0.02-0.09; the demo re-pitched by 1-3% scores 0.19-0.32 and other real music 0.45-1.0. The demo rendered with
another seed (same notes, new percussion noise) scores 0.11-0.15: copying, as it is the same recording bar the
noise of its hi-hat."""

LOOP_MIN_LEVEL = 1e-3
"""A loop must be louder than -60 dB of the song's RMS: digital silence repeats trivially and is 'silent', not
'stuck'. The fixed point met in practice (~4% of the song's loudness, -28 dB) is far above it."""

CLIP_LEVEL = 0.999
"""A sample at or above 0.999 of full scale counts as clipped."""

CLIPPING_ABOVE = 0.01
"""'clipping' when more than 1% of the samples are at full scale; mastered music stays well below that."""

MIN_SECONDS = 1.0
"""Both clips must hold at least one second: novelty compares whole seconds."""

PULSE_SONG_ABOVE = 0.3
"""'no_pulse' is judged when the song has a pulse: its excerpts' median pulse at least 0.3. Drascula pieces with a
clear beat reach 0.62-0.86 (track1, 5, 8), the demo 0.99; white noise 0.07-0.15."""

NO_PULSE_BELOW = 0.5
"""... and raised when the clip reaches less than half of it (pulse_ratio < 0.5): real 30 s excerpts of those songs
score 1.0-1.31, their 25 ms fragments shuffled 0.09-0.16, white noise 0.08-0.11 (0.12-0.13 against the demo)."""

STATIC_BELOW = 0.35
"""'static' when the clip's beat-to-beat change is below 0.35 of the song's (change_ratio). Against drascula
track1, 5, 8 and 26 (experiments/quality/transitions.md): a held chord scores 0.001-0.003 (0.003-0.02 with a 4 Hz
tremolo, 0.02-0.12 with a 5 Hz vibrato, 0.11-0.25 swelling over 8 s, 0.11-0.22 with white noise 10-20 dB below it),
6 s of the song and then a chord (the MSE drone) 0.000-0.002, a chord changing every 4 s 0.003; real 30 s excerpts
of the 28 drascula pieces of 30 s or more 0.55-1.46 (track9 and track26 the least, 0.55 and 0.59; most 0.8 or more).
White noise scores 0.22-0.46: at the scale of a beat it does not change either, but it is 'noise_like', and static
is not judged on a clip that is."""

FLAG_ORDER = ("silent", "noise_like", "stuck", "static", "copying", "far_from_song", "no_pulse", "clipping",
              "nonfinite")


METRICS: dict[str, tuple[str, str]] = {
    # name: (one-line summary for the report, details for the Evaluation docstring and `framegen evaluate --help`)
    "seconds": ("length of the generated clip", ""),
    "sample_rate": ("rate of the generated clip", "every metric is computed at this rate"),
    "reference_rate": ("rate of the song as given", "resampled to `sample_rate` when they differ"),
    "audible_ratio": (
        f"share of {wf.WINDOW_S * 1000:g} ms windows louder than {wf.AUDIBLE_FRACTION:.0%} of the song's median window "
        "(1 = sounds throughout)",
        f"louder: RMS above {wf.AUDIBLE_FRACTION:.0%} of the song's median {wf.WINDOW_S * 1000:g} ms window RMS; "
        "0 = silent"),
    "loudness_ratio": ("RMS of the clip / RMS of the song (1 = as loud)", ""),
    "band_flatness": (
        "spectral flatness within octave bands (noise ~0.56, music lower)",
        "geometric / arithmetic mean of power within octave bands from 62.5 Hz to 8 kHz, averaged over bands and "
        "128 ms STFT frames weighted by each cell's RMS amplitude; cells 60 dB below the song's mean bin power (in "
        "that band or overall) are skipped, and a clip with none left scores 0. Noise is flat within every octave, "
        "white or pink (~0.56), where whole-spectrum flatness misses pink noise; music puts its power in partials and "
        "scores lower (0.02-0.39 for the 31 drascula pieces)"),
    "reference_band_flatness": ("the same for the song", ""),
    "noise_likeness": (
        "0 = as tonal as the song, 1 = as flat as noise",
        "(band_flatness - reference_band_flatness) / max(0.5615 - reference_band_flatness, 0.05), where 0.5615 = "
        "exp(-Euler gamma) is the flatness of Gaussian noise; below 0 = more tonal than the song"),
    "frechet": (
        "Frechet distance of log-mel frame statistics to the whole song (dB^2)",
        "between Gaussians fitted to the 64-band log-mel frames (64 ms window, 10 ms hop) of the clip and of the whole "
        "song: |mu_c - mu_s|^2 + tr(C_c + C_s - 2 (C_c C_s)^1/2)"),
    "frechet_real": (
        "the same for real excerpts of the song of this length",
        "excerpts as long as the clip (at most half the song), averaged over 4 evenly spaced ones, and never below 1% "
        "of the song's frame spread 2 tr(C_s): what \"sounds like this song\" scores at this length"),
    "frechet_ratio": ("frechet / frechet_real (~1 = as close as a real excerpt)", "noise scores several times higher"),
    "novelty": (
        "distance of each second to its nearest second of the song (0 = verbatim copy, ~1 = novel)",
        "RMS log-mel distance from each whole second of the clip to its nearest second of the song (found on the "
        "10 ms frames, then aligned to the sample by waveform cross-correlation, both seconds analysed alone), divided "
        "by the RMS distance between two random frames of the song, sqrt(2 tr C_s); averaged over the seconds. ~1 = as "
        "different as two random moments of the song"),
    "loop_period_s": (
        "period of an exact repetition up to the end (None = no loop)",
        f"the shortest period P (up to {wf.LOOP_MAX_PERIOD_S:g} s) with which the last {wf.LOOP_WINDOW_S:g} s of the "
        "clip repeat exactly: residual sum (x[n] - x[n+P])^2 / sum (x[n]^2 + x[n+P]^2) below 3e-4 (YIN's normalised "
        "difference, by FFT autocorrelation). A stuck "
        "loop, a fixed-point frame (P = its length), DC (P = one sample)"),
    "loop_start_s": ("where that repetition starts", "time from which the clip repeats with that period to its end"),
    "loop_score": ("1 = exact repetition, ~0 = noise",
                   f"1 - the smallest residual over lags up to {wf.LOOP_MAX_PERIOD_S:g} s in the last "
                   f"{wf.LOOP_WINDOW_S:g} s: music ~0.9-0.999, white noise ~0; "
                   "0 when the end of the clip is silent (quieter than -60 dB of the song)"),
    "pulse": (
        "highest onset-autocorrelation peak at a beat period of 0.25-4 s (click track ~1, white noise ~0.1)",
        "the onset-strength envelope (librosa, 10 ms hop, averaged over 50 ms, mean removed), autocorrelated and "
        "normalised to 1 at lag 0; its highest local maximum at lags 0.25-4 s (at most half the clip). Drascula pieces "
        "with a clear beat reach 0.6-0.9 in 30 s, shuffled 25 ms fragments of them and white noise 0.07-0.15"),
    "pulse_real": ("the same, median over 8 real excerpts of the song of the clip's length", ""),
    "pulse_ratio": ("pulse / pulse_real (~1 = the song's beat, < 0.5 = none)", "pulse_real floored at 0.05"),
    "tempo": ("tempo of the clip (bpm, librosa's estimate)", "librosa.feature.tempo on the onset envelope"),
    "tempo_song": ("tempo of the whole song (bpm)", ""),
    "tempo_match": ("the tempi agree within 4% (or at twice or half)", ""),
    "rhythm_similarity": (
        "cosine of the clip's rhythm pattern to the song's (real excerpts ~1)",
        "the onset autocorrelation at lags 0.1-8 s (at most half the clip: 0.1-5 s for 10 s) of the clip and of the "
        "whole song, each centred on its mean over those lags (uncentred, any decaying curve scores high), cosine"),
    "rhythm_similarity_real": ("the same, median over 8 real excerpts of the clip's length: the reference", ""),
    "continuity": (
        "share of spectral peaks held from one 40 ms frame to the next (held notes)",
        "amplitude-weighted share of the peaks (15 dB above their +-16 bins) of each non-overlapping ~40 ms frame "
        "that a peak of the next frame continues (same bin +-1): a held tone 1; real music 0.5-0.9; a sequence of "
        "25 ms fragments from unrelated places of the song 0.1-0.4 (it shares no sample across the frame border)"),
    "continuity_song": ("the same for the whole song", ""),
    "continuity_ratio": ("continuity / continuity_song (real excerpts 0.95-1.11, 25 ms fragments 0.15-0.43)",
                         "continuity_song floored at 0.05"),
    "transition": (
        "does the clip go where the song goes, one beat on? (1 = as the song does, 0 = as two random moments of it)",
        f"clip and song are cut into one-beat windows (the song's tempo, folded into "
        f"{transitions.MIN_BEAT_S:g}-{transitions.MAX_BEAT_S:g} s) of mean chroma and MFCC 0-{transitions.N_MFCC - 1} "
        f"(z-scored by the song), every {transitions.FEATURE_HOP_S * 1000:g} ms in the song and every "
        f"1/{transitions.STEPS_PER_BEAT} beat in the clip. For each clip window, the nearest song window; the "
        "distance from what the clip plays one beat later to what the song plays one beat after that window, in "
        f"units of the median distance between two random windows of the song ({transitions.RANDOM_PAIRS:,} pairs, "
        f"fixed seed); 1 - the median over the clip. Song places within {transitions.TIE:.0%} of that unit of the "
        "nearest are as near (a song that repeats itself exactly). The held-out last 30 s of drascula pieces "
        "score 0.12-0.85 against "
        "the rest, depending on how much a piece repeats itself; their beats re-sequenced at random 0.02-0.19; "
        "white noise -0.5 to -1.5 (below 0: further from what the song plays than two moments of it)"),
    "transition_jumps": (
        "the same, only where the clip jumps to another place of the song (None: no jump)",
        "a jump: the song window nearest to the clip one beat later is not within "
        f"{transitions.ON_PATH_BEATS:g} beat of one beat after a window nearest to it now. Where a generator that "
        "re-sequences the song makes its choices: at random ~transition_shuffled, a similarity jukebox (jumps "
        "between beats whose sound and predecessor match: experiments/quality/jukebox.py) 0.31-0.71 on drascula "
        "pieces where it finds similar beats (track1, 5, 23; 3 seeds), 0.02-0.42 on one where it seldom does"),
    "jump_rate": ("share of one-beat steps at which the clip jumps (~jumps per beat, up to 1)",
                  f"steps every 1/{transitions.STEPS_PER_BEAT} beat, and a jump is seen by ~"
                  f"{transitions.STEPS_PER_BEAT} of them. New music jumps too: real excerpts of a piece that seldom "
                  "repeats itself jump at 0.9 or more of their steps (their nearest windows are anywhere in the "
                  "song), of one that does at 0.5-0.6; see jump_rate_real"),
    "transition_real": (
        f"transition of real excerpts of the clip's length, median of {transitions.REAL_EXCERPTS}",
        f"evenly spaced excerpts of the song (at most half of it and {transitions.REAL_SECONDS:g} s), each matched "
        "against the rest of the song only: what new music that follows the song as the song follows itself "
        "scores"),
    "jump_rate_real": ("jump_rate of those real excerpts (median)", ""),
    "transition_shuffled": (
        "transition_jumps of the song's own beats re-sequenced at random: chance",
        f"{transitions.SHUFFLED_BEATS} one-beat stretches of the song, each from the strongest onset within a beat "
        "of a random place (fixed seed)"),
    "jump_score_exact": (
        "at the clip's jumps, how near where it lands is to what the song plays there (exact, from the path sidecar)",
        "from x.path.npz beside x.wav (framegen generate writes it when the frames played are the song's own): at each "
        "output frame that does not continue the one before it in the song, the one-beat window of the song where "
        "the clip lands against the one the song plays after the frame before, in the transition metrics' z-scored "
        "chroma + MFCC and units: 1 - the median distance over the jumps (1 = what the song plays, 0 = as two random "
        "moments of it). None without a sidecar, or one that does not fit the song"),
    "jumps_exact": ("jumps per beat, from the path sidecar (the exact counterpart of jump_rate)", ""),
    "longest_copy_s": ("longest stretch the clip plays as the song does, from the path sidecar (seconds)", ""),
    "change": (
        "median change from one beat to the next (z-scored chroma + MFCC, 0 = a held sound)",
        f"the distance between clip windows one beat apart, every 1/{transitions.STEPS_PER_BEAT} beat, median; "
        f"the mel power behind the MFCCs floored at {transitions.DB_FLOOR:g} of the song's mean, as for the Frechet "
        "distance"),
    "change_song": ("the same over the whole song", ""),
    "change_ratio": (
        f"change / change_song (real 30 s excerpts 0.55-1.46, a held chord ~0; < {STATIC_BELOW:g}: static)", ""),
    "clipping_ratio": ("share of samples at full scale", f"at or above {CLIP_LEVEL:g}"),
    "nonfinite_ratio": ("share of NaN/inf samples", "they are zeroed before every other metric"),
    "rate_mismatch": ("the song's rate differed from the clip's, and the song was resampled", ""),
    "flags": (
        "verdicts, in the order of FLAG_ORDER",
        f"'silent' (audible_ratio < {SILENT_BELOW:g}) and 'stuck' (a loop was found) name a collapse; the content "
        "flags "
        f"'noise_like' (noise_likeness > {NOISE_LIKE_ABOVE:g} and band_flatness > {NOISE_FLAT_ABOVE:.2f}), 'static' "
        f"(change_ratio < {STATIC_BELOW:g} and not noise_like: a drone), 'copying' (novelty < {COPYING_BELOW:g}), "
        f"'far_from_song' (frechet_ratio > {FAR_ABOVE:g}) and 'no_pulse' (pulse_real >= {PULSE_SONG_ABOVE:g} and "
        f"pulse_ratio < {NO_PULSE_BELOW:g}) are only judged on a clip that is neither, since silence or a loop is far "
        "from the song by construction. A quiet fixed point is both 'silent' and 'stuck'. 'clipping' (clipping_ratio "
        f"> {CLIPPING_ABOVE:.0%}) and 'nonfinite' (any NaN/inf) are always judged"),
}
"""What every Evaluation field means: the one source of the Evaluation docstring, explain.format_report, the CLI
help."""


def metric_reference(width: int = 116) -> str:
    """Every metric as 'name: summary; details', wrapped to `width` with an indented continuation: no blank line."""
    import textwrap

    return "\n".join(
        textwrap.fill(f"{name}: {summary}" + (f"; {more}." if more else "."), width, subsequent_indent="    ")
        for name, (summary, more) in METRICS.items()
    )


@dataclass(frozen=True)
class Evaluation:
    """Metrics of one generated clip against the song it continues; plain Python values, JSON-ready (`to_dict`);
each field as described in METRICS:
"""

    seconds: float
    sample_rate: int
    reference_rate: int
    audible_ratio: float
    loudness_ratio: float
    band_flatness: float
    reference_band_flatness: float
    noise_likeness: float
    frechet: float
    frechet_real: float
    frechet_ratio: float
    novelty: float
    loop_period_s: float | None
    loop_start_s: float | None
    loop_score: float
    pulse: float
    pulse_real: float
    pulse_ratio: float
    tempo: float
    tempo_song: float
    tempo_match: bool
    rhythm_similarity: float
    rhythm_similarity_real: float
    continuity: float
    continuity_song: float
    continuity_ratio: float
    transition: float | None
    transition_jumps: float | None
    jump_rate: float | None
    transition_real: float | None
    jump_rate_real: float | None
    transition_shuffled: float | None
    jump_score_exact: float | None
    jumps_exact: float | None
    longest_copy_s: float | None
    change: float
    change_song: float
    change_ratio: float
    clipping_ratio: float
    nonfinite_ratio: float
    rate_mismatch: bool
    flags: tuple[str, ...]

    def to_dict(self) -> dict:
        """A JSON-serialisable dict (flags as a list)."""
        d = dataclasses.asdict(self)
        d["flags"] = list(self.flags)
        return d


Evaluation.__doc__ += "\n" + metric_reference()


# ----------------------------------------------------------------------------------------------------- verdict


def _check(y: np.ndarray, what: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise AudioError(f"{what} must be mono (1-D), got shape {y.shape}; mix it down first")
    if not np.issubdtype(y.dtype, np.number):
        raise AudioError(f"{what} must hold numbers, got dtype {y.dtype}")
    return y.astype(np.float64)


def _one_blas_thread():
    """Limit BLAS to one thread where threadpoolctl is installed: the products here are small (64 x 64, 800 x 64),
    and on a busy 2-core machine (training alongside) a second, spin-waiting BLAS thread made evaluation 3x slower."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def evaluate(generated: np.ndarray, sample_rate: int, reference: np.ndarray, reference_rate: int,
             path=None) -> Evaluation:
    """Measure mono `generated` at `sample_rate` against the song `reference` at `reference_rate` (resampled to
    `sample_rate` when they differ). See `Evaluation` for every metric and flag. `path`: the clip's
    framegen.songpath.SongPath, for the exact jump metrics (ignored with a FramegenWarning when it does not fit).

    Raises AudioError when either clip is not mono, shorter than MIN_SECONDS, or the song is silent or non-finite.
    """
    with _one_blas_thread():
        return _evaluate(generated, sample_rate, reference, reference_rate, path)


def _evaluate(generated: np.ndarray, sample_rate: int, reference: np.ndarray, reference_rate: int,
              path=None) -> Evaluation:
    import librosa

    gen = _check(generated, "generated audio")
    ref = _check(reference, "reference song")
    sample_rate, reference_rate = int(sample_rate), int(reference_rate)
    if sample_rate <= 0 or reference_rate <= 0:
        raise AudioError(f"sample rates must be positive, got {sample_rate} and {reference_rate}")
    if not np.all(np.isfinite(ref)):
        raise AudioError("the reference song holds NaN or infinite samples; check the file")
    rate_mismatch = reference_rate != sample_rate
    if rate_mismatch:
        ref = librosa.resample(ref, orig_sr=reference_rate, target_sr=sample_rate)
    for y, what in ((gen, "generated audio"), (ref, "reference song")):
        if len(y) < MIN_SECONDS * sample_rate:
            raise AudioError(f"{what} is {len(y) / sample_rate:.2f} s long; evaluation needs at least {MIN_SECONDS} s")
    ref_rms = wf.rms(ref)
    if ref_rms == 0.0:
        raise AudioError("the reference song is silent; evaluate against the song the model was trained on")

    finite = np.isfinite(gen)
    nonfinite_ratio = float(1.0 - finite.mean())
    gen = np.where(finite, gen, 0.0)

    flat, ref_flat = band_flatness(gen, sample_rate, ref)
    noise = noise_likeness(flat, ref_flat)

    distances = frechet_and_novelty(gen, ref, sample_rate)

    period, start, score = wf.find_loop(gen, sample_rate, min_rms=LOOP_MIN_LEVEL * ref_rms)
    time_structure = rhythm.rhythm_metrics(gen, ref, sample_rate)

    ev = dict(
        seconds=len(gen) / sample_rate,
        sample_rate=sample_rate,
        reference_rate=reference_rate,
        audible_ratio=wf.audible_ratio(gen, sample_rate, ref),
        loudness_ratio=wf.rms(gen) / ref_rms,
        band_flatness=flat,
        reference_band_flatness=ref_flat,
        noise_likeness=noise,
        **distances,
        loop_period_s=period,
        loop_start_s=start,
        loop_score=score,
        **time_structure,
        **transitions.transition_metrics(gen, ref, sample_rate, time_structure["tempo_song"],
                                         *songpath.fitting(path, sample_rate=sample_rate, song_samples=len(ref))),
        clipping_ratio=float(np.mean(np.abs(gen) >= CLIP_LEVEL)),
        nonfinite_ratio=nonfinite_ratio,
        rate_mismatch=rate_mismatch,
    )
    ev = {k: float(v) if isinstance(v, (float, np.floating)) else bool(v) if isinstance(v, np.bool_) else v
          for k, v in ev.items()}
    return Evaluation(**ev, flags=verdict(**ev))


def verdict(**metrics) -> tuple[str, ...]:
    """The flags for a dict of Evaluation's metric fields, in FLAG_ORDER (see Evaluation.flags)."""
    m = metrics
    flags = set()
    if m["audible_ratio"] < SILENT_BELOW:
        flags.add("silent")
    if m["loop_period_s"] is not None:
        flags.add("stuck")
    if not flags:
        if m["noise_likeness"] > NOISE_LIKE_ABOVE and m["band_flatness"] > NOISE_FLAT_ABOVE:
            flags.add("noise_like")
        elif m["change_ratio"] < STATIC_BELOW:
            flags.add("static")
        if m["novelty"] < COPYING_BELOW:
            flags.add("copying")
        if m["frechet_ratio"] > FAR_ABOVE:
            flags.add("far_from_song")
        if m["pulse_real"] >= PULSE_SONG_ABOVE and m["pulse_ratio"] < NO_PULSE_BELOW:
            flags.add("no_pulse")
    if m["clipping_ratio"] > CLIPPING_ABOVE:
        flags.add("clipping")
    if m["nonfinite_ratio"] > 0:
        flags.add("nonfinite")
    return tuple(f for f in FLAG_ORDER if f in flags)


# ------------------------------------------------------------------------------------------------------ edges


def load_mono(path: str | Path) -> tuple[np.ndarray, int]:
    """(mono float32, rate) of any file framegen can read, NaN/inf kept so they are counted, not refused.

    The same loader as training (framegen.audio), so it never hangs and errors are one-line AudioErrors."""
    from framegen.audio import read_audio

    return read_audio(path, allow_nonfinite=True)


def evaluate_files(generated_path: str | Path, reference_path: str | Path) -> Evaluation:
    """`evaluate` on two audio files, mixed down to mono; the song is resampled to the generated file's rate (and
    `rate_mismatch` set) when they differ; the clip's path sidecar, when it has one, scores its jumps exactly.
    Raises AudioError for a missing or unreadable file."""
    generated, rate = load_mono(generated_path)
    reference, reference_rate = load_mono(reference_path)
    return evaluate(generated, rate, reference, reference_rate, songpath.load(generated_path))


def score_clip(y: np.ndarray, song: np.ndarray, sample_rate: int, path=None):
    """``evaluate`` of a clip as written (clipped to [-1, 1] like the WAV) against the song (``path``: the
    clip's ``songpath.SongPath``, for exact jump scores); None for a clip shorter than evaluation needs."""
    if len(y) < MIN_SECONDS * sample_rate:
        return None
    return evaluate(np.clip(y, -1.0, 1.0), sample_rate, song, sample_rate, path)
