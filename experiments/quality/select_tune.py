"""Tuning the MSE mode's context score without touching framegen/: select_run.py with framegen.units patched.

    python experiments/quality/select_tune.py [--space sample|spectrum] [--weight W] [--per-frame]
        [--spread FILE] -- OUT TRAINED:ONESTEP [...] [select_run.py options]

--space sample     units.py as it is: sum((own - played)^2) / (2 sigma2 D), the Gaussian KL of the predicted frames
                   per sample (--per-frame: without the / D, i.e. the KL of the whole frame).
--space spectrum   phase-insensitive: each predicted frame taken as a zero-mean Gaussian whose power spectrum is
                   the prediction's own |rfft|^2 / D plus the residual variance sigma2 (white), and the KL of two
                   such Gaussians, sum over bins of (r - 1 - log r) / 2 with r = (P_own + sigma2) / (P_played +
                   sigma2) (half the Itakura-Saito divergence). A prediction far below the residual (an untrained
                   model's) has r ~ 1 everywhere, so its scores stay ~0: the one-step model stays ~uniform.
--cont best        the continuation's KL raised to the best jump candidate's (its own bar's excluded): staying
                   is never scored better than the best jump, so the hazard and hold decide when to jump and the
                   model where to.
--cap M            the same with a margin: the continuation's lead over the best jump is capped at M nats (--cont
                   best is M = 0), so it stays while no candidate comes within M nats of it and the hazard pushes.
--recent N         jump candidates within a bar of a place played at the last N decisions are barred (the
                   rollout of select_recency.py, a copy of units.py's with that one change).
--weight W         the context weight (units.CONTEXT, 5) for MSE runs; VQ runs keep theirs unless --weight-vq.
--spread FILE      record, at every decision, the KL of every candidate (after the weight) and write per clip
                   summaries (JSON lines): std of the jump candidates' scores, the largest pick probability among
                   them, and exp(entropy) / M (1: uniform picks).
"""

import argparse
import dataclasses
import json
import sys

import jax
import jax.numpy as jnp
import numpy as np


def spectrum_kl(o, played, sigma2):
    """(B, M) KL between zero-mean Gaussians with power spectra |rfft(o)|^2/D + sigma2 and |rfft(played)|^2/D +
    sigma2; o (B, M, D), played (B, D)."""
    d = o.shape[-1]
    po = jnp.square(jnp.abs(jnp.fft.rfft(o, axis=-1))) / d + sigma2
    pp = jnp.square(jnp.abs(jnp.fft.rfft(played, axis=-1))) / d + sigma2
    r = po / pp[:, None, :]
    return 0.5 * jnp.sum(r - 1.0 - jnp.log(r), axis=-1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--space", default="sample", choices=("sample", "spectrum"))
    ap.add_argument("--weight", type=float, default=None)
    ap.add_argument("--weight-vq", type=float, default=None)
    ap.add_argument("--per-frame", action="store_true")
    ap.add_argument("--spread", default=None)
    ap.add_argument("--cont", default="kl", choices=("kl", "best"),
                    help="best: the continuation's KL is raised to the best jump's (the model says where, the "
                         "hazard when)")
    ap.add_argument("--cap", type=float, default=None,
                    help="nats: the continuation's lead over the best jump is at most this (before hold and hazard)")
    ap.add_argument("--recent", type=int, default=0,
                    help="bar jump candidates within a bar of what was played at the last N decisions "
                         "(select_recency.py's rollout)")
    ap.add_argument("rest", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    rest = a.rest[1:] if a.rest and a.rest[0] == "--" else a.rest

    import framegen.generate as gen
    import framegen.units as units

    orig_context, orig_units_for, orig_generate = units.context, units.units_for, gen.generate
    weights = {}
    records = []

    def context(played, own, cand_beats, *, vq_mode, sigma2):
        if vq_mode or a.space == "sample":
            kl = orig_context(played, own, cand_beats, vq_mode=vq_mode, sigma2=sigma2)
            if not vq_mode and a.per_frame:
                kl = kl * own.shape[-1]
        else:
            kl = spectrum_kl(own[cand_beats], played, sigma2)
        if a.cap is not None or a.cont == "best":
            # column 0 is the continuation; the candidate in its own bar is left out (barred in _chunk)
            other = jnp.abs(cand_beats[:, 1:] - cand_beats[:, :1]) > 1
            best = jnp.min(jnp.where(other, kl[:, 1:], jnp.inf), axis=-1)
            w = (a.weight_vq if vq_mode else a.weight) or units.CONTEXT
            best = best - (a.cap or 0.0) / w
            kl = kl.at[:, 0].set(jnp.maximum(kl[:, 0], jnp.where(jnp.isfinite(best), best, kl[:, 0])))
        if a.spread:
            jax.debug.callback(lambda k, c: records.append((np.asarray(k), np.asarray(c))), kl, cand_beats)
        return kl

    def units_for(run_dir, cfg, song_norm, grid):
        u = orig_units_for(run_dir, cfg, song_norm, grid)
        if u is None:
            return u
        w = a.weight_vq if u.vq else a.weight
        if w is not None:
            u = dataclasses.replace(u, context=w)
        weights["w"] = u.context
        return u

    def generate(run_dir, **kw):
        records.clear()
        g = orig_generate(run_dir, **kw)
        if a.spread and records:
            w = weights["w"]
            kl = np.concatenate([k.reshape(-1, k.shape[-1]) for k, _ in records])  # (decisions, 1 + M)
            cb = np.concatenate([c.reshape(-1, c.shape[-1]) for _, c in records])
            # the jump candidates: column 0 is the continuation, and the candidate in its own bar is barred
            own_bar = np.abs(cb[:, 1:] - cb[:, :1]) <= 1
            s = np.where(own_bar, np.nan, -w * kl[:, 1:])
            p = np.exp(s - np.nanmax(s, axis=1, keepdims=True))
            p = np.where(own_bar, 0.0, p)
            p /= p.sum(axis=1, keepdims=True)
            ent = -np.sum(p * np.log(np.maximum(p, 1e-30)), axis=1)
            m = (~own_bar).sum(axis=1)
            row = {"run": str(run_dir), "out": str(kw.get("out")), "select": kw.get("select"), "weight": w,
                   "space": a.space, "per_frame": a.per_frame, "decisions": len(kl),
                   "kl_median": float(np.nanmedian(-s / w)), "score_std": float(np.median(np.nanstd(s, axis=1))),
                   "score_range": float(np.median(np.nanmax(s, axis=1) - np.nanmin(s, axis=1))),
                   "p_max": float(np.median(p.max(axis=1))),
                   "uniformity": float(np.median(np.exp(ent) / m)),
                   "cont_minus_best": float(np.median(-w * kl[:, 0] - np.nanmax(s, axis=1)))}
            print("SPREAD", json.dumps(row), flush=True)
            with open(a.spread, "a") as fh:
                fh.write(json.dumps(row) + "\n")
        return g

    units.context, units.units_for, gen.generate = context, units_for, generate
    sys.argv = ["select_run.py", *rest]
    sys.path.insert(0, "experiments/quality")
    if a.recent:
        import select_recency

        import framegen.stream as stream

        select_recency.RECENT = a.recent
        stream.units_start, stream.units_chunk = select_recency.units_start, select_recency.units_chunk
    import select_run

    select_run.main()


if __name__ == "__main__":
    main()
