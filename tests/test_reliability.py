"""Faults really injected into training: kill -9 (mid-step, mid-save), SIGINT/SIGTERM, NaN, a full or read-only disk,
a second process on the same run, a killed sweep. Each says what must survive: no finished epoch lost, every
checkpoint restorable, metrics.jsonl consistent, no non-finite WAV, one-line errors with the shell's exit codes.

The kill and signal tests drive the real ``framegen`` process (``python -m framegen.cli``) on a 3 s sine at 8 kHz
with the smallest model (F=40, T=50, GRU 2x199, batch 8: 62 steps an epoch); they share one JAX compile cache, so
only the first subprocess compiles. None races the machine's speed: a signal goes to a process that is still running
(asserted) and cannot be done, because its run is far longer than the test waits or it is held where the signal
must land (HOLD). Disk faults use a small tmpfs and skip where mounting is not permitted.
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
from framegen.rollout import MIN_SCAN
from framegen.stream import CHUNK_SAMPLES
from framegen.train import Reporter, init_state, prepare_song, resume_run, train
from tests.conftest import sine_song, tiny_config, write

TINY = ["-F", "40", "-T", "50", "--hidden", "199", "--batch-size", "8", "--sample-rate", "8000"]
SPE = 62  # steps per epoch of TINY on the 3 s song: ((21600 - 2040) // 40 + 1) / 8, rounded up
TMP = ".orbax-checkpoint-tmp"

# Runs framegen's CLI holding it where a test must signal or kill it, so that the signal certainly arrives there
# however fast the machine: it writes $FG_MARK and waits for $FG_GO (without $FG_GO, until it is signalled or killed);
# the mark says "caught" once a first signal was taken (two signals sent before the handler runs would be one).
# FG_HOLD=compile: just before the training step compiles. Otherwise inside orbax's commit: the first save of a
# checkpoints/last under a path holding $FG_IN (default any) that commits once $FG_ARM exists (default at once) holds
# when every file is written but its temporary directory not yet renamed, then, after $FG_GO, SIGKILLs itself: a
# kill at the most delicate moment of a save.
HOLD = r"""
import os, signal, sys, time
from pathlib import Path

def hold():
    from framegen import interrupts
    mark, go = Path(os.environ["FG_MARK"]), os.environ.get("FG_GO")
    mark.write_text("")
    give_up = time.monotonic() + 600  # the test is gone (killed itself): end rather than hold for ever
    while not (go and Path(go).exists()):
        if time.monotonic() > give_up:
            os._exit(99)
        if interrupts.stop_requested() and not mark.read_text():
            mark.write_text("caught")  # a loop's handler took a first signal: a second cannot merge with it
        time.sleep(0.02)

if os.environ.get("FG_HOLD") == "compile":
    import framegen.train as train
    _make = train.make_train_step
    def make_train_step(*args, **kwargs):
        hold()
        return _make(*args, **kwargs)
    train.make_train_step = make_train_step
else:
    from orbax.checkpoint._src.path import atomicity
    _finalize = atomicity.AtomicRenameTemporaryPath.finalize
    async def finalize(self):
        final, arm = Path(str(self.get_final())), os.environ.get("FG_ARM")
        if (final.parent.name == "last" and os.environ.get("FG_IN", "") in str(final)
                and (arm is None or Path(arm).exists()) and not Path(os.environ["FG_MARK"]).exists()):
            hold()
            os.kill(os.getpid(), signal.SIGKILL)
        return await _finalize(self)
    atomicity.AtomicRenameTemporaryPath.finalize = finalize
from framegen.cli import main
sys.argv[0] = "framegen"
main()
"""
LONG = ["--epochs", "1000"]  # 62,000 steps: no machine ends them between epoch 1's checkpoint and a signal

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


_started: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _no_process_left():
    """A test that fails while a process runs (or holds, waiting for the test) does not leave it behind."""
    yield
    while _started:
        p = _started.pop()
        if p.poll() is None:
            p.kill()
            p.wait()


def framegen(*args, env, cwd, hook=None, **popen) -> subprocess.Popen:
    code = ["-c", hook] if hook else ["-m", "framegen.cli"]
    p = subprocess.Popen([sys.executable, *code, *map(str, args)], env=env, cwd=cwd, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, **popen)
    _started.append(p)
    return p


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


def last_step(run: Path) -> int:
    """The step of the newest committed checkpoints/last (-1: none yet); temporary directories are not steps."""
    folder = run / "checkpoints" / "last"
    return max((int(d.name) for d in folder.iterdir() if d.name.isdigit()), default=-1) if folder.is_dir() else -1


def signal_running(p: subprocess.Popen, sig: int, what: str):
    assert p.poll() is None, f"the process ended (rc {p.returncode}) before {what}: {p.communicate()[1][-2000:]}"
    p.send_signal(sig)


# ------------------------------------------------------------------------------------------------ kill -9


def test_kill_9_mid_step_and_mid_save_loses_no_epoch_and_resumes_bit_exact(tmp_path, song, env):
    """kill -9 at a random moment of epoch 2, then inside the commit of a save (while a second process tries the
    run), then resume: every checkpoint restorable, no epoch lost, the final parameters equal an uninterrupted
    run's bit for bit, metrics.jsonl one row per epoch."""
    run = tmp_path / "run"
    rng = random.Random()
    delay = rng.uniform(0.0, 0.8)  # epoch 2 takes ~2 s here: lands in a step, a validation or a save

    # 1. kill -9 at a random moment after epoch 1; epoch 2's save holds in its commit (HOLD), so the run cannot
    # end before the kill however fast the machine: a late kill lands in that commit
    arm, held = tmp_path / "arm", tmp_path / "held"
    p = framegen("train", song, *TINY, "--epochs", "2", "--sample-every", "0", "--run-dir", run,
                 env={**env, "FG_ARM": str(arm), "FG_MARK": str(held)}, cwd=tmp_path, hook=HOLD)
    wait_for((run / "checkpoints" / "last" / str(SPE)).exists, "epoch 1's checkpoint", p)
    arm.write_text("")  # epoch 1's commit is done (its directory is renamed): the next to commit is epoch 2's
    time.sleep(delay)
    p.kill()
    assert p.wait() == -signal.SIGKILL, f"ended before the kill (delay {delay:.2f} s): {p.communicate()[1][-2000:]}"
    _, meta = restore_last(run)
    assert int(meta["step"]) == SPE, f"delay {delay:.2f}: last checkpoint at step {meta['step']}"
    assert [r["step"] for r in rows_of(run)][:1] == [SPE]
    assert (run / runs.LOCK_FILE).exists()  # left behind by the killed process: stale

    # 2. resume; kill -9 inside the next save's commit, after its files are written and before the rename
    mark, go = tmp_path / "mark", tmp_path / "go"
    p = framegen("train", "--resume", run, env={**env, "FG_MARK": str(mark), "FG_GO": str(go)}, cwd=tmp_path,
                 hook=HOLD)
    wait_for(mark.exists, "the save to commit", p)
    # a second process on a run held by a live one is refused (real holder: the process paused in its save)
    r = CliRunner().invoke(cli, ["train", "--resume", str(run)])
    assert r.exit_code == 1 and f"in use by another framegen process (PID {p.pid})" in r.output, r.output
    go.write_text("")
    assert p.wait(timeout=60) == -signal.SIGKILL
    assert tmp_dirs(run), "the kill was meant to land inside a save"
    _, meta = restore_last(run)
    assert int(meta["step"]) == SPE  # the half-committed save is invisible; the previous one is intact
    assert [r["step"] for r in rows_of(run)][-1] == 2 * SPE  # its row was written: resume must drop it

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


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_sigint_sigterm_save_and_say_how_to_resume(tmp_path, song, env, sig, code):
    """Ctrl-C / SIGTERM after epoch 1 of a run too long to end first: exit 130/143, one line naming the resume
    command, a checkpoint at the step it stopped."""
    run = tmp_path / "run"
    p = framegen("train", song, *TINY, *LONG, "--sample-every", "0", "--run-dir", run, env=env, cwd=tmp_path)
    wait_for(lambda: last_step(run) >= SPE, "epoch 1's checkpoint", p)
    time.sleep(0.3)
    signal_running(p, sig, sig.name)
    rc, out, err = finish(p)
    assert rc == code, err
    assert_one_line_error(err, f"--resume {run}")
    _, meta = restore_last(run)
    assert f"stopped by {sig.name} at step {meta['step']}; checkpoint saved" in err  # saved exactly where it stopped
    assert meta["step"] >= SPE and rows_of(run)[0]["step"] == SPE
    assert not (run / runs.LOCK_FILE).exists()


def test_a_second_ctrl_c_stops_at_once_wherever_it_lands_and_the_run_resumes(tmp_path, song, env):
    """A second Ctrl-C 0 to 0.5 s after the first (in the step, the save, the error's printing, the interpreter's
    teardown, or after the exit), and one while the process holds inside a save: always 130, one line naming the
    resume command, no traceback; the run resumes from what was saved each time and ends with one row per epoch.
    (A KeyboardInterrupt raised by the second landed in JAX's GC callback: swallowed, with a traceback.)"""
    run = tmp_path / "run"
    delays = [0.0, None, 0.02, 0.1, 0.5]  # None: both sent while an epoch's save holds in its commit (HOLD)
    saved = 0
    for i, delay in enumerate(delays):
        held = tmp_path / f"held{i}"
        args = ("train", "--resume", run) if i else ("train", song, *TINY, *LONG, "--sample-every", "0",
                                                     "--run-dir", run)
        if delay is None:  # resumed: the next save of checkpoints/last to commit holds
            p = framegen(*args, env={**env, "FG_MARK": str(held)}, cwd=tmp_path, hook=HOLD)
            wait_for(held.exists, "a save to commit", p)
            signal_running(p, signal.SIGINT, "the first Ctrl-C")
            wait_for(lambda: held.read_text() == "caught", "the first Ctrl-C to be taken", p)
        else:
            p = framegen(*args, env=env, cwd=tmp_path)
            wait_for(lambda: last_step(run) > saved, "a new epoch's checkpoint", p)  # the loop is running
            signal_running(p, signal.SIGINT, "the first Ctrl-C")
            time.sleep(delay)
        if p.poll() is None:  # once it has exited there is nothing left to stop: that moment is covered too
            p.send_signal(signal.SIGINT)
        rc, _, err = finish(p)
        assert rc == 130, (delay, err)
        assert "Exception ignored" not in err, (delay, err)
        assert_one_line_error(err, f"resume with 'framegen train --resume {run}'")
        _, meta = restore_last(run)
        if delay is None:  # certainly mid-save: stopped at once, that save never committed
            assert err.strip().splitlines()[-1].startswith("Error: stopped at once by a second SIGINT; steps since")
            assert tmp_dirs(run) and meta["step"] == saved
        else:
            assert meta["step"] > saved, (delay, err)
        saved = int(meta["step"])
    epochs = saved // SPE + 1
    rc, out, err = finish(framegen("train", "--resume", run, "--epochs", epochs, env=env, cwd=tmp_path))
    assert rc == 0 and f"done: {epochs * SPE} steps" in out, err
    assert [r["epoch"] for r in rows_of(run)] == list(range(1, epochs + 1))
    assert not tmp_dirs(run) and not (run / runs.LOCK_FILE).exists()


def test_ctrl_c_before_training_starts_exits_130(tmp_path, song, env):
    """Ctrl-C while the step is about to compile (held there: no handler of ours yet): 130, one line, no
    traceback."""
    held = tmp_path / "held"
    p = framegen("train", song, *TINY, "--epochs", "1", "--run-dir", tmp_path / "run",
                 env={**env, "FG_HOLD": "compile", "FG_MARK": str(held)}, cwd=tmp_path, hook=HOLD)
    wait_for(held.exists, "the step to compile", p)
    signal_running(p, signal.SIGINT, "the Ctrl-C")
    rc, _, err = finish(p)
    assert rc == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "Error: interrupted by Ctrl-C", err


# ------------------------------------------------------------------------------------------------ generation


def test_killed_generation_leaves_a_valid_wav_of_what_was_written(tmp_path, song, env):
    """Ten streamed hours stopped by SIGTERM (exit 143, one line naming the partial WAV), by kill -9 (no chance to
    clean up) or by two Ctrl-C (130, one line, the second ends it at once) once the first chunk is written:
    x.partial.wav reads as a valid WAV holding whole chunks (its header was rewritten after each), the name x.wav
    is never taken by half an output. (An hour was once written whole
    before SIGTERM took effect: the exception its handler raised can be swallowed by JAX's GC callback; ten hours
    leave no machine time to finish first.)"""
    import soundfile as sf

    run = tmp_path / "run"
    assert CliRunner().invoke(cli, ["train", str(song), *TINY, "--epochs", "1", "--sample-every", "0",
                                    "--run-dir", str(run)]).exit_code == 0
    chunk = -(-(CHUNK_SAMPLES // 40) // MIN_SCAN) * MIN_SCAN  # frames per chunk, the first frame before them
    for name, sigs in (("sigterm", [signal.SIGTERM]), ("kill", [signal.SIGKILL]),
                       ("twice", [signal.SIGINT, signal.SIGINT])):
        out = tmp_path / f"{name}.wav"
        partial = out.with_name(f"{out.stem}.partial.wav")
        p = framegen("generate", "--run", run, "--seconds", "10h", "--out", out, "--no-score", "--select", "off",
                     "--crossfade", "0", env=env, cwd=tmp_path)  # the MSE feedback loop, whose chunks are counted

        def written(partial=partial, first=(1 + chunk) * 40):
            # the whole first piece: until its header is rewritten the header counts 0 samples, which libsndfile
            # reads as "to the end of the file", so a kill -9 inside the first write would keep part of it
            try:
                return sf.info(str(partial)).frames >= first
            except RuntimeError:  # not created yet
                return False

        wait_for(written, "the first chunk", p)
        signal_running(p, sigs[0], f"{sigs[0].name} (the first chunk is written)")
        if len(sigs) == 2:  # the second lands in a chunk's compute or write, or the exit, or after it
            time.sleep(0.05)
            if p.poll() is None:
                p.send_signal(sigs[1])
        code, _, err = finish(p)
        assert code != 0, f"all 10 hours written: {name} was lost ({err[-2000:]})"
        if name == "kill":
            assert code == -signal.SIGKILL
        else:
            assert code == 128 + sigs[0], err
            assert_one_line_error(err, f"kept as a valid WAV in {partial}")
            assert (f"interrupted by {sigs[0].name} after " in err and "of 36000 s: the " in err
                    or len(sigs) == 2 and "interrupted at once by a second SIGINT: the whole chunks written" in err)
        y, rate = sf.read(partial, dtype="int16")
        assert rate == 8000 and len(y) == sf.info(str(partial)).frames > 0 and not out.exists()
        assert len(y) < 36000 * 8000
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
    second = out / "f40-t51"
    arm, held = tmp_path / "arm", tmp_path / "held"
    # the second trial's epoch-2 save holds in its commit (HOLD), so the sweep cannot end before the kill
    p = framegen(*args, env={**env, "FG_IN": second.name, "FG_ARM": str(arm), "FG_MARK": str(held)}, cwd=tmp_path,
                 hook=HOLD)
    wait_for(lambda: last_step(second) > 0, "the second trial's first epoch", p)
    arm.write_text("")
    signal_running(p, signal.SIGKILL, "the kill")
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
