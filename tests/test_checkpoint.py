"""framegen.checkpoint: orbax save/restore of ``last`` and ``best``, refusals, and what a repeated save does."""

import shutil
from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from framegen import checkpoint
from framegen.errors import RunError


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
