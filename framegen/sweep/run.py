"""Running a sweep: one trial (``run_trial``, the same code in-process and in a Ray worker), the executors (local,
Ray), trial records, and ``run_sweep``, which rewrites the results files after every trial.
"""

import datetime as _dt
import os
import platform
import threading
from pathlib import Path

from framegen.config import RunConfig
from framegen.errors import FramegenError, Interrupted, RunError, UsageError
from framegen.sweep.plan import SweepPlan, Trial
from framegen.sweep.results import RESULTS_VERSION, write_results

STATUSES = ("done", "failed", "skipped", "interrupted", "pending")


class _PeakRss:
    """Samples this process's resident memory every 0.2 s while a trial runs (ru_maxrss cannot be reset)."""

    def __init__(self):
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    @staticmethod
    def rss() -> int:
        import psutil

        return int(psutil.Process().memory_info().rss)

    def _loop(self):
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, self.rss())

    def __enter__(self):
        self.peak = self.rss()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())


def _device_peak() -> int | None:
    try:
        import jax

        dev = jax.devices()[0]
        stats = dev.memory_stats() if dev.platform != "cpu" else None
        return int(stats["peak_bytes_in_use"]) if stats and "peak_bytes_in_use" in stats else None
    except Exception:  # noqa: BLE001 - a statistic, never a reason to fail a trial
        return None


def enable_compile_cache() -> str | None:
    """Keep compiled steps on disk (JAX's persistent compilation cache), so a resumed trial, a re-run or a repeated
    shape loads its step instead of compiling it again. JAX's own ``JAX_COMPILATION_CACHE_DIR=DIR`` (or a cache
    configured in code) is used as it is; otherwise ``FRAMEGEN_COMPILE_CACHE=DIR`` (kept for earlier scripts) picks
    the folder, ``=off`` turns it off, and the default is ~/.cache/framegen/jax."""
    import jax

    if jax.config.jax_compilation_cache_dir:
        return jax.config.jax_compilation_cache_dir
    where = os.environ.get("FRAMEGEN_COMPILE_CACHE", "")
    if where.lower() in ("off", "0", "false", "no"):
        return None
    cache_home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    path = Path(where) if where else cache_home / "framegen" / "jax"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None  # a cache is a speed-up, never a reason to fail
    jax.config.update("jax_compilation_cache_dir", str(path))
    return str(path)


def run_trial(job: dict, reporter=None) -> dict:
    """Train (or resume) one cell and return its record. ``job``: key, song, config (dict), run_dir, resume.

    A plain function of picklable arguments, so the local executor and a Ray worker run exactly the same code.
    Errors propagate; the executor records them.
    """
    from framegen.train import prepare_song, train

    enable_compile_cache()
    cfg = RunConfig.from_dict(job["config"])
    song_norm, cfg = prepare_song(job["song"], cfg)
    run_dir = Path(job["run_dir"])
    with _PeakRss() as mem:
        result = train(cfg, run_dir, song_norm, resume=job["resume"], reporter=reporter)
    rows = result.metrics
    if not rows:
        raise RunError(f"{run_dir} finished without a validation row: its metrics.jsonl is empty")
    last = rows[-1]
    per_step = cfg.train.batch_size * cfg.data.seq_len * cfg.data.frame_size
    vals = [r["val_mse"] for r in rows if r.get("val_mse") is not None]
    return {
        "status": "done",
        "steps": result.step,
        "epochs": round(result.epoch, 4),
        "samples_seen": result.step * per_step,
        "train_seconds": last.get("seconds"),
        "compile_seconds": round(result.compile_seconds, 3),
        "stopped": result.stopped,
        "train_mse": last.get("train_mse"),
        "val_mse": last["val_mse"],
        "val_snr_db": last["val_snr_db"],
        "zero_mse": last["zero_mse"],
        "copy_mse": last["copy_mse"],
        "score": last["val_mse"] / last["zero_mse"],
        "vs_copy": last["val_mse"] / last["copy_mse"] if last["copy_mse"] else None,
        "best_val_mse": min(vals) if vals else None,
        "peak_rss_bytes": mem.peak,
        "peak_device_bytes": _device_peak(),
        **sample_scores(rows),
    }


SAMPLE_SCORES = ("sample_pulse_ratio", "sample_rhythm_similarity", "sample_continuity_ratio", "sample_frechet_ratio",
                 "sample_transition_jumps", "sample_jump_rate", "sample_transition_shuffled", "sample_change_ratio",
                 "sample_novelty", "sample_flags")


def sample_scores(rows: list[dict]) -> dict:
    """The last scored sample clip's evaluate metrics (opt in with sample_every in the experiment file): whether a
    trial's output keeps the beat, next to its validation loss. Empty when no clip was scored."""
    scored = [r for r in rows if "sample_flags" in r]
    return {k: scored[-1].get(k) for k in SAMPLE_SCORES} if scored else {}


def describe_error(e: BaseException) -> str:
    """One line for a failed trial; out-of-memory errors are named as such whatever raised them."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if isinstance(e, MemoryError) or "RESOURCE_EXHAUSTED" in str(e) or "out of memory" in str(e).lower() \
            or type(e).__name__ == "OutOfMemoryError":
        return f"out of memory: {text[:300]}"
    if isinstance(e, FramegenError):
        return text[:400]
    return f"{type(e).__name__}: {text[:300]}"


def _run_trial_safe(job: dict) -> dict:
    """``run_trial`` for a Ray worker: any error becomes a failed record (a worker has no one to raise it to)."""
    try:
        return run_trial(job)
    except Exception as e:  # noqa: BLE001 - recorded, the sweep goes on
        return {"status": "failed", "error": describe_error(e)}


def _base_record(plan: SweepPlan, trial: Trial) -> dict:
    cfg = trial.config
    rec = {"key": trial.key, "frame_size": trial.frame_size, "seq_len": trial.seq_len, "status": "pending",
           "reason": trial.reason, "error": "", "run_dir": trial.key if cfg else None,
           "budget_kind": plan.spec.budget.kind, "budget": plan.spec.budget.amount,
           "batch_size": trial.batch_size or None, "batch_reduced_from": trial.batch_reduced_from,
           "samples_per_step": trial.samples_per_step or None, "max_steps": trial.max_steps,
           "est_memory_bytes": trial.est_memory or None}
    if trial.tiers is not None:
        rec["tiers"] = ",".join(map(str, trial.tiers))
    if cfg:
        rec.update(hidden=cfg.model.hidden, layers=cfg.model.layers, lr=cfg.train.lr, seed=cfg.train.seed,
                   tiers=",".join(map(str, cfg.model.tiers)))
    if trial.status == "skipped":
        rec["status"] = "skipped"
    return rec


def _job(plan: SweepPlan, trial: Trial) -> dict:
    return {"key": trial.key, "song": plan.song, "config": trial.config.to_dict(),
            "run_dir": str((plan.sweep_dir / trial.key).absolute()), "resume": trial.status == "resume"}


class SweepDisplay:
    """Progress hooks of a sweep; the CLI passes a rich live table, the library default is silent."""

    def start(self, plan: SweepPlan, records: dict) -> None: ...

    def trial_started(self, key: str) -> None: ...

    def trial_reporter(self, key: str):
        """A ``framegen.train.Reporter`` for the trial's steps (local executor only), or None."""
        return None

    def trial_done(self, record: dict) -> None: ...

    def close(self) -> None: ...


def plan_results(plan: SweepPlan, command: str = "") -> dict:
    """The results document of ``plan`` before any of its trials runs now: a record per trial, pending, skipped, or
    as an earlier invocation left it (done, failed), and the sweep's facts (grid, budget, machine)."""
    records = {}
    for t in plan.trials:
        records[t.key] = {**_base_record(plan, t), **(t.record or {})} if t.record else _base_record(plan, t)
        if t.status == "failed":
            records[t.key]["status"] = "failed"
    return _document(plan, records, command)


def run_sweep(plan: SweepPlan, *, executor: str = "local", address: str | None = None,
              display: SweepDisplay | None = None, command: str = "") -> dict:
    """Run every planned trial, rewriting the results files after each; returns the results document.

    A failing trial is recorded and the sweep goes on; Ctrl-C (Interrupted / KeyboardInterrupt) stops it after
    the running trial's checkpoint is saved, with the results files written, and is raised again.
    """
    from framegen import runs

    display = display or SweepDisplay()
    sweep_dir = runs.make_run_dir(plan.sweep_dir)
    doc = plan_results(plan, command)
    records = {t.key: r for t, r in zip(plan.trials, doc["trials"])}
    with runs.run_lock(sweep_dir):
        write_results(sweep_dir, doc)
        display.start(plan, records)
        try:
            def done(key, result):
                records[key].update(result)
                records[key]["finished"] = doc["updated"] = _now()
                doc["trials"] = [records[t.key] for t in plan.trials]
                write_results(sweep_dir, doc)
                display.trial_done(records[key])

            if executor == "local":
                _run_local(plan, records, display, done)
            elif executor == "ray":
                _run_ray(plan, records, display, done, address)
            else:
                raise UsageError(f"unknown executor {executor!r}: pass --executor local or --executor ray")
        finally:
            doc["trials"] = [records[t.key] for t in plan.trials]
            doc["updated"] = _now()
            write_results(sweep_dir, doc)
            display.close()
    return doc


def _run_local(plan, records, display, done) -> None:
    for trial in plan.to_run:
        records[trial.key]["status"] = "running"
        display.trial_started(trial.key)
        try:
            result = run_trial(_job(plan, trial), reporter=display.trial_reporter(trial.key))
        except (Interrupted, KeyboardInterrupt) as e:
            done(trial.key, {"status": "interrupted", "error": describe_error(e) if str(e) else "stopped by Ctrl-C"})
            raise Interrupted(
                f"sweep stopped during {trial.key} (its checkpoint is saved); finished trials are recorded in "
                f"{plan.sweep_dir}: run the same command again to resume",
                exit_code=e.exit_code if isinstance(e, Interrupted) else 130,
            ) from None
        except Exception as e:  # noqa: BLE001 - recorded, the sweep goes on
            result = {"status": "failed", "error": describe_error(e)}
        done(trial.key, result)


def _run_ray(plan, records, display, done, address) -> None:
    """One Ray task per trial (one GPU each when the cluster has GPUs); Ray schedules, results come back here."""
    try:
        import ray
    except ImportError:
        raise UsageError("the ray executor needs Ray: pip install \"framegen[ray]\"") from None
    started = not ray.is_initialized()
    if started:
        kwargs = dict(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        if address is None:  # a local Ray on this machine: one task per core
            kwargs["num_cpus"] = os.cpu_count() or 1
        ray.init(**kwargs)
    try:
        gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        remote = ray.remote(num_gpus=gpus, max_retries=0)(_run_trial_safe)
        pending = {}
        for trial in plan.to_run:
            pending[remote.remote(_job(plan, trial))] = trial.key
            records[trial.key]["status"] = "running"
            display.trial_started(trial.key)
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    key = pending.pop(ref)
                    try:
                        result = ray.get(ref)
                    except Exception as e:  # noqa: BLE001 - a worker that died (OOM kill, node lost)
                        result = {"status": "failed", "error": describe_error(e)}
                    done(key, result)
        except KeyboardInterrupt:
            for ref, key in pending.items():
                ray.cancel(ref)  # the trial's last epoch checkpoint is kept; a re-run resumes from it
                records[key]["status"] = "interrupted"
            raise Interrupted("sweep stopped by Ctrl-C; finished trials are recorded: run the same command again "
                              "to resume") from None
    finally:
        if started:
            ray.shutdown()


def _now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def _machine() -> str:
    try:
        import jax

        dev = jax.devices()[0]
        kind = f"jax {jax.__version__} {dev.platform} ({dev.device_kind})"
    except Exception:  # noqa: BLE001
        kind = "jax unavailable"
    return f"{platform.machine()}, {os.cpu_count()} CPUs, {kind}"


def _document(plan: SweepPlan, records: dict, command: str) -> dict:
    spec = plan.spec
    return {
        "results_version": RESULTS_VERSION,
        "sweep": spec.name,
        "experiment": spec.source,
        "command": command,
        "song": plan.song,
        "song_samples": plan.song_samples,
        "sample_rate": plan.sample_rate,
        "val_samples": plan.val_samples,
        "budget": {"kind": spec.budget.kind, "amount": spec.budget.amount},
        "frame_sizes": list(spec.frame_sizes),
        "seq_lens": list(spec.seq_lens),
        **({"tier_sets": [",".join(map(str, k)) for k in spec.tier_sets]} if spec.tier_sets else {}),
        "machine": _machine(),
        "memory_limit_bytes": plan.memory_limit,
        "updated": _now(),
        "trials": [records[t.key] for t in plan.trials],
    }
