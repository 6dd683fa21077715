"""Checkpoints of a run with Orbax: ``checkpoints/last`` (every epoch and on stop) and ``checkpoints/best``.

Each is an orbax CheckpointManager keeping one step; orbax writes into a temporary directory and renames it when
complete, so a kill during a save leaves the previous checkpoint restorable and never a half one.
"""

import logging
from pathlib import Path

import jax

from framegen.errors import RunError

KINDS = ("last", "best")


def _ocp():
    import orbax.checkpoint as ocp

    logging.getLogger("absl").setLevel(logging.ERROR)
    return ocp


def _manager(run_dir: Path, kind: str, create: bool):
    ocp = _ocp()
    options = ocp.CheckpointManagerOptions(max_to_keep=1, enable_async_checkpointing=False, create=create)
    return ocp.CheckpointManager(Path(run_dir).absolute() / "checkpoints" / kind, options=options)


def exists(run_dir: Path, kind: str) -> bool:
    path = Path(run_dir) / "checkpoints" / kind
    if not path.is_dir():
        return False
    mgr = _manager(run_dir, kind, create=False)
    try:
        return mgr.latest_step() is not None
    finally:
        mgr.close()


def save(run_dir: Path, kind: str, state, meta: dict) -> None:
    """Save the state pytree and a JSON-able ``meta`` dict under ``kind``; the older one goes once this is done."""
    ocp = _ocp()
    step = int(meta["step"])
    try:
        mgr = _manager(run_dir, kind, create=True)
        try:
            mgr.save(
                step,
                args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
                force=True,
            )
            mgr.wait_until_finished()
        finally:
            mgr.close()
    except OSError as e:
        raise RunError(
            f"cannot save the {kind} checkpoint in {run_dir} ({e.strerror or e}): free disk space or pass a "
            f"writable --run-dir; the previous checkpoint is kept"
        ) from None


def restore(run_dir: Path, kind: str, like):
    """(state, meta) of the ``kind`` checkpoint; ``like`` is a pytree with the expected shapes and dtypes."""
    ocp = _ocp()
    if not exists(run_dir, kind):
        raise RunError(
            f"{run_dir} has no {kind} checkpoint: train it first, or resume it with 'framegen train --resume'"
        )
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    mgr = _manager(run_dir, kind, create=False)
    try:
        step = mgr.latest_step()
        restored = mgr.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore())
        )
    except (ValueError, KeyError, TypeError) as e:
        reason = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise RunError(
            f"the {kind} checkpoint in {run_dir} does not match its config.json ({reason}): "
            f"use the run's own config, or train a new run"
        ) from None
    finally:
        mgr.close()
    return restored["state"], restored["meta"]
