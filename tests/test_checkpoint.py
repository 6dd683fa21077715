"""framegen.checkpoint: orbax save/restore of ``last`` and ``best``, refusals, and what a repeated save does."""

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
