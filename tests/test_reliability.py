"""Faults really injected into training: kill -9 (mid-step, mid-save), SIGINT/SIGTERM, NaN, a full or read-only disk,
a second process on the same run, a killed sweep. Each says what must survive: no finished epoch lost, every
checkpoint restorable, metrics.jsonl consistent, no non-finite WAV, one-line errors with the shell's exit codes.

The kill and signal tests drive the real ``framegen`` process (``python -m framegen.cli``) on a 3 s sine at 8 kHz
with the smallest model (F=40, T=50, GRU 2x199, batch 8: 62 steps an epoch); they share one JAX compile cache, so
only the first subprocess compiles. Disk faults use a small tmpfs and skip where mounting is not permitted.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import jax
import numpy as np
import pytest
from click.testing import CliRunner

from framegen import checkpoint, runs
from framegen.cli import cli
from framegen.config import load_config, save_config
from framegen.generate import CHUNK_SAMPLES, MIN_SCAN
from framegen.train import Reporter, init_state, prepare_song, resume_run, train
from tests.conftest import sine_song, tiny_config, write

TINY = ["-F", "40", "-T", "50", "--hidden", "199", "--batch-size", "8", "--sample-rate", "8000"]
SPE = 62  # steps per epoch of TINY on the 3 s song: ((21600 - 2040) // 40 + 1) / 8, rounded up
TMP = ".orbax-checkpoint-tmp"

# Runs framegen's CLI with a hook in orbax's commit: when the save of step $FG_KILL_AT_STEP under checkpoints/last
# has written every file but not yet renamed its temporary directory, it marks $FG_MARK and waits for $FG_GO, then
# SIGKILLs itself: a kill at the most delicate moment of a save, at a known step.
KILL_IN_SAVE = r"""
import os, signal, sys, time
from pathlib import Path
from orbax.checkpoint._src.path import atomicity
_finalize = atomicity.AtomicRenameTemporaryPath.finalize
async def finalize(self):
    final = Path(str(self.get_final()))
    if final.parent.name == "last" and final.name == os.environ["FG_KILL_AT_STEP"]:
        Path(os.environ["FG_MARK"]).write_text(str(self.get()))
        while not Path(os.environ["FG_GO"]).exists():
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGKILL)
    return await _finalize(self)
atomicity.AtomicRenameTemporaryPath.finalize = finalize
from framegen.cli import main
sys.argv[0] = "framegen"
main()
"""

pytestmark = pytest.mark.slow  # real processes killed, signalled and restarted: 5-40 s each


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """The subprocesses' environment: this session's XLA flags and one persistent compile cache."""
    cache = tmp_path_factory.mktemp("jax-cache")
    return {**os.environ, "JAX_COMPILATION_CACHE_DIR": str(cache), "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
            "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0", "FRAMEGEN_COMPILE_CACHE": str(cache),
            "PYTHONUNBUFFERED": "1"}


@pytest.fixture
def song(tmp_path):
    return write(tmp_path / "song.wav", sine_song(3.0))


def framegen(*args, env, cwd, hook=None, **popen) -> subprocess.Popen:
    code = ["-c", hook] if hook else ["-m", "framegen.cli"]
    return subprocess.Popen([sys.executable, *code, *map(str, args)], env=env, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **popen)


def finish(p: subprocess.Popen, timeout=240) -> tuple[int, str, str]:
    out, err = p.communicate(timeout=timeout)
    return p.returncode, out, err


def wait_for(cond, what: str, p: subprocess.Popen | None = None, timeout=180.0):
    t0 = time.monotonic()
    while not cond():
        if p is not None and p.poll() is not None:
            raise AssertionError(f"process ended (rc {p.returncode}) before {what}: {p.communicate()[1][-2000:]}")
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def rows_of(run: Path) -> list[dict]:
    return runs.read_metrics(run)


def restore_last(run: Path):
    """(state, meta) of checkpoints/last, restored with the run's own config: proves it is readable."""
    cfg = load_config(run)
    return checkpoint.restore(run, "last", init_state(cfg, 1))


def tmp_dirs(run: Path) -> list[Path]:
    return list((run / "checkpoints").glob(f"*/*{TMP}*"))


def assert_same_params(a, b):
    for x, y in zip(jax.tree.leaves(a["params"]), jax.tree.leaves(b["params"]), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def assert_one_line_error(err: str, fragment: str):
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert lines and lines[-1].startswith("Error: ") and fragment in lines[-1], err


# ------------------------------------------------------------------------------------------------ kill -9


def test_kill_9_mid_step_and_mid_save_loses_no_epoch_and_resumes_bit_exact(tmp_path, song, env):
    """kill -9 at a random moment of epoch 2, then inside the commit of a save (while a second process tries the
    run), then resume: every checkpoint restorable, no epoch lost, the final parameters equal an uninterrupted
    run's bit for bit, metrics.jsonl one row per epoch."""
    run = tmp_path / "run"
    rng = random.Random()
    delay = rng.uniform(0.0, 0.8)  # epoch 2 takes ~2 s: lands in a step, a validation or a save

    # 1. kill -9 at a random moment after epoch 1
    p = framegen("train", song, *TINY, "--epochs", "2", "--sample-every", "0", "--run-dir", run, env=env,
                 cwd=tmp_path)
    wait_for((run / "checkpoints" / "last" / str(SPE)).exists, "epoch 1's checkpoint", p)
    time.sleep(delay)
    p.kill()
    assert p.wait() == -signal.SIGKILL, f"finished before the kill (delay {delay:.2f} s)"
    _, meta = restore_last(run)
    saved = int(meta["step"])
    assert saved % SPE == 0 and saved >= SPE, f"delay {delay:.2f}: last checkpoint at step {saved}"
    epochs_rows = [r["step"] for r in rows_of(run)]
    assert epochs_rows[: saved // SPE] == [SPE * (i + 1) for i in range(saved // SPE)], epochs_rows
    assert (run / runs.LOCK_FILE).exists()  # left behind by the killed process: stale

    # 2. resume; kill -9 inside the next save's commit, after its files are written and before the rename
    if saved < 2 * SPE:
        mark, go = tmp_path / "mark", tmp_path / "go"
        hook_env = {**env, "FG_KILL_AT_STEP": str(saved + SPE), "FG_MARK": str(mark), "FG_GO": str(go)}
        p = framegen("train", "--resume", run, env=hook_env, cwd=tmp_path, hook=KILL_IN_SAVE)
        wait_for(mark.exists, "the save to commit", p)
        # a second process on a run held by a live one is refused (real holder: the process paused in its save)
        r = CliRunner().invoke(cli, ["train", "--resume", str(run)])
        assert r.exit_code == 1 and f"in use by another framegen process (PID {p.pid})" in r.output, r.output
        go.write_text("")
        assert p.wait(timeout=60) == -signal.SIGKILL
        assert tmp_dirs(run), "the kill was meant to land inside a save"
        _, meta = restore_last(run)
        assert int(meta["step"]) == saved  # the half-committed save is invisible; the previous one is intact
        assert [r["step"] for r in rows_of(run)][-1] == saved + SPE  # its row was written: resume must drop it

    # 3. resume to the end: takes over the stale lock, cleans the temporary directory, same result as no kill
    rc, out, err = finish(framegen("train", "--resume", run, env=env, cwd=tmp_path))
    assert rc == 0, err
    assert f"done: {2 * SPE} steps" in out
    assert not tmp_dirs(run) and not (run / runs.LOCK_FILE).exists()
    cfg = load_config(run)
    ref = train(cfg, tmp_path / "ref", prepare_song(song, cfg)[0])  # uninterrupted, same config and seed
    cut_state, cut_meta = restore_last(run)
    ref_state, _ = checkpoint.restore(ref.run_dir, "last", init_state(cfg, 1))
    assert int(cut_meta["step"]) == 2 * SPE
    assert_same_params(cut_state, ref_state)
    rows = rows_of(run)
    assert [r["epoch"] for r in rows] == [1, 2]
    assert [r["val_mse"] for r in rows] == [r["val_mse"] for r in ref.metrics]


# ------------------------------------------------------------------------------------------------ Ctrl-C, SIGTERM


@pytest.mark.parametrize("sig,times,code", [(signal.SIGINT, 1, 130), (signal.SIGTERM, 1, 143),
                                            (signal.SIGINT, 2, 130)])
def test_sigint_sigterm_save_and_say_how_to_resume(tmp_path, song, env, sig, times, code):
    """Ctrl-C / SIGTERM in epoch 2: exit 130/143, one line naming the resume command, a checkpoint at the step it
    stopped. A second Ctrl-C right after the first stops at once (even mid-save) with 130; what is saved is
    restorable and the run resumes."""
    run = tmp_path / "run"
    p = framegen("train", song, *TINY, "--epochs", "2", "--sample-every", "0", "--run-dir", run, env=env,
                 cwd=tmp_path)
    wait_for((run / "checkpoints" / "last" / str(SPE)).exists, "epoch 1's checkpoint", p)
    time.sleep(0.3)
    for _ in range(times):
        p.send_signal(sig)
        time.sleep(0.03)
    rc, out, err = finish(p)
    assert rc == code, err
    assert_one_line_error(err, f"--resume {run}")
    _, meta = restore_last(run)
    if times == 1:
        assert f"stopped by {sig.name} at step {meta['step']};" in err  # saved exactly where it stopped
        assert SPE <= meta["step"] < 2 * SPE
    else:
        assert meta["step"] >= SPE
    assert not (run / runs.LOCK_FILE).exists()
    if times == 1:
        return
    rc, out, err = finish(framegen("train", "--resume", run, env=env, cwd=tmp_path))
    assert rc == 0 and f"done: {2 * SPE} steps" in out, err
    assert [r["epoch"] for r in rows_of(run)] == [1, 2]


def test_ctrl_c_before_training_starts_exits_130(tmp_path, song, env):
    """Ctrl-C while the song loads or the step compiles (no handler of ours yet): 130, one line, no traceback."""
    p = framegen("train", song, *TINY, "--epochs", "1", "--run-dir", tmp_path / "run", env=env, cwd=tmp_path)
    wait_for(lambda: (tmp_path / "run").exists(), "the run directory", p)
    p.send_signal(signal.SIGINT)
    rc, _, err = finish(p)
    if rc == 0:
        pytest.skip("training finished before the signal arrived")
    assert rc == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("Error: ")


# ------------------------------------------------------------------------------------------------ generation


def test_killed_generation_leaves_a_valid_wav_of_what_was_written(tmp_path, song, env):
    """A streamed hour stopped by SIGTERM (exit 143, one line naming the partial WAV) or by kill -9 (no chance to
    clean up): x.partial.wav reads as a valid WAV holding whole chunks (its header was rewritten after each), the
    name x.wav is never taken by half an output."""
    import soundfile as sf

    run = tmp_path / "run"
    assert CliRunner().invoke(cli, ["train", str(song), *TINY, "--epochs", "1", "--sample-every", "0",
                                    "--run-dir", str(run)]).exit_code == 0
    for sig in (signal.SIGTERM, signal.SIGKILL):
        out = tmp_path / f"{sig.name}.wav"
        partial = out.with_name(f"{out.stem}.partial.wav")
        p = framegen("generate", "--run", run, "--seconds", "1h", "--out", out, "--no-score", env=env, cwd=tmp_path)

        chunk = -(-(CHUNK_SAMPLES // 40) // MIN_SCAN) * MIN_SCAN  # frames per chunk, the first frame before them

        def written(partial=partial, first=(1 + chunk) * 40):
            # the whole first piece: until its header is rewritten the header counts 0 samples, which libsndfile
            # reads as "to the end of the file", so a kill -9 inside the first write would keep part of it
            try:
                return sf.info(str(partial)).frames >= first
            except RuntimeError:  # not created yet
                return False

        wait_for(written, "the first chunk", p)
        p.send_signal(sig)
        code, _, err = finish(p)
        if sig == signal.SIGTERM:
            assert code == 143
            assert_one_line_error(err, "interrupted by SIGTERM after ")
            assert f"kept as a valid WAV in {partial}" in err
        else:
            assert code == -signal.SIGKILL
        y, rate = sf.read(partial, dtype="int16")
        assert rate == 8000 and len(y) == sf.info(str(partial)).frames > 0 and not out.exists()
        assert (len(y) // 40 - 1) % chunk == 0 and len(y) % 40 == 0


# ------------------------------------------------------------------------------------------------ NaN / Inf


def test_diverging_loss_stops_keeps_the_last_good_checkpoint_and_writes_no_nonfinite_wav(tmp_path, song):
    """One good epoch, then the learning rate is raised to 1e30 (edited config.json) and the run resumed: training
    stops with step, epoch, last finite loss and a hint; best/last still hold the good epoch; generate refuses a
    checkpoint whose parameters are not finite."""
    run = tmp_path / "run"
    r = CliRunner().invoke(cli, ["train", str(song), *TINY, "--epochs", "1", "--sample-every", "0",
                                 "--run-dir", str(run)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    good, meta = restore_last(run)
    assert meta["step"] == SPE
    cfg = load_config(run)
    save_config(replace(cfg, train=replace(cfg.train, lr=1e30, epochs=3)), run)

    r = CliRunner().invoke(cli, ["train", "--resume", str(run)])
    assert r.exit_code == 1, r.output
    msg = r.output.strip().splitlines()[-1]
    assert "training diverged: the loss became NaN/inf at step" in msg and "(epoch 2)" in msg, msg
    assert "last finite loss" in msg and "lower --lr" in msg and "checkpoint is kept" in msg
    state, meta = restore_last(run)
    assert meta["step"] == SPE
    assert_same_params(state, good)
    assert checkpoint.restore(run, "best", init_state(load_config(run), 1))[1]["step"] == SPE
    assert [row["epoch"] for row in rows_of(run)] == [1]

    out = tmp_path / "ok.wav"  # the kept checkpoint still generates
    r = CliRunner().invoke(cli, ["generate", "--run", str(run), "--seconds", "0.2", "--out", str(out)])
    assert r.exit_code == 0 and out.exists(), r.output

    # a non-finite checkpoint (injected) never becomes a WAV
    nan_state = jax.tree.map(lambda x: x * np.nan if np.issubdtype(x.dtype, np.floating) else x, state)
    checkpoint.save(run, "last", nan_state, {**meta, "step": 999})
    bad = tmp_path / "bad.wav"
    r = CliRunner().invoke(cli, ["generate", "--run", str(run), "--checkpoint", "last", "--seconds", "0.2",
                                 "--out", str(bad)])
    assert r.exit_code == 1 and "NaN or infinite" in r.output and "nothing was written" in r.output, r.output
    assert not bad.exists() and not list(tmp_path.glob(".bad.wav*"))


# ------------------------------------------------------------------------------------------------ disk faults


@pytest.fixture
def mount_tmpfs(tmp_path):
    """mount_tmpfs(size, ro=False) -> a fresh tmpfs directory; skips where mounting is not permitted."""
    mounted = []

    def mount(size: str, ro: bool = False, name: str = "disk") -> Path:
        where = tmp_path / name
        where.mkdir()
        opts = f"size={size}" + (",ro" if ro else "")
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)], capture_output=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
        mounted.append(where)
        return where

    yield mount
    for where in mounted:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def remount(where: Path, opts: str):
    subprocess.run(["mount", "-o", f"remount,{opts}", str(where)], check=True, capture_output=True)


def test_full_disk_stops_with_one_line_and_leaves_no_partial_checkpoint(tmp_path, song, mount_tmpfs, env):
    """An 11 MB run disk holds epoch 1 (two ~4.4 MB checkpoints) but not epoch 2's: one-line error and no
    traceback from the real process, the epoch-1 checkpoint intact, no temporary directory left, and once space
    is freed the run resumes and finishes."""
    disk = mount_tmpfs("11m")
    run = disk / "run"
    rc, _, err = finish(framegen("train", song, *TINY, "--epochs", "2", "--sample-every", "0", "--run-dir", run,
                                 env=env, cwd=tmp_path))
    assert rc == 1, err
    assert_one_line_error(err, "cannot save the best checkpoint")
    assert "No space left on device" in err and "previous checkpoint is kept" in err
    assert not tmp_dirs(run) and not (run / runs.LOCK_FILE).exists()
    _, meta = restore_last(run)
    assert meta["step"] == SPE
    remount(disk, "size=64m")
    result = resume_run(run)
    assert result.step == 2 * SPE
    assert [row["epoch"] for row in rows_of(run)] == [1, 2]  # the failed epoch's row was dropped and redone


def test_read_only_run_directory_is_refused_and_a_disk_turning_read_only_keeps_the_checkpoint(tmp_path, song,
                                                                                               mount_tmpfs):
    ro = mount_tmpfs("1m", ro=True, name="ro")
    r = CliRunner().invoke(cli, ["train", str(song), *TINY, "--run-dir", str(ro / "run")])
    assert r.exit_code == 1 and "cannot write to run directory" in r.output, r.output
    assert "Read-only file system" in r.output

    disk = mount_tmpfs("64m")

    class TurnReadOnly(Reporter):
        def epoch_end(self, row):
            remount(disk, "ro")

    song_norm, cfg = prepare_song(song, tiny_config(epochs=2, sample_every=0, log_every=10, lr=1e-3))
    with pytest.raises(Exception) as e:
        train(cfg, disk / "run", song_norm, reporter=TurnReadOnly())
    assert type(e.value).__name__ == "RunError" and "Read-only file system" in str(e.value), e.value
    _, meta = restore_last(disk / "run")
    assert meta["step"] == SPE


# ------------------------------------------------------------------------------------------------ the sweep


def test_kill_9_mid_sweep_then_rerun_finishes_only_what_is_missing(tmp_path, env):
    """A 1x2 sweep killed -9 during its second trial; the same command again keeps the first trial, resumes the
    second from its checkpoint, and writes complete, consistent results files."""
    if not (Path(__file__).parents[1] / "framegen" / "sweep").exists():
        pytest.skip("framegen sweep does not exist yet")
    song = write(tmp_path / "song.wav", sine_song(3.0))
    out = tmp_path / "sweep"
    args = ["sweep", song, "-F", "40", "-T", "50,51", "--budget-samples", str(8 * 50 * 40 * 2 * SPE),
            "--sample-rate", "8000", "--hidden", "199", "--batch-size", "8", "--lr", "1e-3", "--out", out]
    p = framegen(*args, env=env, cwd=tmp_path)
    second = out / "f40-t51"

    def second_trial_has_an_epoch():
        return (second / "metrics.jsonl").exists() and len(rows_of(second)) >= 1

    wait_for(second_trial_has_an_epoch, "the second trial's first epoch", p)
    p.kill()
    assert p.wait() == -signal.SIGKILL
    doc = json.loads((out / "results.json").read_text())
    status = {t["key"]: t["status"] for t in doc["trials"]}
    assert status["f40-t50"] == "done" and status["f40-t51"] != "done", status
    first_done = next(t for t in doc["trials"] if t["key"] == "f40-t50")

    rc, stdout, err = finish(framegen(*args, env=env, cwd=tmp_path))
    assert rc == 0, err
    assert "done (kept)" in stdout and "resume" in stdout, stdout
    doc = json.loads((out / "results.json").read_text())
    by_key = {t["key"]: t for t in doc["trials"]}
    assert {k: t["status"] for k, t in by_key.items()} == {"f40-t50": "done", "f40-t51": "done"}
    assert by_key["f40-t50"] == first_done  # untouched
    assert [r["epoch"] for r in rows_of(second)] == [1, 2]
    csv_lines = (out / "results.csv").read_text().strip().splitlines()
    assert len(csv_lines) == 3 and all("done" in line for line in csv_lines[1:])
