"""framegen.display: the training progress lines and the live sweep table, rendered to a string console."""

import io

from rich.console import Console

from framegen.display import RichReporter, RichSweepDisplay


def _console():
    return Console(file=io.StringIO(), width=200, force_terminal=False)


def test_reporter_prints_one_line_per_epoch_with_its_scores(tmp_path):
    r = RichReporter()
    r.console = _console()
    r.start(total_steps=10, start_step=0, steps_per_epoch=5, run_dir=tmp_path)
    r.update(step=5, epoch=1, loss=0.5)
    r.epoch_end({"epoch": 1, "step": 5, "train_ce": 2.5, "val_ce": 2.0, "val_acc": 0.25, "val_mse": 0.4,
                 "val_snr_db": 3.98, "zero_mse": 1.0, "copy_mse": 1.2, "seconds": 7.0, "sample_flags": []})
    r.close()
    out = r.console.file.getvalue()
    assert f"run directory: {tmp_path}" in out and "(5 steps per epoch)" in out
    assert "epoch   1  step      5  train ce 2.500  val ce 2.000 acc 0.250  val 0.4000  snr +3.98 dB" in out
    assert "sample: ok" in out


def test_sweep_table_shows_each_trial_and_reports_a_finished_one():
    class Plan:
        trials = [type("T", (), {"key": "f40-t50"})(), type("T", (), {"key": "f80-t50"})()]

    d = RichSweepDisplay(console=_console())
    d.start(Plan(), {"f40-t50": {"status": "pending"}, "f80-t50": {"status": "skipped"}})
    d.trial_started("f40-t50")
    d.trial_reporter("f40-t50").update(step=3, epoch=1, loss=0.25)
    d.trial_done({"key": "f40-t50", "status": "done", "score": 0.5, "val_snr_db": 3.0, "steps": 10,
                  "train_seconds": 12.0})
    d.close()
    out = d.console.file.getvalue()
    assert "f40-t50: done: score 0.500, SNR +3.00 dB, 10 steps, 12 s" in out
    assert "f80-t50" in out and "skipped" in out
