"""framegen.plots: every figure is a real PNG, written atomically, from the rows and documents framegen keeps."""

import numpy as np

from framegen import plots

PNG = b"\x89PNG\r\n\x1a\n"


def test_loss_plot_is_a_png_even_with_missing_values_and_leaves_no_temp_file(tmp_path):
    rows = [{"epoch": 1, "train_mse": 0.9, "val_mse": 0.8, "zero_mse": 1.0, "copy_mse": 1.2},
            {"epoch": 2, "train_mse": None, "val_mse": 0.5, "zero_mse": 1.0, "copy_mse": 1.2}]
    plots.plot_loss(tmp_path / "loss.png", rows)
    assert (tmp_path / "loss.png").read_bytes()[:8] == PNG
    assert [p.name for p in tmp_path.iterdir()] == ["loss.png"]


def test_sweep_heatmap_draws_done_and_unfinished_cells(tmp_path):
    doc = {"sweep": "t", "frame_sizes": [40, 80], "seq_lens": [50], "budget": {"kind": "samples", "amount": 1e6},
           "trials": [{"frame_size": 40, "seq_len": 50, "status": "done", "score": 0.5, "val_snr_db": 3.0},
                      {"frame_size": 80, "seq_len": 50, "status": "skipped", "score": None}]}
    plots.plot_sweep_heatmap(tmp_path / "h.png", doc)
    assert (tmp_path / "h.png").read_bytes()[:8] == PNG and (tmp_path / "h.png").stat().st_size > 5000


def test_evaluation_plot_shows_both_spectrograms(tmp_path):
    from framegen.evaluate import evaluate

    rate = 8000
    t = np.arange(3 * rate) / rate
    song = (0.5 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    noise = (0.3 * np.random.default_rng(0).standard_normal(2 * rate)).astype(np.float32)
    ev = evaluate(noise, rate, song, rate)
    plots.plot_evaluation(tmp_path / "e.png", noise, song, rate, ev)
    assert (tmp_path / "e.png").read_bytes()[:8] == PNG


def test_training_plot_draws_vq_cross_entropy_beside_mse_for_one_epoch(tmp_path):
    rows = [{"epoch": 1, "train_ce": 3.4, "val_ce": 2.4, "val_mse": 0.9, "zero_mse": 0.7, "copy_mse": 1.5}]
    plots.plot_training(tmp_path / "t.png", rows)
    assert (tmp_path / "t.png").read_bytes()[:8] == PNG
    assert [p.name for p in tmp_path.iterdir()] == ["t.png"]


def test_clip_plot_draws_a_clip_beside_the_song_and_a_clip_alone_even_if_shorter_than_a_window(tmp_path):
    rate = 8000
    t = np.arange(2 * rate) / rate
    clip = (0.5 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    song = (0.3 * np.random.default_rng(0).standard_normal(rate)).astype(np.float32)
    plots.plot_clip(tmp_path / "c.png", clip, rate, song=song, top=1.0, title="clip", song_title="song")
    plots.plot_clip(tmp_path / "short.png", clip[:100], rate)
    for name in ("c.png", "short.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG
    assert (tmp_path / "c.png").stat().st_size > (tmp_path / "short.png").stat().st_size
