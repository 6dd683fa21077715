"""Every matplotlib figure framegen draws, in one place; matplotlib is imported lazily inside each function."""


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
    tmp = f"{path}.tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    import os

    os.replace(tmp, path)
