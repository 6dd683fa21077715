"""Checkpoints of a run with Orbax: ``checkpoints/last`` (every epoch and on stop) and ``checkpoints/best``.

Each is an orbax CheckpointManager keeping one step; orbax writes into a temporary directory and renames it when
complete, so a kill during a save leaves the previous checkpoint restorable and never a half one. A step holds three
items: ``params`` (restorable against ``model.init_params`` alone, as ``generate`` does), ``train`` (optimizer state
and step) and ``meta`` (JSON). Runs written before params had their own item hold ``state`` (the whole training
state) instead; both are read.
"""

import logging
import os
import re
import shutil
import sys
import time
from pathlib import Path

import jax

from framegen.config import RunConfig
from framegen.errors import RunError


def _ocp():
    import orbax.checkpoint as ocp

    # orbax logs a failed write (disk full) with a traceback before raising it; save() turns it into one line
    logging.getLogger("absl").setLevel(logging.CRITICAL)
    return ocp


def _manager(run_dir: Path, kind: str, create: bool):
    ocp = _ocp()
    # the writer (which holds the run's lock) removes temporary directories a killed save left behind
    options = ocp.CheckpointManagerOptions(max_to_keep=1, enable_async_checkpointing=False, create=create,
                                           cleanup_tmp_directories=create)
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


def _write_failure(e: Exception) -> str | None:
    """The OS reason of a failed write (orbax/tensorstore report ENOSPC as a ValueError), or None if it is not one."""
    if isinstance(e, OSError):
        return e.strerror or str(e)
    code = re.search(r"os_error_code='?(\d+)", str(e))
    return os.strerror(int(code.group(1))) if code else None


def _drop_closed_loop_noise() -> None:
    """After a failed write, tensorstore's pending callbacks hit orbax's closed event loop, and each prints a
    traceback through ``sys.unraisablehook``: noise around the one-line error, so those alone are dropped."""
    previous = sys.unraisablehook
    if getattr(previous, "framegen_filter", False):
        return

    def hook(u):
        if not (isinstance(u.exc_value, RuntimeError) and str(u.exc_value) == "Event loop is closed"):
            previous(u)

    hook.framegen_filter = True
    sys.unraisablehook = hook
    # With params and the rest saved as two items, the item whose write did not fail first is left with failed
    # futures nobody awaits, and asyncio logs each ("... exception was never retrieved") when it is collected.
    logging.getLogger("asyncio").addFilter(_unretrieved_futures)


def _unretrieved_futures(record) -> bool:
    return "exception was never retrieved" not in record.getMessage()


def _remove_tmp_dirs(directory: Path) -> None:
    """Delete a failed save's temporary directories; writes still in flight may recreate them for a moment."""
    for _ in range(40):
        for tmp in directory.glob("*.orbax-checkpoint-tmp*"):
            shutil.rmtree(tmp, ignore_errors=True)
        time.sleep(0.05)
        if not any(directory.glob("*.orbax-checkpoint-tmp*")):
            return


def save(run_dir: Path, kind: str, state: dict, meta: dict) -> None:
    """Save the training state {"params", ...} (params as their own item) and a JSON-able ``meta`` dict under
    ``kind``; the older one goes once this is done.

    Saving a step that is already saved does nothing: the state of a step is a function of the step (a Ctrl-C right
    after an epoch's save, or a resumed run redoing an epoch whose ``best`` was saved before the kill).
    """
    ocp = _ocp()
    step = int(meta["step"])
    rest = {k: v for k, v in state.items() if k != "params"}
    _drop_closed_loop_noise()
    try:
        mgr = _manager(run_dir, kind, create=True)
        try:
            if step in mgr.all_steps():
                return
            mgr.save(
                step,
                args=ocp.args.Composite(params=ocp.args.StandardSave(state["params"]),
                                        train=ocp.args.StandardSave(rest), meta=ocp.args.JsonSave(meta)),
                force=True,
            )
            mgr.wait_until_finished()
        finally:
            mgr.close()
    except Exception as e:  # noqa: BLE001 - only write failures are the user's to fix; the rest propagate
        reason = _write_failure(e)
        if reason is None:
            raise
        _remove_tmp_dirs(Path(run_dir) / "checkpoints" / kind)  # give the space back; resume never reads them
        raise RunError(
            f"cannot save the {kind} checkpoint in {run_dir} ({reason}): free disk space or pass a "
            f"writable --run-dir; the previous checkpoint is kept"
        ) from None


def _mismatch(run_dir: Path, kind: str, e: Exception) -> RunError:
    reason = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
    return RunError(f"the {kind} checkpoint in {run_dir} does not match its config.json ({reason}): "
                    f"use the run's own config, or train a new run")


def _restore(run_dir: Path, kind: str, items: dict):
    """{item: restored} of the latest step; ``items`` maps item name -> a template pytree, None for a pytree
    restored as saved, or "json"."""
    ocp = _ocp()
    if not exists(run_dir, kind):
        raise RunError(
            f"{run_dir} has no {kind} checkpoint: train it first, or resume it with 'framegen train --resume'"
        )
    mgr = _manager(run_dir, kind, create=False)
    try:
        step = mgr.latest_step()
        if "params" in items and not (mgr.directory / str(step) / "params").is_dir():
            items = _old_layout(items)
        args = {name: ocp.args.JsonRestore() if like == "json" else
                ocp.args.StandardRestore(None if like is None else jax.tree.map(ocp.utils.to_shape_dtype_struct, like))
                for name, like in items.items()}
        return mgr.restore(step, args=ocp.args.Composite(**args))
    except (ValueError, KeyError, TypeError) as e:
        raise _mismatch(run_dir, kind, e) from None
    finally:
        mgr.close()


def _old_layout(items: dict) -> dict:
    """The items of a checkpoint saved before params had their own: one ``state`` {"params", "opt_state", "step"}."""
    out = {k: v for k, v in items.items() if k not in ("params", "train")}
    if "train" in items:
        out["state"] = {"params": items["params"], **items["train"]}
    else:  # parameters only: the optimizer's layout is training's business, so the state comes back as saved
        out["state"] = None
    return out


def _split(restored: dict) -> tuple[dict, dict]:
    """(params, rest of the training state) of a restored checkpoint in either layout."""
    if "state" in restored:
        state = dict(restored["state"])
        return state.pop("params"), state
    return restored["params"], restored.get("train", {})


def restore(run_dir: Path, kind: str, like):
    """(state, meta) of the ``kind`` checkpoint; ``like`` is the training state {"params", ...} with the expected
    shapes and dtypes (any layout, see the module docstring)."""
    rest = {k: v for k, v in like.items() if k != "params"}
    restored = _restore(run_dir, kind, {"params": like["params"], "train": rest, "meta": "json"})
    params, rest = _split(restored)
    return {"params": params, **rest}, restored["meta"]


def restore_params(run_dir: Path, kind: str, like):
    """(params, meta) of the ``kind`` checkpoint without its optimizer state; ``like``: params with the expected
    shapes and dtypes (``model.init_params``)."""
    restored = _restore(run_dir, kind, {"params": like, "meta": "json"})
    params, _ = _split(restored)
    if "state" in restored:  # an old checkpoint, restored as saved: check it against the model's parameters
        try:
            jax.tree.map(_same_shape, like, params)
        except (ValueError, TypeError) as e:
            raise _mismatch(run_dir, kind, e) from None
        params = jax.tree.map(lambda p, a: jax.numpy.asarray(a, p.dtype), like, params)
    return params, restored["meta"]


def _same_shape(want, got) -> None:
    if tuple(want.shape) != tuple(got.shape):
        raise ValueError(f"a parameter of shape {tuple(got.shape)} where the model has {tuple(want.shape)}")


def load_params(run_dir: Path, cfg: RunConfig, kind: str):
    """Params of a run's ``best`` or ``last`` checkpoint (``config.CHECKPOINTS``), checked against its config (the
    model it builds)."""
    from framegen.model import build, init_params

    if kind == "best" and not exists(run_dir, "best"):
        kind = "last"  # a run stopped before its first validation has only "last"
    like = init_params(build(cfg.model, cfg.data.frame_size), jax.random.key(0))  # shapes only
    params, _ = restore_params(run_dir, kind, like)
    return params
