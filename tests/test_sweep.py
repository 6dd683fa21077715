"""framegen sweep: plan (feasibility, equal budgets), resumable runs, failures recorded, results files, Ray.

Every trial here is the smallest model framegen allows (F=40, T=50, GRU 2x199, batch 8) on a 12 s sine at 8 kHz,
with a budget of a few steps: the tests check the sweep's bookkeeping, not what the model learns.
"""

import json
import os
import signal

import pytest
from click.testing import CliRunner

from framegen import sweep as sweeps
from framegen.cli import cli
from framegen.errors import Interrupted, UsageError
from framegen.train import Reporter
from tests.conftest import sine_song, write

TINY = """
[sweep]
frame_sizes = [40, 80]
seq_lens = [50, 200]
budget_samples = 160_000

[data]
sample_rate = 8000

[model]
hidden = 199

[train]
batch_size = 8
lr = 3e-3
log_every = 5

[frame_size.80]
lr = 1e30  # diverges: this trial must fail without stopping the sweep
"""


def _tiny_flags(**kw):
    """The options of TINY's [data]/[model]/[train]: the same compiled step, loaded from the compile cache."""
    return {"sample_rate": 8000, "hidden": 199, "batch_size": 8, "lr": 3e-3, "log_every": 5, **kw}


@pytest.fixture(scope="module", autouse=True)
def compile_cache(tmp_path_factory):
    """One compile cache for this file (Ray workers inherit it): equal shapes compile once across tests."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FRAMEGEN_COMPILE_CACHE", str(tmp_path_factory.mktemp("jax-cache")))
        yield


@pytest.fixture
def song(tmp_path):
    return write(tmp_path / "sine.wav", sine_song(12.0))


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.mark.slow
def test_a_two_by_two_grid_end_to_end_through_the_cli(tmp_path, monkeypatch, song):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.toml").write_text(TINY)
    r = run("sweep", "tiny.toml", "--song", song)
    assert r.exit_code == 0, r.output
    sweep_dir = tmp_path / "experiments" / "results" / "tiny"  # the name is the file's stem
    doc = json.loads((sweep_dir / "results.json").read_text())
    by = {t["key"]: t for t in doc["trials"]}
    assert [t["key"] for t in doc["trials"]] == ["f40-t50", "f40-t200", "f80-t50", "f80-t200"]
    assert {k: t["status"] for k, t in by.items()} == {
        "f40-t50": "done", "f40-t200": "done", "f80-t50": "failed", "f80-t200": "skipped"}

    # the infeasible cell is skipped with its reason, in the plan and in the results
    assert "needs 160,800 samples of song" in by["f80-t200"]["reason"] and "song has 96,000" in by["f80-t200"]["reason"]
    assert "f80-t200: needs 160,800 samples of song" in r.output
    # the diverging cell is recorded as failed with the trainer's message, and the sweep went on
    assert "diverged" in by["f80-t50"]["error"]

    # equal budgets: every finished trial saw the budget, overshooting by less than one step
    for key in ("f40-t50", "f40-t200"):
        t = by[key]
        assert t["samples_per_step"] == t["batch_size"] * t["seq_len"] * t["frame_size"]
        assert t["samples_seen"] == t["steps"] * t["samples_per_step"] and t["steps"] == t["max_steps"]
        assert 160_000 <= t["samples_seen"] < 160_000 + t["samples_per_step"]
        assert 0 < t["score"] == pytest.approx(t["val_mse"] / t["zero_mse"])
        assert t["vs_copy"] == pytest.approx(t["val_mse"] / t["copy_mse"])
        metrics = (sweep_dir / key / "metrics.jsonl").read_text().splitlines()
        assert json.loads(metrics[-1])["step"] == t["steps"]  # the budget's end is scored, mid-epoch too

    # results files, heatmap and the best link
    csv_lines = (sweep_dir / "results.csv").read_text().splitlines()
    assert csv_lines[0].startswith("frame_size,seq_len,status,score") and len(csv_lines) == 5
    md = (sweep_dir / "results.md").read_text()
    assert "| F \\ T | 50 | 200 |" in md and "| 80 | failed | skipped |" in md
    assert (sweep_dir / "heatmap.png").stat().st_size > 5000
    best = min(("f40-t50", "f40-t200"), key=lambda k: by[k]["score"])
    assert (sweep_dir / "best").resolve() == (sweep_dir / best).resolve()
    assert (sweep_dir / "best.txt").read_text().strip() == best
    assert f"best: {best}" in r.output

    # re-running skips the finished trials and keeps the failed one: nothing trains
    before = {k: (sweep_dir / k / "metrics.jsonl").read_text() for k in ("f40-t50", "f40-t200")}
    r = run("sweep", "tiny.toml", "--song", song)
    assert r.exit_code == 0, r.output
    assert r.output.count("done (kept)") == 2 and "failed (kept)" in r.output and "0 to run" in r.output
    assert before == {k: (sweep_dir / k / "metrics.jsonl").read_text() for k in before}

    # --report re-draws from results.json alone; the best run generates
    (sweep_dir / "heatmap.png").unlink()
    r = run("sweep", "--report", sweep_dir)
    assert r.exit_code == 0 and (sweep_dir / "heatmap.png").is_file() and "| F \\ T |" in r.output
    r = run("generate", "--run", sweep_dir / "best", "--seconds", "0.2")
    assert r.exit_code == 0, r.output
    assert (sweep_dir / best / "generated" / "best-0.2s.wav").is_file()


class _Display(sweeps.SweepDisplay):
    """Sends this process SIGINT at ``step`` of trial ``key`` (a user's Ctrl-C) and records where trials start."""

    def __init__(self, key=None, step=0):
        self.key, self.step, self.starts = key, step, {}

    def trial_reporter(self, key):
        display = self

        class _R(Reporter):
            def start(self, *, total_steps, start_step, steps_per_epoch, run_dir):
                display.starts[key] = start_step

            def update(self, *, step, epoch, loss):
                if key == display.key and step >= display.step > 0:
                    display.step = 0
                    os.kill(os.getpid(), signal.SIGINT)

        return _R()


@pytest.mark.slow
def test_ctrl_c_stops_the_sweep_and_a_rerun_resumes_the_unfinished_trial(tmp_path, song):
    spec = sweeps.make_spec(song=song, frame_sizes=[40], seq_lens=[50], budget_samples=160_000,
                            flags=_tiny_flags())
    plan = sweeps.plan_sweep(spec, tmp_path / "sw")
    with pytest.raises(Interrupted) as e:
        sweeps.run_sweep(plan, display=_Display("f40-t50", step=4))  # stops at the next report: step 5
    assert e.value.exit_code == 130 and "run the same command again" in str(e.value)
    (rec,) = sweeps.load_results(tmp_path / "sw")["trials"]
    assert rec["status"] == "interrupted"

    plan = sweeps.plan_sweep(spec, tmp_path / "sw")
    assert [t.status for t in plan.trials] == ["resume"]
    display = _Display()
    doc = sweeps.run_sweep(plan, display=display)
    assert display.starts == {"f40-t50": 5}  # from the checkpoint saved at the Ctrl-C, not from 0
    (rec,) = doc["trials"]
    assert rec["status"] == "done" and rec["steps"] == rec["max_steps"] == 10 and rec["samples_seen"] == 160_000


def test_a_failing_trial_is_recorded_and_the_sweep_goes_on(tmp_path, song, monkeypatch):
    calls = []

    def fake_trial(job, reporter=None):
        calls.append(job["key"])
        if job["key"] == "f40-t50":
            raise RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 9.9GiB")
        return {"status": "done", "steps": 1, "score": 0.5, "val_mse": 0.5, "zero_mse": 1.0, "copy_mse": 1.0,
                "val_snr_db": 3.0, "train_seconds": 1.0}

    monkeypatch.setattr(sweeps.run, "run_trial", fake_trial)  # where the local executor looks it up
    spec = sweeps.make_spec(song=song, frame_sizes=[40], seq_lens=[50, 60], flags=_tiny_flags())
    doc = sweeps.run_sweep(sweeps.plan_sweep(spec, tmp_path / "sw"))
    assert calls == ["f40-t50", "f40-t60"]
    first, second = doc["trials"]
    assert first["status"] == "failed" and first["error"].startswith("out of memory: RESOURCE_EXHAUSTED")
    assert second["status"] == "done"
    assert (tmp_path / "sw" / "best.txt").read_text().strip() == "f40-t60"

    # a re-run keeps the failure unless asked to retry it (the fake left no run directory: f40-t60 runs again)
    assert [t.status for t in sweeps.plan_sweep(spec, tmp_path / "sw").trials] == ["failed", "run"]
    assert [t.status for t in sweeps.plan_sweep(spec, tmp_path / "sw", retry_failed=True).trials] == ["run", "run"]


def test_memory_estimate_skips_or_reduces_the_batch_and_budgets_stay_equal(song):
    spec = sweeps.make_spec(song=song, frame_sizes=[40], seq_lens=[50, 200], budget_samples=1_000_000,
                            memory_gb=0.45, flags=_tiny_flags(batch_size=32))
    plan = {t.key: t for t in sweeps.plan_sweep(spec).trials}
    assert plan["f40-t50"].status == "run" and plan["f40-t50"].est_memory < 0.36e9
    big = plan["f40-t200"]
    assert big.status == "skipped" and "of memory at batch 32, 0.36 GB usable" in big.reason

    auto = sweeps.make_spec(song=song, frame_sizes=[40], seq_lens=[50, 200], budget_samples=1_000_000,
                            memory_gb=0.45, auto_batch=True, flags=_tiny_flags(batch_size=32))
    plan = {t.key: t for t in sweeps.plan_sweep(auto).trials}
    big = plan["f40-t200"]
    assert big.status == "run" and big.batch_reduced_from == 32 and big.batch_size < 32
    assert big.est_memory <= 0.36e9
    for t in plan.values():  # the smaller batch gets more steps: the same samples seen
        assert t.max_steps == -(-1_000_000 // t.samples_per_step)
        assert t.config.train.max_steps == t.max_steps and t.config.train.batch_size == t.batch_size

    est = [sweeps.estimate_memory(frame_size=40, seq_len=t, batch_size=8, hidden=256, layers=2, song_samples=0)
           for t in (50, 100, 1000)]
    assert est == sorted(est) and est[2] > est[0]


def test_experiment_file_options_overrides_and_flags(tmp_path, song):
    path = tmp_path / "grid.toml"
    path.write_text("""
[sweep]
frame_sizes = [40, 80]
seq_lens = [50]
budget_seconds = 30
[data]
sample_rate = 8000
[model]
hidden = 199
[train]
batch_size = 16
lr = 1e-3
[frame_size.80]
batch_size = 4
lr = 5e-4
""")
    spec = sweeps.make_spec(path, song=song, flags={"lr": 2e-3, "seed": None})
    assert spec.name == "grid" and spec.budget == sweeps.Budget("seconds", 30.0)
    plan = {t.key: t for t in sweeps.plan_sweep(spec, tmp_path / "sw").trials}
    a, b = plan["f40-t50"].config.train, plan["f80-t50"].config.train
    assert (a.batch_size, b.batch_size) == (16, 4)  # per-axis override
    assert a.lr == b.lr == 2e-3  # a CLI flag wins over the file, overrides included
    assert a.max_minutes == b.max_minutes == 0.5 and a.max_steps is None
    assert a.sample_every == 0  # sweeps write no sample WAVs unless asked

    for body, fragment in [
        ("[train]\nbatchsize = 3", "unknown option 'batchsize'"),
        ("[train]\nhidden = 200", "hidden in [train] of"),
        ("[train]\nmax_steps = 3", "set by the sweep's budget"),
        ("[seq_len.50]\nsample_rate = 8000", "must be the same for every trial"),
        ("[sweep]\nframe_sizes = [40]\nseq_lens = [50]\nbudget_samples = 1\nbudget_seconds = 1", "give one budget"),
        ("[sweep]\nframe_sizes = [40]", "no grid"),
        ("[oops]\nx = 1", "unknown section [oops]"),
        ("[sweep\n", "not valid TOML"),
    ]:
        path.write_text(body)
        with pytest.raises(UsageError, match=None) as e:
            sweeps.make_spec(path, song=song)
        assert fragment in str(e.value), str(e.value)


def test_dry_run_prints_the_plan_only_and_errors_are_one_line(tmp_path, monkeypatch, song):
    monkeypatch.chdir(tmp_path)
    r = run("sweep", song, "-F", "40,80", "-T", "50,200", "--sample-rate", "8000", "--hidden", "199",
            "--batch-size", "8", "--budget-samples", "1e6", "--dry-run")
    assert r.exit_code == 0, r.output
    assert "sweep adhoc: 2 frame sizes x 2 sequence lengths = 4 trials" in r.output
    assert "budget: 1,000,000 training samples per trial" in r.output
    assert "3 to run (0 resumed), 0 done earlier, 1 skipped" in r.output
    assert not (tmp_path / "experiments").exists()

    r = CliRunner().invoke(cli, ["sweep", str(song), "-F", "40", "-T", "50", "--sample-rate", "8000",
                                 "--hidden", "512", "--dry-run"])
    assert r.exit_code != 0 and "hidden size 512 is outside" in r.output
    assert "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1
    r = CliRunner().invoke(cli, ["sweep", "-F", "40", "-T", "50"])
    assert r.exit_code != 0 and "no song given" in r.output


@pytest.mark.slow
def test_ray_executor_runs_a_two_trial_grid(tmp_path, monkeypatch, song):
    pytest.importorskip("ray")
    monkeypatch.chdir(tmp_path)
    r = run("sweep", song, "-F", "40", "-T", "50,200", "--sample-rate", "8000", "--hidden", "199", "--batch-size",
            "8", "--lr", "3e-3", "--budget-samples", "160000", "--executor", "ray", "--out", "sw")
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "sw" / "results.json").read_text())
    assert [t["status"] for t in doc["trials"]] == ["done", "done"], doc["trials"]
    assert all(160_000 <= t["samples_seen"] < 160_000 + t["samples_per_step"] for t in doc["trials"])
    assert (tmp_path / "sw" / "best").is_dir()
    import ray

    assert not ray.is_initialized()  # the sweep shut down the Ray it started


def test_output_modes_are_sweep_options_per_axis(tmp_path):
    from framegen import sweep

    song = write(tmp_path / "song.wav", sine_song(8.0))
    path = tmp_path / "modes.toml"
    path.write_text("""
[sweep]
frame_sizes = [40, 80]
seq_lens = [50]
budget_seconds = 10
[data]
sample_rate = 8000
[model]
hidden = 199
[train]
feedback_prob = 0.5
input_noise = 0.1
crossfade_ms = 2.0
[frame_size.80]
output = "vq"
codebook = 32
codebook_kind = "plain"
vq_emit = "scaled"
feedback_prob = 0.0
""")
    plan = {t.key: t.config for t in sweep.plan_sweep(sweep.make_spec(path, song=song), tmp_path / "sw").trials}
    mse, vqc = plan["f40-t50"], plan["f80-t50"]
    assert (mse.model.output, mse.train.feedback_prob, mse.train.input_noise) == ("mse", 0.5, 0.1)
    assert (vqc.model.output, vqc.model.codebook, vqc.model.codebook_kind, vqc.model.vq_emit) == \
        ("vq", 32, "plain", "scaled")
    assert vqc.train.feedback_prob == 0.0 and vqc.train.input_noise == 0.1 and vqc.train.crossfade_ms == 2.0


def test_compile_cache_prefers_jax_own_setting_and_keeps_framegen_compile_cache(tmp_path, monkeypatch):
    import jax

    before = jax.config.jax_compilation_cache_dir
    try:
        jax.config.update("jax_compilation_cache_dir", str(tmp_path / "jax-own"))  # JAX_COMPILATION_CACHE_DIR's effect
        monkeypatch.setenv("FRAMEGEN_COMPILE_CACHE", "off")
        assert sweeps.enable_compile_cache() == str(tmp_path / "jax-own")
        jax.config.update("jax_compilation_cache_dir", None)
        assert sweeps.enable_compile_cache() is None  # off, as the variable says
        monkeypatch.setenv("FRAMEGEN_COMPILE_CACHE", str(tmp_path / "fg"))
        assert sweeps.enable_compile_cache() == str(tmp_path / "fg") and (tmp_path / "fg").is_dir()
    finally:
        jax.config.update("jax_compilation_cache_dir", before)


def test_a_trial_carries_its_last_scored_sample_and_the_table_shows_it():
    from framegen.sweep.results import sample_text
    from framegen.sweep.run import sample_scores

    rows = [{"step": 10, "sample_flags": ["no_pulse"], "sample_pulse_ratio": 0.1, "sample_rhythm_similarity": 0.0},
            {"step": 20, "sample_flags": [], "sample_pulse_ratio": 0.9, "sample_rhythm_similarity": 0.99,
             "sample_transition_jumps": 0.31, "sample_transition_shuffled": 0.08},
            {"step": 30}]
    got = sample_scores(rows)
    assert got["sample_pulse_ratio"] == 0.9 and got["sample_flags"] == [] and got["sample_novelty"] is None
    assert got["sample_transition_jumps"] == 0.31 and got["sample_jump_rate"] is None
    assert sample_scores([{"step": 1}]) == {}
    assert sample_text(got) == "0.900, 0.990, 0.31 (0.08), no flags"
    assert sample_text({"sample_flags": None}) == "-"
def test_precision_flag_reaches_every_trial(song):
    spec = sweeps.make_spec(None, song=song, frame_sizes="40,100", seq_lens="50", flags={"precision": "bf16"})
    for f in (40, 100):
        assert sweeps.run_config(f, 50, spec.options_for(f, 50)).model.precision == "bf16"
    assert sweeps.run_config(40, 50, sweeps.make_spec(None, song=song, frame_sizes="40", seq_lens="50")
                             .options_for(40, 50)).model.precision == "auto"  # resolved when the trial trains


def test_tiers_are_a_sweep_axis_with_their_own_keys_memory_and_skipped_cells(tmp_path):
    from framegen import sweep

    song = write(tmp_path / "song.wav", sine_song(8.0))
    path = tmp_path / "tiers.toml"
    path.write_text("""
[sweep]
frame_sizes = [40]
seq_lens = [50, 64]
tiers = [[], [8], "8,4"]
budget_samples = 1e6
[data]
sample_rate = 8000
[model]
hidden = 199
tier_hidden = 64
""")
    spec = sweep.make_spec(path, song=song)
    assert spec.tier_sets == ((), (8,), (8, 4))
    planned = sweep.plan_sweep(spec, tmp_path / "sw")
    plan = {t.key: t for t in planned.trials}
    assert list(plan) == ["f40-t50-flat", "f40-t50-tiers8", "f40-t50-tiers8x4", "f40-t64-flat", "f40-t64-tiers8",
                          "f40-t64-tiers8x4"]
    assert plan["f40-t50-tiers8"].status == "skipped" and "not a multiple of the tiers' product 8" in \
        plan["f40-t50-tiers8"].reason
    flat, one, two = (plan[f"f40-t64-{k}"] for k in ("flat", "tiers8", "tiers8x4"))
    assert (one.config.model.tiers, two.config.model.tiers, one.config.model.tier_hidden) == ((8,), (8, 4), 64)
    assert flat.config.model.tiers == () and flat.max_steps == one.max_steps  # equal budgets
    assert flat.est_memory < one.est_memory < two.est_memory  # the tower's parameters and activations count
    doc = sweep.plan_results(planned)  # the results table of the plan
    records = {r["key"]: r for r in doc["trials"]}
    assert doc["tier_sets"] == ["", "8", "8,4"] and records["f40-t64-tiers8x4"]["tiers"] == "8,4"
    md = sweep.results_markdown(doc)
    assert "| 40, flat | pending | pending |" in md and "| 40, tiers 8 | skipped | pending |" in md
    from framegen.plots import plot_sweep_heatmap

    plot_sweep_heatmap(tmp_path / "heatmap.png", doc)  # a row per F and tier set
    assert (tmp_path / "heatmap.png").stat().st_size > 5000

    one_set = {**doc, "trials": [{**r, "tiers": "8"} for r in doc["trials"]]}
    del one_set["tier_sets"]  # tiers set in [model] for every trial: the plain F x T table
    assert "| 40 | skipped | pending |" in sweep.results_markdown(one_set)

    path.write_text(path.read_text() + "tiers = [8]\n")  # in [model] too: which one?
    with pytest.raises(UsageError, match="tiers is a sweep axis"):
        sweep.make_spec(path, song=song)


def test_memory_estimate_of_a_tower_at_t_10000():
    """framegen bench --only memory --tiers 8 (2-core CPU, fp32): flat 1.56 GB, one tier of 8 x 128 2.30 GB."""
    base = dict(frame_size=40, seq_len=10_000, batch_size=32, hidden=256, layers=2, song_samples=3_000_000)
    flat = sweeps.estimate_memory(**base)
    tower = sweeps.estimate_memory(**base, tiers=(8,))
    assert 0.6e9 < tower - flat < 0.9e9  # chunked: no (T, B, 3H) conditioning is held
    assert sweeps.estimate_memory(**base, tiers=(8, 4)) > tower
