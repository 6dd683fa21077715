"""framegen.plots: every figure draws what it claims (its curves, cells and spectrograms with the right extents) into
a real PNG, written atomically."""

import numpy as np
import pytest

from framegen import plots
from framegen.spectral import FEATURE_HOP_S, N_MELS

PNG = b"\x89PNG\r\n\x1a\n"
RATE = 8000


@pytest.fixture
def drawn(monkeypatch):
    """The figures the plots save, kept for the test to read (each is still written)."""
    from matplotlib.figure import Figure

    figures = []
    savefig = Figure.savefig

    def keep(fig, *args, **kwargs):
        figures.append(fig)
        return savefig(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    return figures


def _spectrograms(fig) -> dict:
    """title -> (left, right, bottom, top) extent of each axes of ``fig`` that shows an image."""
    return {ax.get_title(): tuple(ax.images[0].get_extent()) for ax in fig.axes if ax.images}


def test_loss_plot_draws_each_curve_with_its_gaps_and_leaves_no_temp_file(tmp_path, drawn):
    rows = [{"epoch": 1, "train_mse": 0.9, "val_mse": 0.8, "zero_mse": 1.0, "copy_mse": 1.2},
            {"epoch": 2, "train_mse": None, "val_mse": 0.5, "zero_mse": 1.0, "copy_mse": 1.2}]
    plots.plot_loss(tmp_path / "loss.png", rows)
    assert (tmp_path / "loss.png").read_bytes()[:8] == PNG
    assert [p.name for p in tmp_path.iterdir()] == ["loss.png"]
    lines = {ln.get_label(): ln.get_ydata() for ln in drawn[0].axes[0].get_lines()}
    assert list(lines) == ["train", "validation", "zero predictor", "copy previous frame"]
    assert lines["train"][0] == 0.9 and np.isnan(lines["train"][1]) and list(lines["validation"]) == [0.8, 0.5]


def test_sweep_heatmap_colours_done_cells_and_greys_out_the_others(tmp_path, drawn):
    doc = {"sweep": "t", "frame_sizes": [40, 80], "seq_lens": [50], "budget": {"kind": "samples", "amount": 1e6},
           "trials": [{"frame_size": 40, "seq_len": 50, "status": "done", "score": 0.5, "val_snr_db": 3.0},
                      {"frame_size": 80, "seq_len": 50, "status": "skipped", "score": None}]}
    plots.plot_sweep_heatmap(tmp_path / "h.png", doc)
    assert (tmp_path / "h.png").read_bytes()[:8] == PNG
    cells = drawn[0].axes[0].images[0].get_array()
    assert cells.shape == (2, 1) and cells[0, 0] == 0.5 and cells.mask[1, 0]
    assert {"0.500\n+3.0 dB", "skipped"} <= {t.get_text() for t in drawn[0].axes[0].texts}


def test_evaluation_plot_shows_both_spectrograms_over_their_own_lengths(tmp_path, drawn):
    from framegen.evaluate import evaluate

    t = np.arange(3 * RATE) / RATE
    song = (0.5 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    noise = (0.3 * np.random.default_rng(0).standard_normal(2 * RATE)).astype(np.float32)
    ev = evaluate(noise, RATE, song, RATE)
    plots.plot_evaluation(tmp_path / "e.png", noise, song, RATE, ev)
    assert (tmp_path / "e.png").read_bytes()[:8] == PNG
    shown = _spectrograms(drawn[0])
    assert set(shown) == {"generated", "song"}
    for title, seconds in (("generated", 2.0), ("song", 3.0)):
        left, right, bottom, top = shown[title]
        assert (left, bottom, top) == (0, 0, N_MELS) and abs(right - seconds) < 10 * FEATURE_HOP_S


def test_training_plot_draws_vq_cross_entropy_beside_mse_for_one_epoch(tmp_path, drawn):
    rows = [{"epoch": 1, "train_ce": 3.4, "val_ce": 2.4, "val_mse": 0.9, "zero_mse": 0.7, "copy_mse": 1.5}]
    plots.plot_training(tmp_path / "t.png", rows)
    assert (tmp_path / "t.png").read_bytes()[:8] == PNG
    assert [p.name for p in tmp_path.iterdir()] == ["t.png"]
    curves = [[ln.get_ydata()[0] for ln in ax.get_lines()] for ax in drawn[0].axes if ax.get_lines()]
    assert len(curves) == 2 and {3.4, 2.4} <= set(curves[1]) and 0.9 in curves[0]


def test_clip_plot_draws_a_clip_beside_the_song_and_a_clip_alone_even_if_shorter_than_a_window(tmp_path, drawn):
    t = np.arange(2 * RATE) / RATE
    clip = (0.5 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    song = (0.3 * np.random.default_rng(0).standard_normal(RATE)).astype(np.float32)
    plots.plot_clip(tmp_path / "c.png", clip, RATE, song=song, top=1.0, title="clip", song_title="song")
    plots.plot_clip(tmp_path / "short.png", clip[:100], RATE)
    for name in ("c.png", "short.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG
    beside, alone = (_spectrograms(fig) for fig in drawn)
    assert beside == {"clip": (0, 2.0, 0, N_MELS), "song": (0, 1.0, 0, N_MELS)}  # one time scale: panels by length
    assert alone == {"clip": (0, 100 / RATE, 0, N_MELS)}


def test_path_plot_draws_one_segment_per_stretch_a_line_per_mark_and_the_held_out_band(tmp_path, drawn):
    from framegen.songpath import SongPath

    f = 40
    positions = np.concatenate([8000 + np.arange(50) * f, 40000 + np.arange(30) * f, [-1, -1], np.arange(40) * f])
    path = SongPath(positions=positions, frame_size=f, sample_rate=RATE, prompt_start=6000,
                    marks={"toward": 7.5, "ending": 9.0})
    plots.plot_path(tmp_path / "path.png", path, title="x.wav", held_out_s=8.0, song_s=12.0)
    assert (tmp_path / "path.png").read_bytes()[:8] == PNG and not list(tmp_path.glob("*.tmp*"))
    (ax,) = drawn[0].axes
    (lines,) = ax.collections
    segments = lines.get_segments()  # the -1 frames are not the song's: three stretches, not four
    np.testing.assert_allclose(segments[0], [[0, 1.0], [50 * f / RATE, (8000 + 50 * f) / RATE]])
    np.testing.assert_allclose(segments[1], [[50 * f / RATE, 5.0], [80 * f / RATE, (40000 + 30 * f) / RATE]])
    np.testing.assert_allclose(segments[2], [[82 * f / RATE, 0.0], [122 * f / RATE, 40 * f / RATE]])
    assert len(segments) == 3 and "4 jumps" in ax.get_title()  # into and out of the -1 frames, and between them
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("output time (s)", "song time (s)")
    assert sorted(t.get_text() for t in ax.texts) == ["ending 9.0 s", "toward 7.5 s"]
    marks = [line.get_ydata()[0] for line in ax.lines if line.get_linestyle() == "--"]
    assert sorted(marks) == [7.5, 9.0]
    (band,) = ax.patches
    assert band.get_bbox().y0 == pytest.approx(8.0) and band.get_bbox().y1 == pytest.approx(12.0)
    prompt = [line for line in ax.lines if line.get_marker() == ">"]
    assert len(prompt) == 1 and prompt[0].get_ydata()[0] == pytest.approx(0.75)


def test_path_plot_of_an_excerpt_is_one_segment_and_of_nothing_is_empty(tmp_path, drawn):
    from framegen.songpath import SongPath

    plots.plot_path(tmp_path / "a.png", SongPath(positions=100 + np.arange(20) * 40, frame_size=40, sample_rate=RATE))
    plots.plot_path(tmp_path / "b.png", SongPath(positions=np.zeros(0, np.int64), frame_size=40, sample_rate=RATE))
    excerpt, empty = (fig.axes[0] for fig in drawn)
    assert len(excerpt.collections[0].get_segments()) == 1 and "0 jumps" in excerpt.get_title()
    assert not excerpt.patches and not excerpt.texts  # no held-out border or marks given
    assert len(empty.collections[0].get_segments()) == 0


def test_path_plot_draws_the_likeness_to_a_passage_on_a_second_axis(tmp_path, drawn):
    from framegen.songpath import SongPath

    like = np.linspace(-0.2, 0.9, 60).astype(np.float32)
    path = SongPath(positions=np.arange(60) * 40, frame_size=40, sample_rate=RATE, marks={"toward": 1.0},
                    likeness={"toward": like})
    plots.plot_path(tmp_path / "p.png", path)
    ax, twin = drawn[0].axes
    (curve,) = twin.lines
    np.testing.assert_allclose(curve.get_ydata(), like, rtol=1e-6)
    np.testing.assert_allclose(curve.get_xdata(), np.arange(60) * 40 / RATE)
    assert "likeness" in twin.get_ylabel() and curve.get_label() == "likeness to toward"
