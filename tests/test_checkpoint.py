"""framegen.checkpoint: orbax save/restore of ``last`` and ``best``, refusals, what a repeated save does, and the
checksums every step is sealed with."""

import json
import shutil
from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from framegen import checkpoint
from framegen.errors import FramegenWarning, RunDamaged, RunError


def _state(value: float):
    return {"params": {"w": jnp.full((3, 4), value, jnp.float32)}, "step": jnp.array(7, jnp.int32)}


def test_save_then_restore_gives_the_same_state_and_meta(tmp_path):
    meta = {"step": 7, "epoch": 1.0, "elapsed": 2.5, "best_val_mse": 0.25}
    assert not checkpoint.exists(tmp_path, "last")
    checkpoint.save(tmp_path, "last", _state(1.5), meta)
    assert checkpoint.exists(tmp_path, "last") and not checkpoint.exists(tmp_path, "best")
    state, got = checkpoint.restore(tmp_path, "last", _state(0.0))
    np.testing.assert_array_equal(state["params"]["w"], np.full((3, 4), 1.5, np.float32))
    assert int(state["step"]) == 7 and got == meta


def test_saving_a_step_already_saved_keeps_the_first_and_a_later_step_replaces_it(tmp_path):
    checkpoint.save(tmp_path, "best", _state(1.0), {"step": 3})
    checkpoint.save(tmp_path, "best", _state(2.0), {"step": 3})  # the state of a step is a function of the step
    assert float(checkpoint.restore(tmp_path, "best", _state(0.0))[0]["params"]["w"][0, 0]) == 1.0
    checkpoint.save(tmp_path, "best", _state(3.0), {"step": 4})
    state, meta = checkpoint.restore(tmp_path, "best", _state(0.0))
    assert float(state["params"]["w"][0, 0]) == 3.0 and meta["step"] == 4
    assert [p.name for p in (tmp_path / "checkpoints" / "best").iterdir()] == ["4"]  # one step kept


def test_restore_refuses_a_missing_checkpoint_and_one_of_another_shape(tmp_path):
    with pytest.raises(RunError, match="has no last checkpoint: train it first"):
        checkpoint.restore(tmp_path, "last", _state(0.0))
    checkpoint.save(tmp_path, "last", _state(1.0), {"step": 1})
    other = {"params": {"w": jnp.zeros((5, 4), jnp.float32)}, "step": jnp.array(0, jnp.int32)}
    with pytest.raises(RunError, match="does not match its config.json"):
        checkpoint.restore(tmp_path, "last", other)
    assert jax.tree.structure(other)  # the template is left alone


def _save_old_layout(run_dir, kind, state, meta):
    """How framegen saved a checkpoint before params had their own item: one ``state`` item holding the whole
    training state (the save path of commit a098c2e, kept here to make such checkpoints)."""
    import orbax.checkpoint as ocp

    options = ocp.CheckpointManagerOptions(max_to_keep=1, enable_async_checkpointing=False, create=True)
    mgr = ocp.CheckpointManager(run_dir.absolute() / "checkpoints" / kind, options=options)
    mgr.save(int(meta["step"]), args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                        meta=ocp.args.JsonSave(meta)), force=True)
    mgr.wait_until_finished()
    mgr.close()


@pytest.mark.filterwarnings("ignore:.*saved without checksums")  # the old layout's, from before them
def test_params_restore_without_the_optimizer_from_the_new_and_the_old_layout(tmp_path):
    from framegen.train import init_state
    from tests.conftest import tiny_config

    cfg = tiny_config()
    state = init_state(cfg, 10)
    state["params"] = jax.tree.map(lambda p: p + 0.5, state["params"])  # not what a fresh init gives
    like = init_state(cfg, 1)["params"]
    for layout, save in (("new", checkpoint.save), ("old", _save_old_layout)):
        run = tmp_path / layout
        save(run, "last", state, {"step": 3})
        assert (run / "checkpoints" / "last" / "3" / ("params" if layout == "new" else "state")).is_dir()
        params, meta = checkpoint.restore_params(run, "last", like)
        assert meta == {"step": 3}
        jax.tree.map(np.testing.assert_array_equal, params, state["params"])
        whole, _ = checkpoint.restore(run, "last", init_state(cfg, 10))  # resume reads both layouts too
        jax.tree.map(np.testing.assert_array_equal, whole, state)
        wrong = init_state(replace(cfg, model=replace(cfg.model, hidden=200)), 1)["params"]
        with pytest.raises(RunError, match="does not match its config.json"):
            checkpoint.restore_params(run, "last", wrong)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*saved without checksums")
def test_a_run_directory_of_the_old_layout_still_generates_and_resumes(tmp_path):
    from framegen import generate, train
    from framegen.config import load_config
    from tests.conftest import sine_song, tiny_config, write

    song = write(tmp_path / "song.wav", sine_song(3.0))
    run = train.train_song(song, tiny_config(epochs=1), run_dir=tmp_path / "run").run_dir
    cfg = load_config(run)
    for kind in ("last", "best"):  # rewrite both checkpoints as the old framegen wrote them
        state, meta = checkpoint.restore(run, kind, train.init_state(cfg, 1))
        shutil.rmtree(run / "checkpoints" / kind)
        _save_old_layout(run, kind, state, meta)
    (g,) = generate.generate(run, seconds=0.5, out=tmp_path / "old.wav")
    assert g.path.is_file() and g.seconds == 0.5
    result = train.resume_run(run, epochs=2)
    assert result.step == 2 * meta["step"] and (run / "checkpoints" / "last" / str(result.step) / "params").is_dir()


# ------------------------------------------------------------------------------------------------ checksums


def _step_dir(run, kind="last"):
    (step,) = [p for p in (run / "checkpoints" / kind).iterdir() if p.name.isdigit()]
    return step


def _biggest(step_dir, item):
    return max((step_dir / item).rglob("d/*"), key=lambda p: p.stat().st_size)


def _flip(path, n=4096):
    b = bytearray(path.read_bytes())
    lo = max(0, len(b) // 2 - n // 2)
    b[lo:lo + n] = bytes(x ^ 0xFF for x in b[lo:lo + n])
    path.write_bytes(bytes(b))


def _big_state(value: float):
    return {"params": {"w": jnp.full((64, 64), value, jnp.float32)}, "opt": {"m": jnp.full((64, 64), value)},
            "step": jnp.array(7, jnp.int32)}


def test_a_save_is_sealed_by_checksums_and_a_damaged_item_is_named_by_the_restores_that_read_it(tmp_path):
    checkpoint.save(tmp_path, "last", _big_state(1.0), {"step": 7})
    step = _step_dir(tmp_path)
    manifest = json.loads((step / "checksums.json").read_text())["files"]
    assert {"_CHECKPOINT_METADATA", "meta/metadata"} <= set(manifest) and any(n.startswith("train/") for n in manifest)
    train_file = _biggest(step, "train")
    _flip(train_file)
    params, _ = checkpoint.restore_params(tmp_path, "last", _big_state(0.0)["params"])  # reads no optimizer state
    assert float(params["w"][0, 0]) == 1.0
    with pytest.raises(RunDamaged) as e:
        checkpoint.restore(tmp_path, "last", _big_state(0.0))
    name = train_file.relative_to(step).as_posix()
    assert str(e.value) == (f"{tmp_path}/checkpoints/last is damaged (its optimizer state file {name} does not match "
                            f"its checksum): retrain the run")
    params_file = _biggest(step, "params")
    params_file.write_bytes(params_file.read_bytes()[:-10])  # truncated
    with pytest.raises(RunDamaged, match=r"its parameters file params/.* is truncated \([\d,]+ of [\d,]+ bytes\)\): "
                                         r"retrain"):
        checkpoint.restore_params(tmp_path, "last", _big_state(0.0)["params"])
    params_file.unlink()
    with pytest.raises(RunDamaged, match=r"its parameters file params/.* is missing\): retrain"):
        checkpoint.restore_params(tmp_path, "last", _big_state(0.0)["params"])
    checkpoint.save(tmp_path, "last", _big_state(2.0), {"step": 7})  # the same step, damaged: saved again
    state, _ = checkpoint.restore(tmp_path, "last", _big_state(0.0))
    assert float(state["params"]["w"][0, 0]) == 2.0


def test_a_damaged_checkpoint_names_the_other_one_when_it_is_sound(tmp_path):
    like = _big_state(0.0)["params"]
    checkpoint.save(tmp_path, "best", _big_state(1.0), {"step": 5})
    checkpoint.save(tmp_path, "last", _big_state(2.0), {"step": 9})
    _flip(_step_dir(tmp_path, "best") / "meta" / "metadata", 4)
    with pytest.raises(RunDamaged) as e:
        checkpoint.restore_params(tmp_path, "best", like)
    assert str(e.value) == (f"{tmp_path}/checkpoints/best is damaged (its metadata file meta/metadata does not match "
                            f"its checksum): generate from the last checkpoint (step 9) with --checkpoint last, or "
                            f"retrain the run")
    _flip(_biggest(_step_dir(tmp_path, "last"), "params"))
    with pytest.raises(RunDamaged, match=r"checkpoints/last is damaged \(.*\): so is the best checkpoint: retrain"):
        checkpoint.restore_params(tmp_path, "last", like)
    shutil.rmtree(tmp_path / "checkpoints" / "best")
    with pytest.raises(RunDamaged, match=r"checkpoints/last is damaged \(.*\): retrain the run$"), \
            pytest.warns(FramegenWarning, match="has no best checkpoint"):
        checkpoint.restore_params(tmp_path, "best", like)  # no best: last's, which is damaged


def test_a_run_without_best_gives_lasts_params_with_a_warning(tmp_path):
    checkpoint.save(tmp_path, "last", _big_state(2.0), {"step": 9})
    with pytest.warns(FramegenWarning, match=f"^{tmp_path} has no best checkpoint: using the last checkpoint "
                                             r"\(step 9\) instead$"):
        params, meta = checkpoint.restore_params(tmp_path, "best", _big_state(0.0)["params"])
    assert meta["step"] == 9 and float(params["w"][0, 0]) == 2.0


def test_a_save_cut_short_before_its_checksums_is_never_restored_and_is_saved_again(tmp_path):
    """A kill between orbax's rename and the checksums leaves the new step unsealed beside the sealed previous one,
    which stays the one restored; the next save of that step replaces it."""
    checkpoint.save(tmp_path, "last", _big_state(1.0), {"step": 3})
    keep = tmp_path / "keep"
    shutil.copytree(_step_dir(tmp_path), keep)
    checkpoint.save(tmp_path, "last", _big_state(2.0), {"step": 4})
    shutil.copytree(keep, tmp_path / "checkpoints" / "last" / "3")  # as before the deletion of the older step
    (tmp_path / "checkpoints" / "last" / "4" / "checksums.json").unlink()  # as if killed before sealing
    assert checkpoint.latest_step(tmp_path, "last") == 3
    state, meta = checkpoint.restore(tmp_path, "last", _big_state(0.0))
    assert meta["step"] == 3 and float(state["params"]["w"][0, 0]) == 1.0
    checkpoint.save(tmp_path, "last", _big_state(2.0), {"step": 4})
    assert [p.name for p in (tmp_path / "checkpoints" / "last").iterdir()] == ["4"]
    assert checkpoint.restore(tmp_path, "last", _big_state(0.0))[1]["step"] == 4


def test_a_checkpoint_without_checksums_loads_with_a_warning(tmp_path):
    checkpoint.save(tmp_path, "last", _big_state(1.0), {"step": 3})
    (_step_dir(tmp_path) / "checksums.json").unlink()  # as an older framegen saved it
    with pytest.warns(FramegenWarning, match=f"^{tmp_path} was saved without checksums"):
        state, _ = checkpoint.restore(tmp_path, "last", _big_state(0.0))
    assert float(state["params"]["w"][0, 0]) == 1.0
