"""Checkpoints of a run with Orbax: ``checkpoints/last`` (every epoch and on stop) and ``checkpoints/best``.

Each is an orbax CheckpointManager keeping one step; orbax writes into a temporary directory and renames it when
complete, so a kill during a save leaves the previous checkpoint restorable and never a half one. A step holds three
items: ``params`` (restorable against ``model.init_params`` alone, as ``generate`` does), ``train`` (optimizer state
and step) and ``meta`` (JSON). Runs written before params had their own item hold ``state`` (the whole training
state) instead; both are read.

Every step is sealed by ``checksums.json``, the size and CRC-32 of each of its files (``framegen.checksums``),
written after orbax's rename; only then is the previous step deleted, so a kill between the two leaves the previous
step, sealed, as the one restored. A restore reads the newest sealed step and checks the files it needs before
orbax reads them.
"""

import logging
import os
import re
import shutil
import sys
import time
import warnings
from pathlib import Path

import jax

from framegen import checksums
from framegen.config import RunConfig
from framegen.errors import FramegenWarning, RunDamaged, RunError


def _ocp():
    import orbax.checkpoint as ocp

    # orbax logs a failed write (disk full) with a traceback before raising it; save() turns it into one line
    logging.getLogger("absl").setLevel(logging.CRITICAL)
    return ocp


def _manager(run_dir: Path, kind: str, create: bool):
    ocp = _ocp()
    # the writer (which holds the run's lock) removes temporary directories a killed save left behind; steps are kept
    # until save() deletes them, once the new step is sealed by its checksums
    options = ocp.CheckpointManagerOptions(max_to_keep=None, enable_async_checkpointing=False, create=create,
                                           cleanup_tmp_directories=create)
    return ocp.CheckpointManager(Path(run_dir).absolute() / "checkpoints" / kind, options=options)


def _step_dir(run_dir: Path, kind: str, step: int) -> Path:
    return Path(run_dir).absolute() / "checkpoints" / kind / str(step)


def latest_step(run_dir: Path, kind: str) -> int | None:
    """The step the ``kind`` checkpoint holds (its newest sealed step), None when there is none."""
    path = Path(run_dir) / "checkpoints" / kind
    if not path.is_dir():
        return None
    mgr = _manager(run_dir, kind, create=False)
    try:
        steps = sorted(mgr.all_steps(), reverse=True)
    finally:
        mgr.close()
    sealed = [s for s in steps if checksums.has_manifest(_step_dir(run_dir, kind, s))]
    # unsealed steps newer than a sealed one are saves a kill cut short before their checksums: never restored
    return sealed[0] if sealed else (steps[0] if steps else None)


def exists(run_dir: Path, kind: str) -> bool:
    return latest_step(run_dir, kind) is not None


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
    after an epoch's save, or a resumed run redoing an epoch whose ``best`` was saved before the kill), unless that
    step is damaged. A new step is sealed with its checksums before the older one is deleted.
    """
    ocp = _ocp()
    step = int(meta["step"])
    directory = _step_dir(run_dir, kind, step)
    rest = {k: v for k, v in state.items() if k != "params"}
    _drop_closed_loop_noise()
    try:
        mgr = _manager(run_dir, kind, create=True)
        try:
            if step in mgr.all_steps():
                if checksums.has_manifest(directory) and not checksums.damage(directory):
                    return
                mgr.delete(step)  # cut short before its checksums, or damaged since: saved again
            mgr.save(
                step,
                args=ocp.args.Composite(params=ocp.args.StandardSave(state["params"]),
                                        train=ocp.args.StandardSave(rest), meta=ocp.args.JsonSave(meta)),
                force=True,
            )
            mgr.wait_until_finished()
            checksums.write_manifest(directory)
            for old in mgr.all_steps():  # only once the new step is sealed
                if old != step:
                    mgr.delete(old)
        finally:
            mgr.close()
    except Exception as e:  # noqa: BLE001 - only write failures are the user's to fix; the rest propagate
        reason = _write_failure(e)
        if reason is None:
            raise
        _remove_tmp_dirs(Path(run_dir) / "checkpoints" / kind)  # give the space back; resume never reads them
        if directory.is_dir() and not checksums.has_manifest(directory):
            shutil.rmtree(directory, ignore_errors=True)  # committed but not sealed: never restored
        raise RunError(
            f"cannot save the {kind} checkpoint in {run_dir} ({reason}): free disk space or pass a "
            f"writable --run-dir; the previous checkpoint is kept"
        ) from None


def _mismatch(run_dir: Path, kind: str, e: Exception) -> RunError:
    reason = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
    return RunError(f"the {kind} checkpoint in {run_dir} does not match its config.json ({reason}): "
                    f"use the run's own config, or train a new run")


def _restore(run_dir: Path, kind: str, items: dict):
    """{item: restored} of the latest sealed step, its files checked first; ``items`` maps item name -> a template
    pytree, None for a pytree restored as saved, or "json". Raises ``RunDamaged`` for a damaged checkpoint."""
    ocp = _ocp()
    step = latest_step(run_dir, kind)
    if step is None:
        raise RunError(
            f"{run_dir} has no {kind} checkpoint: train it first, or resume it with 'framegen train --resume'"
        )
    directory = _step_dir(run_dir, kind, step)
    if not checksums.has_manifest(directory):
        checksums.unverified(run_dir)
        if "params" in items and not (directory / "params").is_dir():
            items = _old_layout(items)
    else:  # generate reads no optimizer state: only the files it reads are checked
        why = checksums.damage(directory, None if "train" in items else tuple(items))
        if why:
            raise RunDamaged(f"{_where(run_dir, kind)} is damaged ({why}): retrain the run", why)
    mgr = _manager(run_dir, kind, create=False)
    try:
        args = {name: ocp.args.JsonRestore() if like == "json" else
                ocp.args.StandardRestore(None if like is None else jax.tree.map(ocp.utils.to_shape_dtype_struct, like))
                for name, like in items.items()}
        return mgr.restore(step, args=ocp.args.Composite(**args))
    except (ValueError, KeyError, TypeError) as e:
        raise _mismatch(run_dir, kind, e) from None
    finally:
        mgr.close()


def _where(run_dir: Path, kind: str) -> str:
    return str(Path(run_dir) / "checkpoints" / kind)


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
    shapes and dtypes (``model.init_params``). A run without ``best`` (stopped before its first validation) gives
    ``last``'s, with a warning; a damaged checkpoint is refused, naming the other one when that one is sound."""
    if kind == "best" and not exists(run_dir, "best"):
        if exists(run_dir, "last"):  # else the refusal names last, the checkpoint every run saves
            warnings.warn(f"{run_dir} has no best checkpoint: using the last checkpoint (step "
                          f"{latest_step(run_dir, 'last')}) instead", FramegenWarning, stacklevel=2)
        kind = "last"
    try:
        restored = _restore(run_dir, kind, {"params": like, "meta": "json"})
    except RunDamaged as e:
        other = "last" if kind == "best" else "best"
        step = latest_step(run_dir, other)
        if step is None:
            then = "retrain the run"
        elif _damage(run_dir, other, step, ("params", "meta")):
            then = f"so is the {other} checkpoint: retrain the run"
        else:
            then = f"generate from the {other} checkpoint (step {step}) with --checkpoint {other}, or retrain the run"
        raise RunDamaged(f"{_where(run_dir, kind)} is damaged ({e.reason}): {then}", e.reason) from None
    params, _ = _split(restored)
    if "state" in restored:  # an old checkpoint, restored as saved: check it against the model's parameters
        try:
            jax.tree.map(_same_shape, like, params)
        except (ValueError, TypeError) as e:
            raise _mismatch(run_dir, kind, e) from None
        params = jax.tree.map(lambda p, a: jax.numpy.asarray(a, p.dtype), like, params)
    return params, restored["meta"]


def _damage(run_dir: Path, kind: str, step: int, parts=None) -> str | None:
    """Why the step is damaged (None when sound or saved without checksums)."""
    directory = _step_dir(run_dir, kind, step)
    return checksums.damage(directory, parts) if checksums.has_manifest(directory) else None


def _same_shape(want, got) -> None:
    if tuple(want.shape) != tuple(got.shape):
        raise ValueError(f"a parameter of shape {tuple(got.shape)} where the model has {tuple(want.shape)}")


def load_params(run_dir: Path, cfg: RunConfig, kind: str):
    """Params of a run's ``best`` or ``last`` checkpoint (``config.CHECKPOINTS``), checked against its config (the
    model it builds)."""
    from framegen.model import build, init_params

    like = init_params(build(cfg.model, cfg.data.frame_size), jax.random.key(0))  # shapes only
    params, _ = restore_params(run_dir, kind, like)
    return params
