"""What checksums cost a checkpoint of the default model (F=800, GRU 256x2, Adam state filled with random values,
as after training): save with and without sealing, restore of the parameters (generate) and of the whole state
(resume) with and without verification, the checking alone, and (for context) the parameter init generate's
loader runs before its restore. Medians of REPS rounds, the variants alternated
within each round so load from other jobs falls on both alike; files in the page cache, as right after a save.

usage: PYTHONPATH=. python experiments/bench/verify_cost.py [REPS]    (prints one JSON object per measurement)
"""

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp

from framegen import checkpoint, checksums
from framegen.config import RunConfig
from framegen.model import build, init_params
from framegen.step import init_state

REPS = int(sys.argv[1]) if len(sys.argv) > 1 else 15


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main(run: Path):
    cfg = RunConfig()
    assert (cfg.data.frame_size, cfg.model.hidden, cfg.model.layers) == (800, 256, 2)
    state = init_state(cfg, 1000)
    keys = iter(jax.random.split(jax.random.key(1), 64))
    state["opt_state"] = jax.tree.map(  # Adam's moments after training are not zeros (zeros compress to nothing)
        lambda x: jax.random.normal(next(keys), x.shape, x.dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x,
        state["opt_state"])
    like_params = init_params(build(cfg.model, cfg.data.frame_size), jax.random.key(0))
    never_damaged = lambda *a, **k: None  # noqa: E731 - verification switched off
    damage = checksums.damage

    def unsealed_save(step):  # orbax's save alone: sealing and the deletion of the older step switched off
        write, checksums.write_manifest = checksums.write_manifest, lambda d: None
        try:
            checkpoint.save(run / "plain", "last", state, {"step": step})
        finally:
            checksums.write_manifest = write

    def restore(fn, verify):
        checksums.damage = damage if verify else never_damaged
        try:
            fn()
        finally:
            checksums.damage = damage

    rows = {k: [] for k in ("save_sealed", "save_unsealed", "seal_only", "restore_params_verified",
                            "restore_params_unverified", "verify_params_only", "restore_verified",
                            "restore_unverified", "verify_all_only", "init_params")}
    like = jax.tree.map(jnp.zeros_like, state)
    for i in range(REPS + 1):  # round 0 warms up orbax and the page cache
        step = 100 + i
        t_sealed = timed(lambda: checkpoint.save(run, "last", state, {"step": step}))
        t_plain = timed(lambda: unsealed_save(step))
        step_dir = run / "checkpoints" / "last" / str(step)
        t_seal = timed(lambda: checksums.write_manifest(step_dir))
        t = {"save_sealed": t_sealed, "save_unsealed": t_plain, "seal_only": t_seal}
        for verify in ((True, False) if i % 2 else (False, True)):
            name = "verified" if verify else "unverified"
            t[f"restore_params_{name}"] = timed(
                lambda: restore(lambda: checkpoint.restore_params(run, "last", like_params), verify))
            t[f"restore_{name}"] = timed(lambda: restore(lambda: checkpoint.restore(run, "last", like), verify))
        t["verify_params_only"] = timed(lambda: checksums.damage(step_dir, ("params", "meta")))
        t["verify_all_only"] = timed(lambda: checksums.damage(step_dir))
        # generate's load_params builds the parameter shapes before restoring: context for the restore's share
        t["init_params"] = timed(lambda: jax.block_until_ready(init_params(build(cfg.model, cfg.data.frame_size),
                                                                           jax.random.key(0))))
        if i:
            for k, v in t.items():
                rows[k].append(v)

    step_dir = run / "checkpoints" / "last" / str(100 + REPS)
    size = lambda part: sum(p.stat().st_size for p in (step_dir / part).rglob("*") if p.is_file())  # noqa: E731
    med = {k: statistics.median(v) * 1e3 for k, v in rows.items()}
    print(json.dumps({"what": "sizes", "params_mb": round(size("params") / 1e6, 2),
                      "train_mb": round(size("train") / 1e6, 2), "step_dir_mb": round(size(".") / 1e6, 2),
                      "files": sum(1 for p in step_dir.rglob("*") if p.is_file()),
                      "n_params": sum(x.size for x in jax.tree.leaves(state["params"]))}))
    for k, v in med.items():
        print(json.dumps({"what": k, "median_ms": round(v, 1), "reps": REPS,
                          "min_ms": round(min(rows[k]) * 1e3, 1), "max_ms": round(max(rows[k]) * 1e3, 1)}))
    print(json.dumps({"what": "overhead",
                      "restore_params_pct": round(100 * (med["restore_params_verified"] /
                                                         med["restore_params_unverified"] - 1), 1),
                      "restore_pct": round(100 * (med["restore_verified"] / med["restore_unverified"] - 1), 1),
                      "verify_params_pct_of_restore_params": round(100 * med["verify_params_only"] /
                                                                   med["restore_params_unverified"], 1),
                      "verify_all_pct_of_restore": round(100 * med["verify_all_only"] / med["restore_unverified"], 1),
                      "seal_pct_of_save": round(100 * med["seal_only"] / med["save_unsealed"], 1),
                      "load_average": os.getloadavg()[0]}))


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="verify-cost-") as d:
        main(Path(d))
