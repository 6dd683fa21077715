"""Data parallelism: the batch split over 2 (forced host) devices gives the single-device step's loss and params."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from framegen.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]

CHILD = textwrap.dedent("""
    import json
    import jax, jax.numpy as jnp, numpy as np
    from framegen import data, train
    from framegen.errors import UsageError
    from tests.conftest import sine_song, tiny_config

    assert len(jax.devices()) == 2, jax.devices()
    cfg = tiny_config(batch_size=8)
    song = sine_song(6.0)
    split = data.check_fits(len(song), cfg.data)
    out = {}
    for name, devices in (("one", jax.devices()[:1]), ("two", jax.devices())):
        mesh = train.data_mesh(cfg.train.batch_size, devices)
        state, song_d = train.replicate((train.init_state(cfg, 10), jnp.asarray(song)), mesh)
        step = train.make_train_step(cfg, split, 10, devices=devices)
        hlo = step.lower(state, song_d).compile().as_text()
        losses = []
        for _ in range(2):
            state, loss = step(state, song_d)
            losses.append(float(loss))
        out[name] = {"losses": losses, "all_reduce": "all-reduce" in hlo,
                     "devices": len(state["params"]["w_h_0"].sharding.device_set),
                     "params": {k: np.asarray(v).tolist() for k, v in state["params"].items() if k != "head"}}
    try:
        train.make_train_step(tiny_config(batch_size=7), split, 10)
        out["odd_batch"] = "accepted"
    except UsageError as e:
        out["odd_batch"] = str(e)
    print("RESULT " + json.dumps(out))
""")


@pytest.mark.slow
def test_two_devices_match_one_device():
    import numpy as np

    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu")
    r = subprocess.run([sys.executable, "-c", CHILD], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
    assert lines, r.stderr[-3000:]
    out = json.loads(lines[0][len("RESULT "):])
    one, two = out["one"], out["two"]
    assert two["all_reduce"] and not one["all_reduce"]  # the 2-device step really splits the batch
    assert two["devices"] == 2 and one["devices"] == 1  # and keeps the params replicated on both
    np.testing.assert_allclose(two["losses"], one["losses"], rtol=1e-6, atol=1e-7)
    for k, v in one["params"].items():
        np.testing.assert_allclose(np.array(two["params"][k]), np.array(v), rtol=1e-5, atol=1e-6, err_msg=k)
    assert "--batch-size 7" in out["odd_batch"] and "multiple of 2" in out["odd_batch"]


def test_one_device_mesh_accepts_any_batch():
    from framegen.train import data_mesh

    import jax

    assert data_mesh(7, jax.devices()[:1]).shape == {"data": 1}
    with pytest.raises(UsageError, match="multiple of 2"):
        data_mesh(7, [jax.devices()[0]] * 2)
