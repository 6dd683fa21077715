"""Every matplotlib figure framegen draws, in one place; matplotlib is imported lazily inside each function."""

from framegen.atomic import atomic_path


def _save(plt, fig, path) -> None:
    """Write the PNG to a temp file, then rename: a crash never leaves half a figure."""
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=100, format="png")
    finally:
        plt.close(fig)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_loss(path, rows: list[dict]) -> None:
    """Training and validation MSE per epoch (log scale) with the zero and copy-previous-frame predictors."""
    plt = _pyplot()
    epochs = [r["epoch"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4))
    for key, label, style in [("train_mse", "train", "-o"), ("val_mse", "validation", "-o"),
                              ("zero_mse", "zero predictor", "--"), ("copy_mse", "copy previous frame", ":")]:
        ys = [r.get(key) for r in rows]
        if any(y is not None for y in ys):
            ax.plot(epochs, [float("nan") if y is None else y for y in ys], style, label=label, markersize=3)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("MSE (song variance = 1)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    _save(plt, fig, path)


def plot_evaluation(path, generated, reference, sample_rate: int, evaluation) -> None:
    """Log-mel spectrograms of the generated clip and of the song side by side (the same dB scale, 0 dB = the
    song's loudest cell), under them the onset-strength envelopes of the clip and of a song excerpt of the same
    length (from the song's middle: a beat shows as regular peaks), titled with the evaluation's flags and headline
    metrics; written to `path` as a PNG.

    `generated` and `reference` are mono arrays at `sample_rate` (resample the song first if it differs)."""
    import numpy as np

    from framegen.explain import transition_text
    from framegen.rhythm import onset_envelope, onset_hop
    from framegen.spectral import FEATURE_HOP_S, mel_power

    plt = _pyplot()
    reference = np.asarray(reference, dtype=np.float32)
    generated = np.nan_to_num(np.asarray(generated, dtype=np.float32))
    song = mel_power(reference, sample_rate)  # (frames, mels)
    clip = mel_power(generated, sample_rate)
    top = float(song.max()) or 1.0

    def to_db(power):  # (mels, frames), 0 dB = the song's loudest cell
        return 10 * np.log10(np.maximum(power, 1e-8 * top) / top).T

    widths = [max(len(clip), 1), max(len(song), 1)]
    fig, axes = plt.subplot_mosaic([["clip", "song"], ["onset", "onset"], ["song_onset", "song_onset"]],
                                   figsize=(12, 7), width_ratios=widths, height_ratios=[3, 1, 1], layout="constrained")
    for key, power, label in (("clip", clip, "generated"), ("song", song, "song")):
        seconds = len(power) * FEATURE_HOP_S
        image = axes[key].imshow(to_db(power), origin="lower", aspect="auto", cmap="magma", vmin=-80, vmax=0,
                                 extent=(0, seconds, 0, power.shape[1]))
        axes[key].set_title(label)
        axes[key].set_xlabel("time (s)")
    axes["song"].sharey(axes["clip"])
    axes["clip"].set_ylabel("mel band")
    fig.colorbar(image, ax=[axes["clip"], axes["song"]], label="dB (0 = song's loudest)")
    start = max(0, (len(reference) - len(generated)) // 2)
    excerpt = reference[start : start + len(generated)]
    hop_s = onset_hop(sample_rate) / sample_rate
    for key, y, label in (("onset", generated, f"generated: pulse {evaluation.pulse:.2f}"),
                          ("song_onset", excerpt, f"song {start / sample_rate:.0f}-"
                           f"{(start + len(excerpt)) / sample_rate:.0f} s: pulse {evaluation.pulse_real:.2f} "
                           "(median of its excerpts)")):
        env = onset_envelope(y, sample_rate)
        axes[key].plot(np.arange(len(env)) * hop_s, env, lw=0.6)
        axes[key].set_ylabel("onset strength")
        axes[key].set_title(label, fontsize=9, loc="left")
    axes["song_onset"].sharex(axes["onset"])
    axes["song_onset"].set_xlabel("time (s)")
    flags = ", ".join(evaluation.flags) if evaluation.flags else "no flags"
    fig.suptitle(f"{flags}\nloudness {evaluation.loudness_ratio:.2f}, noise-likeness "
                 f"{evaluation.noise_likeness:.2f}, Frechet ratio {evaluation.frechet_ratio:.2g}, "
                 f"novelty {evaluation.novelty:.2f}, pulse ratio {evaluation.pulse_ratio:.2f}, rhythm similarity "
                 f"{evaluation.rhythm_similarity:.2f} (real {evaluation.rhythm_similarity_real:.2f}), continuity "
                 f"ratio {evaluation.continuity_ratio:.2f}\ntransitions: {transition_text(evaluation)}", fontsize=10)
    _save(plt, fig, path)


def plot_sweep_heatmap(path, doc: dict) -> None:
    """A sweep's F x T grid coloured by score (val MSE / zero-predictor MSE, lower is better); cells that did not
    finish are grey with their status written in. ``doc`` is a sweep's results.json."""
    import math

    import numpy as np

    from framegen.sweep.spec import grid_cells, grid_rows

    plt = _pyplot()
    rows, ts = grid_rows(doc), doc["seq_lens"]  # a row per F (per F and tier set on a sweep with a tiers axis)
    cells = grid_cells(doc)
    score = np.full((len(rows), len(ts)), np.nan)
    for i, (f, tiers, _) in enumerate(rows):
        for j, t in enumerate(ts):
            r = cells.get((f, t, tiers))
            if r and r.get("status") == "done" and r.get("score") is not None and math.isfinite(r["score"]):
                score[i, j] = r["score"]
    fig, ax = plt.subplots(figsize=(max(5.5, 2.0 + 1.3 * len(ts)), max(3.2, 1.6 + 0.6 * len(rows))))
    cmap = plt.get_cmap("viridis_r").with_extremes(bad="#dddddd")
    finite = score[np.isfinite(score)]
    vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if vmax <= vmin:
        vmin, vmax = vmin - 0.05, vmax + 0.05
    im = ax.imshow(np.ma.masked_invalid(score), cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    for i, (f, tiers, _) in enumerate(rows):
        for j, t in enumerate(ts):
            r = cells.get((f, t, tiers)) or {"status": "-"}
            if np.isfinite(score[i, j]):
                text = f"{score[i, j]:.3f}"
                if r.get("val_snr_db") is not None:
                    text += f"\n{r['val_snr_db']:+.1f} dB"
                dark = (score[i, j] - vmin) / (vmax - vmin) > 0.5
                ax.text(j, i, text, ha="center", va="center", fontsize=8, color="white" if dark else "black")
            else:
                ax.text(j, i, r["status"], ha="center", va="center", fontsize=8, color="#555555", style="italic")
    ax.set_xticks(range(len(ts)), [str(t) for t in ts])
    ax.set_yticks(range(len(rows)), [label for _, _, label in rows])
    ax.set_xlabel("T: frames per sequence")
    ax.set_ylabel("F: samples per frame")
    b = doc.get("budget", {})
    budget = f"{int(b['amount']):,} samples" if b.get("kind") == "samples" else f"{b.get('amount', 0):g} s"
    ax.set_title(f"sweep {doc.get('sweep', '')}: validation MSE / zero-predictor MSE\n(budget {budget} per trial)",
                 fontsize=9)
    fig.colorbar(im, ax=ax, label="score (lower is better)")
    fig.tight_layout()
    _save(plt, fig, path)


def plot_training(path, rows: list[dict]) -> None:
    """The report's training figure: MSE per epoch (log scale: train, validation and the zero and copy-previous-
    frame predictors on the same held-out frames) and, for VQ runs, cross-entropy (train, validation) beside it.
    ``rows``: metrics.jsonl rows."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    epochs = [r.get("epoch") for r in rows]
    vq = any(r.get("val_ce") is not None or r.get("train_ce") is not None for r in rows)
    fig, axes = plt.subplots(1, 2 if vq else 1, figsize=(11 if vq else 7, 3.6), squeeze=False, layout="constrained")

    def curves(ax, series):
        for key, label, style in series:
            ys = [r.get(key) for r in rows]
            if style in ("--", ":"):  # a baseline: the same held-out frames every epoch, so one level
                last = next((y for y in reversed(ys) if y is not None), None)
                if last is not None:
                    ax.axhline(last, linestyle=style, color="grey" if style == ":" else "black", label=label)
            elif any(y is not None for y in ys):
                ax.plot(epochs, [float("nan") if y is None else y for y in ys], style, label=label, markersize=4)
        if len(set(epochs)) == 1:
            ax.set_xlim(epochs[0] - 1, epochs[0] + 1)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)

    curves(axes[0, 0], [("train_mse", "train", "-o"), ("val_mse", "validation", "-o"),
                        ("zero_mse", "zero predictor", "--"), ("copy_mse", "copy previous frame", ":")])
    axes[0, 0].set_yscale("log")
    axes[0, 0].set_ylabel("MSE (song variance = 1)")
    axes[0, 0].set_title("frame MSE on the held-out tail" + (" (argmax code's frame)" if vq else ""), fontsize=9)
    if vq:
        curves(axes[0, 1], [("train_ce", "train", "-o"), ("val_ce", "validation", "-o")])
        axes[0, 1].set_ylabel("cross-entropy (nats per frame)")
        axes[0, 1].set_title("code prediction", fontsize=9)
    _save(plt, fig, path)


def plot_clip(path, clip, sample_rate: int, *, song=None, top: float | None = None, title: str = "",
              song_title: str = "song") -> None:
    """A clip's log-mel spectrogram over its onset envelope, beside the same for a stretch of the song (when given)
    at the same scales: one dB scale (0 dB = ``top``, the song's loudest mel cell, else the loudest cell shown),
    one time scale (panel widths follow durations) and one onset-strength scale.

    ``clip`` and ``song`` are mono arrays at ``sample_rate``; written to ``path`` as a PNG."""
    import math

    import numpy as np

    from framegen.rhythm import onset_envelope, onset_hop
    from framegen.spectral import FEATURE_WINDOW_S, mel_power

    plt = _pyplot()
    hop = onset_hop(sample_rate)
    parts = [(np.nan_to_num(np.asarray(clip, np.float32)), title or "clip")]
    if song is not None and len(song):
        parts.append((np.asarray(song, np.float32), song_title))
    window = int(2 ** round(math.log2(FEATURE_WINDOW_S * sample_rate)))  # mel_power's n_fft
    mels, onsets = [], []
    for y, _ in parts:
        y = np.pad(y, (0, max(0, window - len(y))))  # a clip shorter than one window still gets a column
        mels.append(mel_power(y, sample_rate))
        onsets.append(onset_envelope(y, sample_rate))  # the envelope the pulse and rhythm metrics read
    top = top or max(float(m.max()) for m in mels) or 1.0
    onset_top = max(float(o.max()) for o in onsets) or 1.0
    widths = [max(len(y), 1) / sample_rate for y, _ in parts]
    fig, axes = plt.subplots(2, len(parts), figsize=(11, 3.8), squeeze=False, sharey="row",
                             gridspec_kw={"width_ratios": widths, "height_ratios": [3, 1]}, layout="constrained")
    image = None
    for j, ((y, label), power, onset) in enumerate(zip(parts, mels, onsets)):
        seconds = len(y) / sample_rate
        db = 10 * np.log10(np.maximum(power, 1e-8 * top) / top).T  # (mels, frames), 0 dB = the song's loudest
        image = axes[0, j].imshow(db, origin="lower", aspect="auto", cmap="magma", vmin=-80, vmax=0,
                                  extent=(0, seconds, 0, db.shape[0]))
        axes[0, j].set_title(label, fontsize=9)
        axes[0, j].set_xticks([])
        times = np.arange(len(onset)) * hop / sample_rate
        axes[1, j].fill_between(times, onset, color="#3a6ea5", linewidth=0)
        axes[1, j].set_xlim(0, seconds)
        axes[1, j].set_ylim(0, 1.05 * onset_top)
        axes[1, j].set_xlabel("time (s)", fontsize=8)
        axes[1, j].tick_params(labelsize=7)
        axes[0, j].tick_params(labelsize=7)
    axes[0, 0].set_ylabel("mel band", fontsize=8)
    axes[1, 0].set_ylabel("onsets", fontsize=8)
    fig.colorbar(image, ax=axes[0, :], label="dB (0 = song's loudest)", shrink=0.9)
    _save(plt, fig, path)


def path_figure(path, *, title: str = "", held_out_s: float | None = None, song_s: float | None = None):
    """The path of a generated clip through its song (a framegen.songpath.SongPath): output time (x) against song
    time (y), each stretch played as in the song one line segment (a jump is a break between two), the prompt's
    start a marker at output time 0, each of ``path.marks`` (song seconds the output was asked to reach) a labelled
    dashed line, each of ``path.likeness`` (how the output sounds like a passage it was sent toward) a curve on a
    second axis, and the song's held-out part (from ``held_out_s`` to ``song_s``, when given) a shaded band.
    Returns the matplotlib Figure (``plot_path`` writes it)."""
    import numpy as np
    from matplotlib.collections import LineCollection

    from framegen.songpath import jumps

    plt = _pyplot()
    p, f, rate = np.asarray(path.positions, np.int64), path.frame_size, path.sample_rate
    cut = jumps(p, f)
    starts, stops = np.concatenate([[0], cut]).astype(np.int64), np.concatenate([cut, [len(p)]]).astype(np.int64)
    keep = (p[starts] >= 0) if len(p) else np.zeros(1, bool)  # frames not from the song (-1) are not drawn
    starts, stops = starts[keep], stops[keep]
    segments = np.stack([np.stack([starts * f / rate, p[starts] / rate], axis=1),
                         np.stack([stops * f / rate, (p[stops - 1] + f) / rate], axis=1)], axis=1)  # (n, 2, 2)
    fig, ax = plt.subplots(figsize=(9, 4), layout="constrained")
    ax.add_collection(LineCollection(segments, colors="#3a6ea5", linewidths=1.8, label="played as in the song"))
    top = max(song_s or 0.0, float(segments[:, :, 1].max(initial=0.0)), *path.marks.values())
    if held_out_s is not None:
        ax.axhspan(held_out_s, song_s if song_s is not None else top, color="0.5", alpha=0.15, linewidth=0,
                   label="held out")
    if path.prompt_start >= 0:
        ax.plot([0.0], [path.prompt_start / rate], marker=">", markersize=8, color="black", linestyle="none",
                clip_on=False, label=f"prompt ({path.prompt_start / rate:.1f} s)")
    seconds = len(p) * f / rate
    like = ax.twinx() if path.likeness else None
    for i, (name, at) in enumerate(path.marks.items()):
        colour = f"C{(i + 1) % 10}"
        ax.axhline(at, color=colour, linestyle="--", linewidth=1)
        ax.annotate(f"{name} {at:.1f} s", (1.0, at), xycoords=("axes fraction", "data"), xytext=(-4, 3),
                    textcoords="offset points", ha="right", fontsize=8, color=colour)
        if like is not None and name in path.likeness:  # how the output grows like the passage it approaches
            v = np.asarray(path.likeness[name], np.float64)
            like.plot(np.arange(len(v)) * f / rate, v, color=colour, linewidth=0.8, alpha=0.7,
                      label=f"likeness to {name}")
    if like is not None:
        like.set_ylabel("likeness to the passage (1: alike, 0: as random beats)")
        like.legend(loc="lower right", fontsize=8)
    ax.set_xlim(0, max(seconds, 1e-3))
    ax.set_ylim(0, max(top, 1e-3) * 1.02)
    ax.set_xlabel("output time (s)")
    ax.set_ylabel("song time (s)")
    n = len(cut)
    ax.set_title(f"{title + ': ' if title else ''}path through the song, {n} jump{'s' if n != 1 else ''}",
                 fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    return fig


def plot_path(out, path, **kwargs) -> None:
    """``path_figure`` written to ``out`` as a PNG."""
    plt = _pyplot()
    _save(plt, path_figure(path, **kwargs), out)
