"""framegen bench: the quick run prints one valid JSON object per measurement with the documented keys."""

import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from framegen import bench
from framegen.bench import timers, timing
from framegen.cli import cli

KEYS = {"what", "impl", "frame_size", "seq_len", "batch_size", "compile_s"}
VALUE = {"train_step": "median_ms", "generate": "realtime_factor", "memory": "peak_rss_mb", "matmul": "gflops"}


def _rows(args):
    r = CliRunner().invoke(cli, ["bench", "--quick", "--json", *args])
    assert r.exit_code == 0, r.output
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


@pytest.mark.slow
def test_quick_json_has_every_measurement_with_its_keys():
    rows = _rows([])
    by_what = {}
    for row in rows:
        by_what.setdefault(row["what"], []).append(row)
    assert set(VALUE) <= set(by_what)
    for what, key in VALUE.items():
        for row in by_what[what]:
            assert KEYS <= set(row), (what, row)
            assert isinstance(row[key], (int, float)) and row[key] > 0, row
            assert row["impl"] == "framegen"
    step = by_what["train_step"][0]
    assert (step["frame_size"], step["seq_len"], step["batch_size"]) == bench.QUICK["configs"][0]
    assert 0 < step["pct_floor"] and step["samples_per_s"] > 0
    assert by_what["memory"][0]["xla_temp_mb"] >= 0
    assert {r["shape"] for r in by_what["matmul"]} == {"recurrent", "input"}
    gen = {r["streams"]: r for r in by_what["generate"]}
    assert set(gen) == set(bench.QUICK["gen_streams"])
    assert gen[2]["realtime_factor"] == pytest.approx(2 * gen[2]["realtime_factor_per_stream"], rel=0.01)


def test_step_flops_counts_forward_and_backward_matmuls():
    f, t, b, h = 40, 10, 2, 256
    fwd = 2 * t * b * (f * 3 * h + 3 * h * 3 * h + h * f)  # in1 + rec1, in2, rec2 (3 x H x 3H) + head
    assert timing.step_flops(f, t, b, h) == 3 * fwd - 2 * t * b * f * 3 * h


def test_tables_show_the_ratio_to_torch():
    rows = [{"what": "train_step", "impl": i, "frame_size": 40, "seq_len": 50, "batch_size": 4, "median_ms": ms,
             "ratio_vs_torch": ms / 20, "pct_floor": 10.0, "floor_ms": 1.0, "samples_per_s": 1, "compile_s": 1.0}
            for i, ms in (("framegen", 10.0), ("torch", 20.0))]
    table = bench.format_tables(rows)
    assert "| 40x50x4 | framegen | 10.0 | 0.50 |" in table and "| 40x50x4 | torch | 20.0 | 1.00 |" in table


@pytest.mark.slow
def test_compare_torch_times_both_in_one_run():
    pytest.importorskip("torch")
    rows = timers.bench_train([(40, 50, 2)], 2, True, 100.0, log=lambda r: None)
    rows += timers.bench_generate([40], [2], 0.05, True, reps=1, log=lambda r: None)
    step = {r["impl"]: r for r in rows if r["what"] == "train_step"}
    assert set(step) == {"framegen", "torch"}
    ratio = step["framegen"]["median_ms"] / step["torch"]["median_ms"]
    assert step["framegen"]["ratio_vs_torch"] == pytest.approx(ratio, rel=0.02, abs=1e-4)
    gen = {r["impl"]: r for r in rows if r["what"] == "generate"}
    assert set(gen) == {"framegen", "torch"} and all(r["realtime_factor"] > 0 for r in gen.values())
    mm = timers.bench_matmul([(40, 50, 2)], True, reps=1, log=lambda r: None)
    pairs = {(i, s) for i in ("framegen", "torch") for s in ("recurrent", "input")}
    assert {(r["impl"], r["shape"]) for r in mm} == pairs
    assert all(r["gflops"] > 0 and r["ratio_vs_torch"] > 0 for r in mm)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmHWM is Linux's")
def test_child_peak_memory_is_its_own_not_its_parents():
    # ru_maxrss survives exec: a child forked from a big parent would report the parent's size.
    ballast = np.ones(300 * 2**20 // 4, np.float32)  # 300 MB resident in this process
    code = "from framegen.bench.memory import peak_rss_mb; print(peak_rss_mb())"
    child = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert 0 < child < 200 < ballast.nbytes / 2**20


@pytest.mark.parametrize("probe", [False, True])
def test_both_precisions_against_torch_fp32_and_its_faster_bf16(probe):
    pytest.importorskip("torch")
    rows = timers.bench_train([(40, 50, 2)], 2, True, 100.0, log=lambda r: None, precisions=("fp32", "bf16"),
                             probe=probe)
    got = {(r["impl"], r.get("mode", r["precision"])): r for r in rows}
    assert set(got) == {("framegen", "fp32"), ("framegen", "bf16"), ("torch", "fp32"), ("torch", "autocast"),
                        ("torch", "bf16-cast")}
    timed_torch = [r for r in rows if r["impl"] == "torch" and not r.get("probe_only")]
    assert len([r for r in rows if r.get("probe_only")]) == (1 if probe else 0)
    best = min(r["median_ms"] for r in timed_torch)
    for r in rows:
        assert r["ratio_vs_torch"] == pytest.approx(r["median_ms"] / best, rel=0.02, abs=1e-4)
    same = min(r["median_ms"] for r in timed_torch if r["precision"] == "bf16")
    assert got["framegen", "bf16"]["ratio_vs_torch_same"] == pytest.approx(got["framegen", "bf16"]["median_ms"] / same,
                                                                           rel=0.02, abs=1e-4)
    assert "| 40x50x2 | framegen bf16 |" in bench.format_tables(rows)


def test_tiers_are_timed_beside_the_flat_model_at_a_t_holding_whole_spans():
    assert timers.with_tiers([(800, 100, 128), (40, 1000, 32), (40, 10_000, 32)], (8,)) == \
        [(800, 96, 128), (40, 1000, 32), (40, 10_000, 32)]
    assert timers.with_tiers([(40, 50, 4), (40, 51, 4)], (5, 2)) == [(40, 50, 4)]
    rows = [{"what": "train_step", "impl": "framegen", "precision": "fp32", "frame_size": 400, "seq_len": 96,
             "batch_size": 32, "median_ms": ms, "pct_floor": 10.0, "floor_ms": 1.0, "samples_per_s": 1,
             "compile_s": 1.0, **extra} for ms, extra in ((100.0, {}), (112.0, {"tiers": "8", "ratio_vs_flat": 1.12}))]
    table = bench.format_tables(rows)
    assert "| 400x96x32 | framegen fp32 tiers 8 | 112.0 |  |  | 1.12 |" in table


@pytest.mark.slow
def test_quick_bench_with_tiers_reports_step_ratio_and_memory():
    rows = _rows(["--tiers", "5", "--only", "train,memory", "--precision", "fp32"])
    steps = {r.get("tiers", ""): r for r in rows if r["what"] == "train_step"}
    assert set(steps) == {"", "5"} and steps["5"]["ratio_vs_flat"] > 0
    assert steps["5"]["ratio_vs_flat"] == pytest.approx(steps["5"]["median_ms"] / steps[""]["median_ms"], rel=0.01)
    memory = {r.get("tiers", ""): r for r in rows if r["what"] == "memory"}
    assert memory["5"]["peak_rss_mb"] > 0 and memory["5"]["seq_len"] == 200
