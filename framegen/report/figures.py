"""Which figures a listening report needs and drawing the missing ones (framegen.plots draws): a clip beside the
song, a clip's path through the song, the training curves, a sweep's heatmap. A figure is kept while it is newer
than everything it shows; each function returns (the figure or None, why it could not be drawn or "").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def fresh(figure: Path, *sources: Path) -> bool:
    """The figure exists and is at least as new as every source (a missing source counts as newer)."""
    try:
        made = figure.stat().st_mtime_ns
        return all(made >= s.stat().st_mtime_ns for s in sources)
    except OSError:
        return False


def _why(e: Exception) -> str:
    return (getattr(e, "strerror", None) or str(e).splitlines()[0]) if str(e) else type(e).__name__


def clip_figure(assets: Path, kind: str, wav: Path, y: np.ndarray, rate: int, *, config: Path, title: str,
                song: np.ndarray | None = None, song_start: int | None = None,
                top: float | None = None) -> tuple[Path | None, str]:
    """ASSETS/KIND-NAME.png: the clip ``y`` (as read from ``wav``; ``kind`` "prompt", "sample" or "generated") beside
    ``song``, the stretch of the song it is compared with (from sample ``song_start``), drawn when missing or older
    than the WAV or the run's ``config``."""
    figure = assets / f"{kind}-{wav.stem}.png"
    if fresh(figure, wav, config):
        return figure, ""
    label = "song: the prompt's real continuation" if kind == "prompt" else "song: what really follows the prompt"
    if song is not None and song_start is not None:
        label += f" ({song_start / rate:.1f}-{(song_start + len(song)) / rate:.1f} s)"
    try:
        from framegen.plots import plot_clip

        plot_clip(figure, y, rate, song=song, top=top, title=title, song_title=label)
        return figure, ""
    except (OSError, ValueError, RuntimeError) as e:  # one odd clip must not cost the page
        return None, f"cannot draw {figure.name} ({_why(e)})"


def path_figure(assets: Path, wav: Path, *, config: Path, title: str, held_out_s: float | None,
                song_s: float | None) -> tuple[Path | None, str]:
    """ASSETS/path-NAME.png: the path through the song of a clip whose WAV has a sidecar (framegen.songpath), drawn
    when missing or older than the sidecar or the run's ``config``; none, and nothing to say, without a sidecar."""
    from framegen import songpath

    sidecar = songpath.sidecar(wav)
    if not sidecar.is_file():
        return None, ""
    figure = assets / f"path-{wav.stem}.png"
    if fresh(figure, sidecar, config):
        return figure, ""
    path = songpath.load(wav)
    if path is None:
        return None, f"cannot read {sidecar.name}"
    try:
        from framegen.plots import plot_path

        plot_path(figure, path, title=title, held_out_s=held_out_s, song_s=song_s)
        return figure, ""
    except (OSError, ValueError, RuntimeError) as e:  # one odd path must not cost the page
        return None, f"cannot draw {figure.name} ({_why(e)})"


def training_figure(assets: Path, rows: list[dict], *, metrics: Path) -> tuple[Path | None, str]:
    """ASSETS/training.png: the loss curves of metrics.jsonl's ``rows``, drawn when missing or older than the
    ``metrics`` file."""
    figure = assets / "training.png"
    if fresh(figure, metrics):
        return figure, ""
    try:
        from framegen.plots import plot_training

        plot_training(figure, rows)
        return figure, ""
    except OSError as e:
        return None, f"cannot draw {figure} ({e.strerror or e})"


def sweep_heatmap(sweep_dir: Path, assets: Path, doc: dict) -> str:
    """The sweep's heatmap: the one the sweep wrote (SWEEP/heatmap.png), else drawn from results.json's ``doc``
    into ``assets``; why there is none, or ""."""
    if (sweep_dir / "heatmap.png").is_file():
        return ""
    from framegen.plots import plot_sweep_heatmap

    try:
        assets.mkdir(exist_ok=True)
        plot_sweep_heatmap(assets / "heatmap.png", doc)
    except OSError as e:
        return f"no heatmap.png and cannot draw one ({e.strerror or e})"
    return ""
