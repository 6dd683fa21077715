"""``framegen bench``: time framegen's real train step and generator, its memory and host overhead, and optionally
PyTorch doing the same work in the same run (``--compare torch``; torch is the optional extra ``framegen[bench]``).

Every measurement is a flat dict (a JSON line with ``--json``); ``format_tables`` turns a list of them into the
markdown tables of experiments/bench/*.md. Timings are medians after warm-up; compile time is reported apart.
This package's driver (``run``) calls framegen's own timers (``timers``), the memory children (``memory``) and,
with ``--compare torch``, the PyTorch reference (``torch_ref``), all sharing ``timing``.
"""

import os

from framegen.bench.memory import bench_memory
from framegen.bench.timers import bench_generate, bench_host_overhead, bench_matmul, bench_train, tiers_name, with_tiers
from framegen.bench.timing import matmul_gflops, threads
from framegen.config import PRECISIONS, DataConfig, ModelConfig

CONFIGS = ((800, 100, 128), (40, 1000, 32), (4000, 50, 32), (100, 1000, 128))  # (F, T, B)
EXTRA_BATCH = 32  # B of an extra config given without --batch-size (its F and T default to train's)
GEN_FRAMES = (800, 40)
GEN_STREAMS = (1, 16)
MEMORY_CONFIG = (40, 10_000, 32)
HOST_CONFIG = (800, 100, 32)
QUICK = {"configs": ((40, 50, 4),), "gen_frames": (40,), "gen_streams": (1, 2), "gen_seconds": 0.5,
         "memory": (40, 200, 4), "steps": 3}
PARTS = ("train", "matmul", "generate", "memory", "host")
TIMED_PRECISIONS = ("fp32", "bf16")  # framegen's (and torch's) precisions timed unless asked for others


def parse_flags(*, frame_size=None, seq_len=None, batch_size=None, steps=None, only=None, precisions=None,
                tiers=None) -> dict:
    """``run``'s arguments from ``framegen bench``'s flags, checked: an extra (F, T, B) config when any of them is
    given (the others default to train's F and T and ``EXTRA_BATCH``), the parts of ``only`` and the precisions
    (comma-separated), and the tiers (parsed and checked as train's --tiers)."""
    from framegen.errors import UsageError

    extra = []
    if frame_size is not None or seq_len is not None or batch_size is not None:
        extra.append((frame_size or DataConfig.frame_size, seq_len or DataConfig.seq_len, batch_size or EXTRA_BATCH))
    if steps is not None and steps < 1:
        raise UsageError(f"--steps must be at least 1, got {steps}")
    parts = PARTS if only is None else tuple(x.strip() for x in only.split(","))
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise UsageError(f"unknown --only part(s) {', '.join(unknown)}: pass some of {', '.join(PARTS)}")
    precisions = TIMED_PRECISIONS if precisions is None else tuple(p.strip() for p in precisions.split(","))
    bad = sorted(set(precisions) - set(PRECISIONS))
    if bad:
        raise UsageError(f"unknown --precision {', '.join(bad)}: pass some of {', '.join(PRECISIONS)}")
    return dict(extra_configs=extra, steps=steps, parts=parts, precisions=precisions,
                tiers=ModelConfig(tiers=tiers).tiers)


def run(extra_configs=(), *, compare: str | None = None, quick: bool = False, steps: int | None = None,
        parts=PARTS, log=print, precisions=TIMED_PRECISIONS, tiers=()) -> list[dict]:
    """Every measurement of ``framegen bench`` (or only ``parts`` of it) as a list of rows, each row logged as
    soon as it is made; framegen at each of ``precisions`` (fp32, bf16, auto), torch at the same ones. With
    ``tiers`` (ratios), framegen's tower is timed and measured beside the flat model at the same F, T, B (T rounded
    down to a multiple of the tiers' span)."""
    from framegen.device import resolve_precision

    precisions = tuple(dict.fromkeys(resolve_precision(p) for p in precisions))
    if compare not in (None, "torch"):
        raise ValueError(f"unknown --compare {compare!r}")
    if compare:
        try:
            import torch  # noqa: F401
        except ImportError:
            from framegen.errors import UsageError

            raise UsageError("--compare torch needs PyTorch: pip install 'framegen[bench]'") from None
    with_torch = compare == "torch"
    q = QUICK if quick else {}
    configs = list(q.get("configs", CONFIGS)) + [c for c in extra_configs if c not in CONFIGS]
    if quick and extra_configs:
        configs = list(extra_configs)
    steps = steps or q.get("steps", 10)
    tiers = tuple(tiers)
    memory_config = q.get("memory", MEMORY_CONFIG)
    if tiers:
        configs, (memory_config,) = with_tiers(configs, tiers), with_tiers([memory_config], tiers)
    import jax

    rows = [{"what": "machine", "impl": "framegen", "threads": threads(), "devices": len(jax.local_devices()),
             "backend": jax.default_backend(), "load_avg_1m": round(os.getloadavg()[0], 2),
             "jax": jax.__version__, "matmul_gflops": round(matmul_gflops(512 if quick else 2048), 1),
             "device": jax.devices()[0].device_kind, "precisions": list(precisions), "tiers": tiers_name(tiers)}]
    if with_torch:
        import torch

        rows[0]["torch"] = torch.__version__
    log(rows[0])
    gflops = rows[0]["matmul_gflops"]
    if "train" in parts:
        rows += bench_train(configs, steps, with_torch, gflops, log=log, precisions=precisions,
                            probe=jax.default_backend() == "cpu", tiers=tiers)
    if "matmul" in parts:
        rows += bench_matmul(configs, with_torch, reps=2 if quick else 5, log=log)
    if "generate" in parts:
        rows += bench_generate(q.get("gen_frames", GEN_FRAMES), q.get("gen_streams", GEN_STREAMS),
                               q.get("gen_seconds", 30.0), with_torch, reps=1 if quick else 3, log=log,
                               precisions=precisions, tiers=tiers)
    if "memory" in parts:
        rows += bench_memory(memory_config, with_torch, log=log, precisions=precisions, tiers=tiers)
    if "host" in parts and not quick:
        rows += bench_host_overhead(HOST_CONFIG, log=log)
    rows.append({"what": "end", "impl": "framegen", "load_avg_1m": round(os.getloadavg()[0], 2)})
    log(rows[-1])
    return rows


def format_tables(rows: list[dict]) -> str:
    """Markdown tables of ``run``'s rows: train step, generation, memory, host overhead."""
    out = []
    m = next((r for r in rows if r["what"] == "machine"), None)
    if m:
        out.append(f"{m['backend']} x{m['devices']} ({m.get('device', '')}), {m['threads']} threads, matmul "
                   f"{m['matmul_gflops']} GFLOP/s fp32, load average {m['load_avg_1m']} at start")

    def table(what: str, header: list[str], cells) -> None:
        picked = [r for r in rows if r["what"] == what]
        if picked:
            out.extend(["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)])
            out.extend("| " + " | ".join(str(c) for c in cells(r)) + " |" for r in picked)

    def shape(r):
        return f"{r['frame_size']}x{r['seq_len']}x{r['batch_size']}"

    def ratio(r, key="ratio_vs_torch"):
        return f"{r[key]:.2f}" if key in r else ""

    def impl(r):  # "framegen bf16", "torch bf16-cast", "framegen bf16 tiers 8"; a row without a precision: the impl
        probe = " (2-step probe, lost)" if r.get("probe_only") else ""
        tower = f" tiers {r['tiers']}" if r.get("tiers") else ""
        return f"{r['impl']} {r.get('mode', r.get('precision', ''))}".strip() + tower + probe

    towers = any(r.get("tiers") for r in rows if r["what"] == "train_step")
    table("train_step", ["F x T x B", "impl", "median ms", "/ torch best", "/ torch same precision"]
          + (["/ flat"] if towers else []) + ["% of floor", "floor ms", "audio samples/s", "compile s"],
          lambda r: [shape(r), impl(r), f"{r['median_ms']:.1f}", ratio(r), ratio(r, "ratio_vs_torch_same")]
          + ([ratio(r, "ratio_vs_flat")] if towers else [])
          + [f"{r['pct_floor']:.0f}%", f"{r['floor_ms']:.1f}", f"{r['samples_per_s']:,}", f"{r['compile_s']:.1f}"])
    table("matmul", ["F x T x B", "matmul", "impl", "ms per product", "GFLOP/s", "/ torch"],
          lambda r: [shape(r), r["shape"], r["impl"], f"{r['ms']:.3f}", f"{r['gflops']:.0f}", ratio(r)])
    table("generate", ["F", "streams", "impl", "x real time (all streams)", "x real time per stream", "us/frame",
                       "compile s"],
          lambda r: [r["frame_size"], r["streams"], impl(r), f"{r['realtime_factor']:.0f}",
                     f"{r['realtime_factor_per_stream']:.1f}", f"{r['us_per_frame']:.0f}", f"{r['compile_s']:.1f}"])
    table("memory", ["F x T x B", "impl", "peak RSS MB", "device peak MB", "XLA temp MB", "step ms", "compile s"],
          lambda r: [shape(r), impl(r),
                     r["peak_rss_mb"] if r["peak_rss_mb"] is not None else f"failed ({r.get('error', '')[:60]})",
                     r.get("device_peak_mb", ""), r.get("xla_temp_mb", ""), r.get("step_ms", ""), r["compile_s"]])
    table("host_overhead", ["F x T x B", "loop ms/step", "step ms (blocked)", "host overhead ms/step",
                            "host sync every"],
          lambda r: [shape(r), f"{r['loop_ms_per_step']:.1f}", f"{r['median_ms']:.1f}", f"{r['overhead_ms']:.1f}",
                     f"{r['sync_every']} steps"])
    end = next((r for r in rows if r["what"] == "end"), None)
    if end:
        out.append(f"\nload average {end['load_avg_1m']} at the end")
    return "\n".join(out) + "\n"

