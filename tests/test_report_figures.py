"""framegen.report.figures: which figure a page needs, kept while newer than what it shows, drawn when missing or
stale, and one sentence instead of a figure when drawing fails. The drawing itself is faked here (framegen.plots
has its own tests; test_report draws real ones)."""

import os

import numpy as np
import pytest

from framegen import plots, songpath
from framegen.report.figures import clip_figure, fresh, path_figure, sweep_heatmap, training_figure


def touch(path, ns):
    """``path`` written (if missing) with its modification time at ``ns`` nanoseconds."""
    if not path.exists():
        path.write_bytes(b"x")
    os.utime(path, ns=(ns, ns))
    return path


@pytest.fixture
def drawn(monkeypatch):
    """Every fake drawing as (function, figure, keyword arguments); the figure is written as plots would."""
    calls = []

    def fake(name):
        def draw(out, *args, **kwargs):
            calls.append((name, out, kwargs))
            out.write_bytes(b"png")
        return draw

    for name in ("plot_clip", "plot_path", "plot_training", "plot_sweep_heatmap"):
        monkeypatch.setattr(plots, name, fake(name))
    return calls


def test_fresh_means_newer_than_every_source(tmp_path):
    a, b = touch(tmp_path / "a.wav", 10**18), touch(tmp_path / "b.json", 2 * 10**18)
    figure = tmp_path / "f.png"
    assert not fresh(figure, a)  # not drawn yet
    touch(figure, 15 * 10**17)
    assert fresh(figure, a) and not fresh(figure, a, b)
    assert not fresh(figure, tmp_path / "gone.wav")  # a source that cannot be read: draw again
    assert fresh(figure)


def test_a_clip_figure_is_drawn_once_then_again_when_its_audio_changes(tmp_path, drawn):
    wav, config = touch(tmp_path / "best.wav", 10**18), touch(tmp_path / "config.json", 10**18)
    y, song = np.zeros(800, np.float32), np.zeros(800, np.float32)
    args = dict(config=config, title="best.wav", song=song, song_start=16000, top=1.0)
    figure, why = clip_figure(tmp_path, "generated", wav, y, 8000, **args)
    assert (figure, why) == (tmp_path / "generated-best.png", "") and figure.is_file()
    assert drawn[0][2]["song_title"] == "song: what really follows the prompt (2.0-2.1 s)"
    assert clip_figure(tmp_path, "generated", wav, y, 8000, **args) == (figure, "") and len(drawn) == 1
    touch(wav, figure.stat().st_mtime_ns + 1)
    clip_figure(tmp_path, "generated", wav, y, 8000, **args)
    assert len(drawn) == 2


def test_a_clip_figure_that_cannot_be_drawn_says_why(tmp_path, monkeypatch):
    def fail(*a, **k):
        raise ValueError("odd clip\nmore")

    monkeypatch.setattr(plots, "plot_clip", fail)
    wav = touch(tmp_path / "p.wav", 10**18)
    got = clip_figure(tmp_path, "prompt", wav, np.zeros(8), 8000, config=wav, title="prompt")
    assert got == (None, "cannot draw prompt-p.png (odd clip)")


def test_a_path_figure_only_for_a_clip_with_a_readable_sidecar(tmp_path, drawn):
    wav, config = touch(tmp_path / "a.wav", 10**18), touch(tmp_path / "config.json", 10**18)
    args = dict(config=config, title="a.wav", held_out_s=9.6, song_s=12.0)
    assert path_figure(tmp_path, wav, **args) == (None, "") and not drawn  # no sidecar: no figure, nothing to say
    np.savez(songpath.sidecar(wav), version=np.int64(-1))
    assert path_figure(tmp_path, wav, **args) == (None, f"cannot read {songpath.sidecar(wav).name}")
    songpath.save(wav, songpath.SongPath(positions=np.arange(4) * 40, frame_size=40, sample_rate=8000,
                                         prompt_start=0))
    figure, why = path_figure(tmp_path, wav, **args)
    assert (figure, why) == (tmp_path / "path-a.png", "")
    assert [(name, kw["held_out_s"], kw["song_s"]) for name, _, kw in drawn] == [("plot_path", 9.6, 12.0)]
    assert path_figure(tmp_path, wav, **args) == (figure, "") and len(drawn) == 1  # newer than the sidecar: kept


def test_training_figure_follows_metrics_and_says_when_it_cannot_draw(tmp_path, drawn, monkeypatch):
    metrics = touch(tmp_path / "metrics.jsonl", 10**18)
    rows = [{"epoch": 1, "val_mse": 0.5}]
    assert training_figure(tmp_path, rows, metrics=metrics) == (tmp_path / "training.png", "")
    training_figure(tmp_path, rows, metrics=metrics)
    assert [name for name, _, _ in drawn] == ["plot_training"]

    def fail(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(plots, "plot_training", fail)
    touch(metrics, (tmp_path / "training.png").stat().st_mtime_ns + 1)
    assert training_figure(tmp_path, rows, metrics=metrics) == (
        None, f"cannot draw {tmp_path / 'training.png'} (Permission denied)")


def test_a_sweep_s_own_heatmap_is_used_else_one_is_drawn(tmp_path, drawn):
    sweep, assets = tmp_path / "sweep", tmp_path / "sweep" / "report"
    sweep.mkdir()
    assert sweep_heatmap(sweep, assets, {"trials": []}) == ""
    assert [(name, out) for name, out, _ in drawn] == [("plot_sweep_heatmap", assets / "heatmap.png")]
    touch(sweep / "heatmap.png", 10**18)
    assert sweep_heatmap(sweep, assets, {"trials": []}) == "" and len(drawn) == 1
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    (blocked / "report").write_text("a file where the folder goes")
    assert sweep_heatmap(blocked, blocked / "report", {}).startswith("no heatmap.png and cannot draw one (")
