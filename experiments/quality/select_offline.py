"""Offline check of context scores (issue 19): how well a score over the model's own-past predictions ranks the
bar-phase candidates, without generating.

For every beat b of the training part as "now" (the continuation), the candidates are the beats c at the same
bar phase (c = b mod 4, c != b). Truth(b, c) = 1 - |z_c - z_b| / d_random: how alike the beat-long window where a
jump to c lands is to the one the song plays at b (chroma + MFCC z-scored over the song's beats; the exact jump
score of select_run.py). Each score compares the model's prediction of the frame at c from its own past with its
prediction at b (``units.own_at``; in generation the latter is the prediction after what was played).

Prints per run and score: the mean Spearman correlation of -score with the truth over each now's candidates, the
truth of the argmin, and the expected truth of a pick sampled from softmax(-w * score) at several weights w
(uniform picks: the mean truth; what generation gets, ignoring the continuation). One JSON line per run x score x
weight to --out.

    python experiments/quality/select_offline.py RUN [RUN ...] [--out FILE]
"""

import argparse
import json
import sys

import numpy as np

WEIGHTS = (0.1, 0.3, 1, 3, 5, 10, 30, 100)


def scores_of(own: np.ndarray, sigma2: float) -> dict:
    """(Nb, Nb) candidate-by-now scores (lower = the model hears the splice as more seamless) from the own-past
    predictions ``own`` (Nb, D)."""
    d = own.shape[-1]
    sq = np.sum(own**2, axis=1)
    l2 = np.maximum(sq[:, None] + sq[None, :] - 2 * own @ own.T, 0)
    p = np.abs(np.fft.rfft(own, axis=-1)) ** 2 / d + sigma2  # (Nb, K) power + the residual floor
    lp = np.log(p)
    # KL(own_c || own_b) of zero-mean Gaussians with spectra p: sum (r - 1 - log r) / 2, r = p_c / p_b
    spec = 0.5 * ((p[:, None, :] / p[None, :, :]).sum(-1) - p.shape[1] - (lp[:, None, :] - lp[None, :, :]).sum(-1))
    lpn = np.log(np.abs(np.fft.rfft(own, axis=-1)) ** 2 / d + 1e-3 * sigma2)
    logspec = np.mean((lpn[:, None, :] - lpn[None, :, :]) ** 2, axis=-1)
    return {"sample": l2 / (2 * sigma2 * d), "sample_frame": l2 / (2 * sigma2), "spectrum": spec,
            "logspec_l2": logspec}


def rank(x):
    return np.argsort(np.argsort(x)).astype(float)


def evaluate(score: np.ndarray, truth: np.ndarray, pos: np.ndarray, f: int) -> dict:
    nb = len(truth)
    sp, am, exp = [], [], {w: [] for w in WEIGHTS}
    uni = []
    for b in range(nb):
        c = np.arange(b % 4, nb, 4)
        c = c[(c != b) & (np.abs(pos[c] - pos[b]) >= f)]
        if len(c) < 3:
            continue
        s, t = score[c, b], truth[b, c]
        sp.append(np.corrcoef(rank(-s), rank(t))[0, 1])
        am.append(t[np.argmin(s)])
        uni.append(t.mean())
        for w in WEIGHTS:
            p = np.exp(-w * (s - s.min()))
            exp[w].append(float(np.sum(p * t) / p.sum()))
    return {"spearman": float(np.nanmean(sp)), "argmin_truth": float(np.mean(am)), "uniform": float(np.mean(uni)),
            **{f"w{w}": float(np.mean(v)) for w, v in exp.items()}}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    sys.path.insert(0, "experiments/quality")
    from pathlib import Path

    from select_run import beat_features

    from framegen import audio
    from framegen.config import load_config
    from framegen.generate import inputs_for
    from framegen.units import own_at, predictive

    for run in a.runs:
        run = Path(run)
        cfg = load_config(run).with_options(select="model")
        inp = inputs_for(run, cfg)
        u, f, rate = inp.units, cfg.data.frame_size, cfg.data.sample_rate
        own = np.asarray(predictive(own_at(inp.model, inp.params, u.song, u.n_train, u.beats, u.stride,
                                           beats=u.beats if cfg.model.clock == "beat" else None), u.vq))
        beat_len = int(round(np.median(np.diff(u.beats))))
        ok = (u.beats >= 2 * f) & (u.beats + max(beat_len, 2 * f) <= u.n_train) & (np.abs(own).sum(1) > 0)
        pos, own = u.beats[ok], own[ok]
        raw = audio.denormalise(u.song, cfg.norm)
        feats = beat_features(raw, rate, pos, beat_len)
        z = (feats - feats.mean(0)) / (feats.std(0) + 1e-8)
        dist = np.linalg.norm(z[:, None] - z[None, :], axis=-1)
        rng = np.random.default_rng(0)
        d_random = np.median(dist[rng.integers(0, len(z), 2000), rng.integers(0, len(z), 2000)])
        truth = 1 - dist / d_random
        if u.vq:
            lo = own  # log-probabilities
            po = np.exp(lo)
            kl = (po[:, None, :] * (lo[:, None, :] - lo[None, :, :])).sum(-1)  # KL(own_c || own_b): [c, b]
            scores = {"vq_kl": kl}
        else:
            scores = scores_of(own, u.sigma2)
        # the song's real frames at c and b: what a model that predicted perfectly would compare (a reference)
        real = u.song[(pos[:, None] + np.arange(f)[None, :]).astype(int)]
        rp = np.log(np.abs(np.fft.rfft(real, axis=-1)) ** 2 / f + 1e-3)
        scores["oracle_real_logspec"] = np.mean((rp[:, None, :] - rp[None, :, :]) ** 2, axis=-1)
        scores["oracle_truth"] = -truth.T
        for name, s in scores.items():
            row = {"run": run.name, "score": name, "sigma2": u.sigma2, "beats": int(ok.sum()),
                   **evaluate(s, truth, pos, f)}
            print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
            if a.out:
                with open(a.out, "a") as fh:
                    fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
