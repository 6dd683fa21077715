"""``framegen sweep``: train one run per frame size F x sequence length T with equal budgets and compare them.

The flow: ``spec.make_spec`` (experiment TOML + CLI flags) -> ``plan.plan_sweep`` (song length, memory estimate,
budget per trial, what is already done) -> ``run.run_sweep`` (an executor runs ``run_trial`` per cell) ->
``results`` (results.json/.csv/.md, heatmap.png, a ``best`` link). Every trial is a normal run directory.
"""

from framegen.sweep.plan import (MEMORY_HEADROOM, UNBOUNDED_STEPS, SweepPlan, Trial, available_memory, estimate_memory,
                                 format_plan, plan_sweep, trial_key)
from framegen.sweep.results import (CSV_COLUMNS, RESULTS_FILE, RESULTS_ROOT, RESULTS_VERSION, best_trial, cell_text,
                                    load_results, report, results_markdown, write_results)
from framegen.sweep.run import (STATUSES, SweepDisplay, describe_error, enable_compile_cache, plan_results,
                                run_sweep, run_trial)
from framegen.sweep.spec import (DEFAULT_BUDGET_SAMPLES, OPTIONS, SECTIONS, SHARED_ONLY, SWEEP_DEFAULTS, SWEEP_KEYS,
                                 Budget, SweepSpec, make_spec, read_experiment, run_config)

__all__ = [
    "MEMORY_HEADROOM", "UNBOUNDED_STEPS", "SweepPlan", "Trial", "available_memory", "estimate_memory", "format_plan",
    "plan_sweep", "trial_key", "CSV_COLUMNS", "RESULTS_FILE", "RESULTS_ROOT", "RESULTS_VERSION", "best_trial",
    "cell_text", "load_results", "report", "results_markdown", "write_results", "STATUSES", "SweepDisplay",
    "describe_error", "enable_compile_cache", "plan_results", "run_sweep", "run_trial", "DEFAULT_BUDGET_SAMPLES",
    "OPTIONS", "SECTIONS", "SHARED_ONLY", "SWEEP_DEFAULTS", "SWEEP_KEYS", "Budget", "SweepSpec", "make_spec",
    "read_experiment", "run_config",
]
