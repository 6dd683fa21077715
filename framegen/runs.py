"""Run directories: their layout and names, finding the latest one, the lock that keeps one writer, metrics files.

A run directory holds ``config.json``, ``checkpoints/{last,best}/`` (orbax), ``metrics.jsonl``, ``loss.png``,
``samples/epoch-NNN.wav`` and, while a training process owns it, ``train.lock`` (flock-ed, naming that process's PID).
"""

import datetime as _dt
import fcntl
import json
import math
import os
import warnings
from contextlib import contextmanager
from pathlib import Path

from framegen.atomic import write_text
from framegen.config import CONFIG_FILE
from framegen.errors import FramegenWarning, RunError

RUNS_ROOT = Path("runs")
METRICS_FILE = "metrics.jsonl"
LOCK_FILE = "train.lock"


def new_run_dir(song_path, frame_size: int, seq_len: int, root: Path = RUNS_ROOT) -> Path:
    """``runs/<song-stem>-f<F>-t<T>-<timestamp>``, never an existing directory."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{Path(song_path).stem}-f{frame_size}-t{seq_len}-{stamp}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def make_run_dir(path: Path) -> Path:
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise RunError(f"cannot write to run directory {path} ({e.strerror or e}): pass a writable --run-dir") from None
    return path


def latest_run(root: Path = RUNS_ROOT) -> Path:
    """The most recently modified run under ``root`` that has a config."""
    root = Path(root)
    runs = [p.parent for p in root.glob(f"*/{CONFIG_FILE}")] if root.is_dir() else []
    if not runs:
        raise RunError(f"no run found under {root}/: train one with 'framegen train SONG' or pass --run RUN_DIR")
    return max(runs, key=lambda p: (p / CONFIG_FILE).stat().st_mtime)


def _holder(fd: int) -> str:
    """The PID the lock's holder wrote into the lock file ("unknown" while it has not written it yet)."""
    try:
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    except OSError:
        text = ""
    return text if text.isdigit() else "unknown"


@contextmanager
def run_lock(run_dir: Path):
    """Hold ``train.lock`` for the duration: an exclusive ``flock`` on it, which the kernel releases when the
    holding process ends however it ends (kill -9 included), so a dead process's lock is simply taken over and a
    reused PID can never look like a holder. The file names the holder's PID for the refusal message."""
    path = Path(run_dir) / LOCK_FILE
    while True:
        try:
            # read-only: flock needs no write access, and a file held open for writing would keep the file system
            # from being remounted read-only under a running training (a fault the tests inject)
            fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
        except OSError as e:
            raise RunError(f"cannot create the lock {path} ({e.strerror or e}): pass a writable --run-dir") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _holder(fd)
            os.close(fd)
            raise RunError(
                f"{run_dir} is in use by another framegen process (PID {pid}): wait for it to finish, "
                f"or stop it, or choose another --run-dir"
            ) from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the previous holder removed the file between our open and our lock: lock the new one
    try:
        try:
            with open(path, "w") as f:
                f.write(f"{os.getpid()}\n")
        except OSError as e:  # disk full: refused as before; the lock is released and removed on the way out
            raise RunError(f"cannot write the lock {path} ({e.strerror or e}): free disk space") from None
        yield path
    finally:
        try:
            path.unlink(missing_ok=True)  # before the unlock: a waiting process then sees that the file changed
        except OSError:
            pass  # a run directory that became read-only: the error that stopped training is the one to report
        os.close(fd)


def _clean(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def append_metrics(run_dir: Path, row: dict) -> None:
    try:
        with open(Path(run_dir) / METRICS_FILE, "a") as f:
            f.write(json.dumps({k: _clean(v) for k, v in row.items()}) + "\n")
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:  # a torn line is skipped by read_metrics and dropped by the next resume
        raise RunError(f"cannot write {METRICS_FILE} in {run_dir} ({e.strerror or e}): free disk space or pass a "
                       f"writable --run-dir; resume later with 'framegen train --resume {run_dir}'") from None


def read_metrics(run_dir: Path) -> list[dict]:
    """Rows of ``metrics.jsonl``; a torn last line (killed mid-write) is ignored, any other line that is not a row
    is skipped with a warning.

    The log carries no checksum: it is appended every epoch, and nothing a run trains or generates is read from it
    (a resume takes its step, best score and time from the checkpoint); it draws the loss curves and the report."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return []
    rows, bad = [], []
    lines = path.read_bytes().decode(errors="replace").splitlines()
    for i, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if isinstance(row, dict):
            rows.append(row)
        elif i < len(lines) or not line.startswith("{"):  # not a row torn by a kill
            bad.append(i)
    if bad:
        warnings.warn(f"{path} is damaged: {len(bad)} of its {len(lines)} lines are not metrics rows (line {bad[0]} "
                      f"first); they are left out of the curves and the report, and a resume drops them",
                      FramegenWarning, stacklevel=2)
    return rows


def truncate_metrics(run_dir: Path, step: int) -> None:
    """Drop rows after ``step`` (written after the checkpoint a resume starts from) and any torn line."""
    rows = [r for r in read_metrics(run_dir) if isinstance(r.get("step", 0), int | float) and r.get("step", 0) <= step]
    write_text(Path(run_dir) / METRICS_FILE, "".join(json.dumps(r) + "\n" for r in rows))
