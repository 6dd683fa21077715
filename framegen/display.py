"""Every rich progress display: the training progress bar with one line per epoch (``RichReporter``), the live
sweep table (``RichSweepDisplay``) and generation's bar (``GenerateProgress``). The library's defaults
(``train.Reporter``, ``sweep.SweepDisplay``, no ``progress`` for ``generate``) are silent.
"""

import time

from framegen.sweep.results import fmt
from framegen.sweep.run import SweepDisplay


def _print_epoch(console, row: dict) -> None:
    train = f"train ce {row['train_ce']:.3f}" if "train_ce" in row else f"train {row['train_mse']:.4f}"
    vq = f"  val ce {row['val_ce']:.3f} acc {row['val_acc']:.3f}" if "val_ce" in row else ""
    flags = f"  sample: {', '.join(row['sample_flags']) or 'ok'}" if "sample_flags" in row else ""
    console.print(
        f"epoch {row['epoch']:>3}  step {row['step']:>6}  {train}{vq}  val {row['val_mse']:.4f}  "
        f"snr {row['val_snr_db']:+.2f} dB  (zero {row['zero_mse']:.4f}, copy {row['copy_mse']:.4f})  "
        f"{row['seconds']:.0f}s{flags}"
    )


class RichReporter:
    """A rich progress bar (epoch, step, loss, ETA) and one line per epoch."""

    def __init__(self):
        from rich.console import Console

        self.console = Console(stderr=True)
        self.progress = None

    def start(self, *, total_steps, start_step, steps_per_epoch, run_dir):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.console.print(f"run directory: {run_dir}  ({steps_per_epoch} steps per epoch)")
        self.spe = steps_per_epoch
        self.progress = Progress(
            TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"), TimeRemainingColumn(), console=self.console, transient=True,
        )
        self.progress.start()
        self.task = self.progress.add_task("train", total=total_steps, completed=start_step,
                                           epoch=start_step // steps_per_epoch + 1, loss="-")

    def update(self, *, step, epoch, loss):
        self.progress.update(self.task, completed=step, epoch=epoch, loss=f"{loss:.4f}")

    def epoch_end(self, row):
        _print_epoch(self.progress.console if self.progress else self.console, row)

    def message(self, text):
        self.console.print(text)

    def close(self):
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


class GenerateProgress:
    """A rich bar for ``generate(progress=...)``: seconds of audio written of the total, and the real-time factor
    (seconds of audio per wall second, each stream), counted from the first call (compiling excluded)."""

    def __init__(self, console=None):
        from rich.console import Console

        self.console = console or Console(stderr=True)
        self.progress = None

    def __call__(self, done_s: float, total_s: float):
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        now = time.monotonic()
        if self.progress is None:
            self.progress = Progress(
                TextColumn("generating"), BarColumn(),
                TextColumn("{task.completed:,.0f} / {task.total:,.0f} s written"),
                TextColumn("{task.fields[rtf]}"), TimeRemainingColumn(), console=self.console, transient=True,
            )
            self.progress.start()
            self.task = self.progress.add_task("generate", total=total_s, completed=done_s, rtf="")
            self.t0, self.s0 = now, done_s
            return
        rtf = (done_s - self.s0) / max(now - self.t0, 1e-9)
        self.progress.update(self.task, completed=done_s, rtf=f"{rtf:,.0f}x real time")

    def close(self):
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


class RichSweepDisplay(SweepDisplay):
    """A rich live table: one row per trial with its status, steps, loss, score and time."""

    def __init__(self, console=None):
        from rich.console import Console

        self.console = console or Console(stderr=True)
        self.live = None
        self.rows = {}
        self.order = []

    def start(self, plan, records):
        from rich.live import Live

        self.order = [t.key for t in plan.trials]
        self.rows = {k: dict(r) for k, r in records.items()}
        self.t0 = {}
        self.live = Live(self._table(), console=self.console, refresh_per_second=2, transient=False)
        self.live.start()

    def _table(self):
        from rich.table import Table

        table = Table(title="sweep", show_lines=False)
        for col in ("trial", "status", "steps", "loss", "score", "SNR dB", "time"):
            table.add_column(col, justify="left" if col in ("trial", "status") else "right")
        for key in self.order:
            r = self.rows[key]
            style = {"done": "green", "failed": "red", "skipped": "dim", "running": "yellow",
                     "interrupted": "magenta"}.get(r["status"], "")
            step = r.get("steps") or r.get("_step") or 0
            steps = "-" if r["status"] == "skipped" else f"{step:,}" + (f"/{r['max_steps']:,}" if r.get("max_steps")
                                                                      else "")
            secs = r.get("train_seconds")
            if r["status"] == "running" and key in self.t0:
                secs = time.monotonic() - self.t0[key]
            table.add_row(key, r["status"], steps, fmt(r.get("_loss"), ".4f"), fmt(r.get("score")),
                          fmt(r.get("val_snr_db"), "+.2f"), fmt(secs, ".0f"), style=style)
        return table

    def _refresh(self):
        if self.live is not None:
            self.live.update(self._table())

    def trial_started(self, key):
        self.rows[key]["status"] = "running"
        self.t0[key] = time.monotonic()
        self._refresh()

    def trial_reporter(self, key):
        from framegen.train import Reporter

        display = self

        class _Row(Reporter):
            def update(self, *, step, epoch, loss):
                display.rows[key]["_step"] = step
                display.rows[key]["_loss"] = loss
                display._refresh()

        return _Row()

    def trial_done(self, record):
        self.rows[record["key"]].update(record)
        self._refresh()
        what = (f"score {record['score']:.3f}, SNR {record['val_snr_db']:+.2f} dB, {record['steps']:,} steps, "
                f"{record['train_seconds']:.0f} s" if record["status"] == "done" else record.get("error", ""))
        (self.live.console if self.live else self.console).print(f"{record['key']}: {record['status']}: {what}")

    def close(self):
        if self.live is not None:
            self.live.stop()
            self.live = None
            if not self.console.is_terminal:
                self.console.line()  # a non-terminal gets the final table without its closing newline
