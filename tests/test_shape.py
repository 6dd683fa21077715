"""framegen.shape and the shaped unit selection: the song's opening first, its own ending last, a passage reached on
time, a seamless loop; exact lengths; the path's positions reproduce the audio."""

from dataclasses import replace

import jax
import numpy as np
import pytest

from framegen import clock, shape
from framegen.config import GenerateConfig, ModelConfig
from framegen.errors import UsageError
from framegen.model import build, init_params
from framegen.stream import Inputs, continue_audio, stream_audio
from framegen.units import Units, boundaries
from tests.conftest import RATE, tiny_config

F = 40
BEAT = 12 * F  # the synthetic song's steady beat: 480 samples
N_SONG = 1000 * F


def _clock(n_frames: int, streams: int = 1):
    per_frame = np.full(streams, F / BEAT)
    pos = (np.arange(n_frames)[:, None] * per_frame[None, :]).astype(np.float32)
    return pos, boundaries(pos, per_frame), per_frame


def _plan(s: shape.Shape, n_samples: int, sims=None):
    n = -(-n_samples // F)
    pos, bound, per_frame = _clock(n)
    beats = clock.steady(BEAT, N_SONG, RATE).beats
    return shape.plan(s, n_samples=n_samples, frame_size=F, clock_pos=pos, bound=bound, per_frame=per_frame,
                      song_len=N_SONG, sample_rate=RATE, beats=beats,
                      sims=np.zeros((len(s.toward), len(beats)), np.float32) if sims is None else sims)


def test_the_ending_is_entered_on_a_beat_inside_its_window_and_held_to_the_end():
    n_samples = 300 * F + 17
    p = _plan(shape.Shape(ending=True), n_samples)
    ks = np.flatnonzero(p.window[:, 0])
    rem = n_samples - ks * F
    lo = shape.ENDING_BARS * clock.BAR * BEAT
    assert len(ks) >= shape.ENTRY_BEATS - 1 and np.all(rem >= lo) and np.all(rem <= lo + shape.ENTRY_BEATS * BEAT)
    np.testing.assert_array_equal(p.rem[ks, 0], rem)
    assert np.all(p.goal[ks, 0] == N_SONG) and np.all(p.hold_to[ks, 0] == 300)  # held to the last frame (301 frames)
    assert np.all(p.window_end[ks, 0] == ks.max()) and set(p.entries[0]) == set(ks)
    marks = shape.marks(shape.Shape(ending=True), song_len=N_SONG, sample_rate=RATE, first=0)
    assert marks == {"ending": N_SONG / RATE}


def test_a_passage_to_reach_is_approached_with_a_growing_pull_and_arrives_on_a_beat():
    n_samples = 800 * F
    p = _plan(shape.Shape(toward=((2.0, 3.0),)), n_samples, sims=np.ones((1, N_SONG // BEAT + 2), np.float32))
    ks = np.flatnonzero(p.window[:, 0])
    arrive = ks[0] + p.rem[ks[0], 0] // F
    assert abs(arrive * F - 3.0 * RATE) <= BEAT / 2  # on the output's beat nearest --by
    assert p.goal[ks[0], 0] % BEAT == 0 and abs(p.goal[ks[0], 0] - 2.0 * RATE) <= BEAT / 2  # the song's beat
    pull = p.pull[: ks.min(), 0]
    assert np.all(np.diff(pull) > 0) and pull[-1] == pytest.approx(shape.PULL)
    assert np.all(p.pull[ks.min() :, 0] == 0)


def test_shapes_that_do_not_fit_are_one_line_errors():
    with pytest.raises(UsageError, match="--seconds of at least"):
        _plan(shape.Shape(ending=True), 20 * F)
    with pytest.raises(UsageError, match="outside the song"):
        _plan(shape.Shape(toward=((99.0, 1.0),)), 200 * F)
    with pytest.raises(UsageError, match="--by"):
        _plan(shape.Shape(toward=((1.0, 9.0),)), 200 * F)
    with pytest.raises(UsageError, match="pass one of them"):
        shape.Shape(ending=True, loop=True)
    with pytest.raises(UsageError, match="one --by per --toward"):
        GenerateConfig(toward=(1.0, 2.0), by=(3.0,))
    with pytest.raises(UsageError, match="--intro"):
        GenerateConfig(intro=True, prompt_offset=3.0)


def _inputs(s: shape.Shape, crossfade_ms: float = 0.0, vq_mode: bool = True, streams: int = 2) -> Inputs:
    """An untrained model's unit selection on a noise song with a steady beat, shaped by ``s``."""
    cfg = replace(tiny_config(), model=ModelConfig(hidden=199, layers=2, output="vq" if vq_mode else "mse",
                                                   codebook=16))
    model = build(cfg.model, F)
    song = np.random.default_rng(3).standard_normal(N_SONG).astype(np.float32)
    starts = 920 * F + 7 * np.arange(streams)
    prompts = np.stack([song[st : st + 5 * F].reshape(5, F) for st in starts])
    if s.intro:
        prompts, starts = np.zeros((streams, 1, F), np.float32), np.full(streams, -F)
    units = Units(song=song, n_train=900 * F, beats=clock.steady(BEAT, N_SONG, RATE).beats, hold=1.0, max_run=40,
                  stride=10, vq=vq_mode)
    return Inputs(model=model, params=init_params(model, jax.random.key(0)), cfg=cfg, prompts=prompts,
                  prompt_starts=starts, key=jax.random.key(4), crossfade_ms=crossfade_ms, units=units, song=song,
                  shape=s)


def _played(inp: Inputs, n_samples: int):
    positions = []
    y = np.concatenate(list(stream_audio(inp, n_samples, chunk_frames=37, sources_out=positions)), axis=1)
    return y, np.concatenate(positions, axis=1)


def _denorm(inp: Inputs, x):
    return x * inp.cfg.norm.std + inp.cfg.norm.mean


@pytest.mark.parametrize("crossfade_ms", [0.0, 2.0])
def test_the_ending_is_the_songs_own_and_the_length_exact(crossfade_ms):
    inp = _inputs(shape.Shape(ending=True), crossfade_ms)
    n_samples = 500 * F + 13  # not a whole number of frames
    y, pos = _played(inp, n_samples)
    assert y.shape == (2, n_samples)
    least = shape.ENDING_BARS * clock.BAR * BEAT
    for s in range(2):
        np.testing.assert_allclose(y[s, -least:], _denorm(inp, inp.units.song[-least:]), atol=1e-5)
        assert pos[s, -1] + F >= N_SONG > pos[s, -1]
    no_jump = np.all(pos[:, 1:] == pos[:, :-1] + F, axis=0)
    assert not no_jump.all()  # the output jumped before settling into the ending


def test_a_loop_ends_where_it_starts_so_the_wrap_is_the_songs_own_audio():
    inp = _inputs(shape.Shape(loop=True), 2.0)
    n_samples = 200 * F
    y, pos = _played(inp, n_samples)
    for s in range(2):
        p0 = pos[s, 0]
        assert pos[s, -1] + F == p0  # the last frame's successor in the song is the first frame
        wrapped = np.concatenate([y[s, -300:], y[s, :300]])
        np.testing.assert_allclose(wrapped, _denorm(inp, inp.units.song[p0 - 300 : p0 + 300]), atol=1e-5)


def test_an_intro_starts_with_the_songs_opening():
    inp = _inputs(shape.Shape(intro=True), 2.0)
    y, pos = _played(inp, 150 * F)
    held = int(np.ceil(shape.INTRO_BARS * clock.BAR * BEAT / F))
    np.testing.assert_array_equal(pos[:, :held], np.broadcast_to(np.arange(held) * F, (2, held)))
    np.testing.assert_allclose(y[:, : held * F - F], _denorm(inp, inp.units.song[None, : held * F - F]).repeat(2, 0),
                               atol=1e-5)


def test_a_passage_is_reached_on_time_and_the_positions_reproduce_the_audio():
    """Without a crossfade the WAV is the song's frames at the path's positions (the sidecar reproduces it)."""
    inp = _inputs(shape.Shape(toward=((3.0, 0.5),)), 0.0, vq_mode=False)
    y, pos = _played(inp, 150 * F)
    k = int(round(0.5 * RATE / F))
    target = round(3.0 * RATE / BEAT) * BEAT
    for s in range(2):
        hit = np.flatnonzero(pos[s] == target)
        assert len(hit) == 1 and abs(hit[0] - k) * F <= BEAT  # within a beat of --by
        np.testing.assert_array_equal(y[s], _denorm(inp, inp.units.song[pos[s][:, None] + np.arange(F)]).reshape(-1))


def test_shaped_streaming_equals_the_whole_clip_bit_for_bit():
    inp = _inputs(shape.Shape(intro=True, toward=((1.5, 0.8),), ending=True), 2.0)
    whole = continue_audio(inp, 600 * F + 3)
    for chunk in (1, 23):
        pieces = list(stream_audio(inp, 600 * F + 3, chunk_frames=chunk))
        np.testing.assert_array_equal(np.concatenate(pieces, axis=1), whole)


@pytest.fixture(scope="module")
def shaped_run(tmp_path_factory):
    """(run_dir, song) of a one-epoch VQ run on 20 s of the demo song at 8 kHz, trained through the CLI."""
    from click.testing import CliRunner

    from framegen import synth
    from framegen.cli import cli
    from tests.conftest import VQ_TINY, write

    d = tmp_path_factory.mktemp("shaped")
    song = write(d / "song.wav", synth.demo_song(20.0, RATE))
    r = CliRunner().invoke(cli, ["train", str(song), *VQ_TINY, "--epochs", "1", "--output", "vq", "--codebook", "16",
                                 "--crossfade", "2", "--run-dir", str(d / "run")], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return d / "run", song


def _generate(run, out, *args):
    from click.testing import CliRunner

    from framegen.cli import cli

    return CliRunner().invoke(cli, ["generate", "--run", str(run), "--out", str(out), "--no-score", *args])


def test_the_cli_shapes_a_continuation_end_to_end(shaped_run, tmp_path):
    """--intro --toward --by --ending from the CLI: the exact length, the song's opening and its own last samples,
    the passage reached, the marks in the path sidecar; --loop's file wraps into the song's own audio."""
    import soundfile as sf

    from framegen import songpath

    run, song_file = shaped_run
    song, _ = sf.read(song_file, dtype="float32")
    r = _generate(run, tmp_path / "a.wav", "--seconds", "19.5", "--intro", "--toward", "0:06", "--by", "7",
                  "--ending")
    assert r.exit_code == 0, r.output
    y, rate = sf.read(tmp_path / "a.wav", dtype="float32")
    path = songpath.load(tmp_path / "a.wav")
    assert len(y) == int(19.5 * RATE) and set(path.marks) == {"intro", "toward", "ending"}
    assert path.positions[0] == 0 and path.positions[-1] + 40 >= len(song)
    np.testing.assert_allclose(y[-2 * RATE :], song[-2 * RATE :], atol=2 / 32768)  # 16-bit rounding
    assert np.any(np.abs(path.positions - path.marks["toward"] * RATE) < 20)
    assert path.likeness["toward"].shape == path.positions.shape  # the likeness curve the report draws
    r = _generate(run, tmp_path / "loop.wav", "--seconds", "7", "--loop")
    assert r.exit_code == 0, r.output
    y, _ = sf.read(tmp_path / "loop.wav", dtype="float32")
    p0 = songpath.load(tmp_path / "loop.wav").positions[0]
    np.testing.assert_allclose(np.concatenate([y[-200:], y[:200]]), song[p0 - 200 : p0 + 200], atol=2 / 32768)


@pytest.mark.parametrize("args, message", [
    (["--ending", "--loop"], "pass one of them"),
    (["--toward", "99"], "outside the song"),
    (["--toward", "5", "--toward", "6", "--by", "2"], "one --by per --toward"),
    (["--intro", "--prompt-offset", "2"], "--intro starts at the song's opening"),
    (["--ending", "--select", "off"], "they need unit selection"),
])
def test_the_cli_refuses_shapes_it_cannot_make_in_one_line(shaped_run, tmp_path, args, message):
    r = _generate(shaped_run[0], tmp_path / "x.wav", "--seconds", "9", *args)
    assert r.exit_code != 0 and message in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1 and not (tmp_path / "x.wav").exists()
