"""Peak memory of training, each implementation and precision measured in a fresh process of its own (a process's
peak never falls, so the bench itself cannot be measured in place)."""

import json
import resource
import statistics
import subprocess
import sys
from pathlib import Path

from framegen.bench.timers import FramegenStep, tiers_name
from framegen.bench.timing import timed
from framegen.bench.torch_ref import TorchStep


def peak_rss_mb() -> float:
    """This process's peak resident memory. On Linux the kernel's VmHWM, which starts afresh at exec: getrusage's
    ru_maxrss survives exec, so a child forked from a big parent (the bench itself, several GB after its train
    part) would report the parent's size (measured: 3,978 MB for a child that peaked at 1,560)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, kB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def memory_child(impl: str, f: int, t: int, b: int, steps: int, precision: str = "fp32", tiers=()) -> dict:
    """Run ``steps`` train steps in this (fresh) process and report its peak resident memory (and, on a GPU, the
    device's peak bytes in use)."""
    if impl == "framegen":
        runner = FramegenStep(f, t, b, precision, tiers)
    else:
        runner = TorchStep(f, t, b, "fp32" if precision == "fp32" else "bf16-cast")
    times = timed(runner, steps)
    row = {"what": "memory", "impl": impl, "precision": precision, "frame_size": f, "seq_len": t, "batch_size": b,
           "peak_rss_mb": round(peak_rss_mb()), "compile_s": round(runner.compile_s, 2),
           "step_ms": round(statistics.median(times[1:] or times) * 1e3, 1)}
    if tiers:
        row["tiers"] = tiers_name(tiers)
    if impl == "framegen":  # XLA's own figure: the step's scratch buffer, allocated per call
        import jax

        row["xla_temp_mb"] = round(runner.fn.memory_analysis().temp_size_in_bytes / 2**20)
        stats = jax.devices()[0].memory_stats() or {}
        if "peak_bytes_in_use" in stats and jax.default_backend() != "cpu":
            row["device_peak_mb"] = round(stats["peak_bytes_in_use"] / 2**20)
    elif runner.device == "cuda":
        row["device_peak_mb"] = round(runner.torch.cuda.max_memory_allocated() / 2**20)
    return row


def bench_memory(config, compare: bool, steps: int = 2, log=print, precisions=("fp32",), tiers=()) -> list[dict]:
    """Peak RSS of training at ``config``, each implementation, precision (and the tower, with ``tiers``) in its own
    subprocess."""
    rows = []
    jobs = [(i, p, ()) for i in ["framegen"] + (["torch"] if compare else []) for p in precisions]
    jobs += [("framegen", p, tuple(tiers)) for p in precisions if tiers]
    for impl, precision, tower in jobs:
        f, t, b = config
        code = (f"import json; from framegen.bench.memory import memory_child; print('RESULT', json.dumps("
                f"memory_child({impl!r}, {f}, {t}, {b}, {steps}, {precision!r}, {tower!r})))")
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        lines = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
        if lines:
            row = json.loads(lines[-1][len("RESULT "):])
        else:
            row = {"what": "memory", "impl": impl, "precision": precision, "frame_size": f, "seq_len": t,
                   "batch_size": b, **({"tiers": tiers_name(tower)} if tower else {}),
                   "peak_rss_mb": None, "compile_s": None, "error": f"rc={r.returncode}: {r.stderr[-300:]}"}
        rows.append(row)
        log(row)
    return rows

