"""framegen.runs: run directory names, latest run, the run lock, metrics.jsonl."""

import fcntl
import os

import pytest

from framegen import runs
from framegen.errors import FramegenWarning, RunError


def test_a_second_process_cannot_train_the_same_run(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / runs.LOCK_FILE).write_text("1\n")
    holder = os.open(run / runs.LOCK_FILE, os.O_RDWR)  # a live holder: the flock held through another descriptor
    fcntl.flock(holder, fcntl.LOCK_EX)
    with pytest.raises(Exception, match="in use by another framegen process"):
        with runs.run_lock(run):
            pass
    os.close(holder)  # as the kernel does when the holder dies
    (run / runs.LOCK_FILE).write_text("999999999\n")  # a dead process: its lock is taken over
    with runs.run_lock(run):
        assert (run / runs.LOCK_FILE).read_text().strip() == str(os.getpid())


def test_new_run_dir_names_the_song_and_sizes_and_never_reuses_a_directory(tmp_path):
    a = runs.new_run_dir("/music/My Song.wav", 800, 100, tmp_path)
    assert a.parent == tmp_path and a.name.startswith("My Song-f800-t100-")
    a.mkdir()
    b = runs.new_run_dir("/music/My Song.wav", 800, 100, tmp_path)
    assert b != a and not b.exists()


def test_latest_run_is_the_most_recent_config_and_says_how_to_make_one(tmp_path):
    with pytest.raises(RunError, match="no run found"):
        runs.latest_run(tmp_path)
    for i, name in enumerate(["old", "new"]):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text("{}")
        os.utime(tmp_path / name / "config.json", (1000 + i, 1000 + i))
    (tmp_path / "no-config").mkdir()
    assert runs.latest_run(tmp_path) == tmp_path / "new"


def test_metrics_rows_round_trip_skip_a_torn_line_and_truncate_to_a_step(tmp_path):
    for step in (10, 20, 30):
        runs.append_metrics(tmp_path, {"step": step, "val_mse": float("nan") if step == 20 else 0.5})
    with open(tmp_path / runs.METRICS_FILE, "a") as f:
        f.write('{"step": 40, "val')  # killed mid-write
    rows = runs.read_metrics(tmp_path)
    assert [r["step"] for r in rows] == [10, 20, 30] and rows[1]["val_mse"] is None  # NaN is stored as null
    runs.truncate_metrics(tmp_path, 20)
    assert [r["step"] for r in runs.read_metrics(tmp_path)] == [10, 20]
    assert (tmp_path / runs.METRICS_FILE).read_text().count("\n") == 2


def test_damaged_metrics_lines_are_named_in_a_warning_and_dropped_by_a_resume(tmp_path):
    import warnings

    path = tmp_path / runs.METRICS_FILE
    path.write_bytes(b'{"step": 10}\n{"st\xff\x00ep": 1\n[1, 2]\n{"step": 20}\n{"step": 3')  # ends torn by a kill
    with pytest.warns(FramegenWarning) as caught:
        assert [r["step"] for r in runs.read_metrics(tmp_path)] == [10, 20]
    assert [str(w.message) for w in caught] == [f"{path} is damaged: 2 of its 5 lines are not metrics rows (line 2 "
                                                f"first); they are left out of the curves and the report, and a "
                                                f"resume drops them"]
    with pytest.warns(FramegenWarning, match="a resume drops them"):
        runs.truncate_metrics(tmp_path, 20)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # clean now: no warning at all
        assert [r["step"] for r in runs.read_metrics(tmp_path)] == [10, 20]
    path.write_text('{"step": 10}\nnot json\n')  # junk as the last line is damage too, not a torn row
    with pytest.warns(FramegenWarning, match="1 of its 2 lines"):
        runs.read_metrics(tmp_path)


def test_the_lock_names_its_holder_and_is_free_again_when_the_holder_is_gone(tmp_path):
    with runs.run_lock(tmp_path) as path:
        assert path.read_text() == f"{os.getpid()}\n"
        with pytest.raises(RunError, match=rf"in use by another framegen process \(PID {os.getpid()}\)"):
            with runs.run_lock(tmp_path):
                pass
    assert not path.exists()
    with runs.run_lock(tmp_path):  # released: taken again at once
        pass
