"""The import graph inside framegen (imports inside functions included) has no cycle and follows the layers below:
no module imports one above it, so every module can be read knowing only the modules below it."""

import ast
from pathlib import Path

import framegen

ROOT = Path(framegen.__file__).parent

# Bottom to top; a module may import its own layer and those below. A new module takes its place here.
LAYERS = [
    # no framegen import but these (the package itself holds the version)
    ["framegen", "framegen.errors", "framegen.atomic", "framegen.gru", "framegen.device", "framegen.seams",
     "framegen.spectral", "framegen.rhythm", "framegen.waveform", "framegen.synth", "framegen.report.style",
     "framegen.interrupts", "framegen.transitions", "framegen.songpath", "framegen.checksums"],
    ["framegen.config"],
    # songs, frames, the beat clock, the codebook, run directories, metrics and figures: no model
    ["framegen.audio", "framegen.data", "framegen.runs", "framegen.clock", "framegen.vq", "framegen.evaluate",
     "framegen.explain", "framegen.plots", "framegen.sweep.spec", "framegen.shape"],
    # the model and its slower tiers
    ["framegen.tower", "framegen.model"],
    # what runs the model: the jitted rollouts, unit selection, the train step, checkpoints
    ["framegen.rollout", "framegen.units", "framegen.step", "framegen.checkpoint"],
    ["framegen.stream"],
    # the library's two entry points
    ["framegen.generate", "framegen.train"],
    # built on them
    ["framegen.bench.timing", "framegen.bench.torch_ref", "framegen.bench.timers", "framegen.bench.memory",
     "framegen.bench", "framegen.demo", "framegen.sweep.results", "framegen.sweep.plan", "framegen.sweep.run",
     "framegen.sweep", "framegen.display", "framegen.report.figures",
     "framegen.report.collect", "framegen.report.html", "framegen.report.pages", "framegen.report"],
    ["framegen.cli"],
]


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """framegen module -> the framegen modules it imports anywhere in its file."""
    modules = {_module(p): p for p in ROOT.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        deps = set()
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: up from this module's package
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                deps.add(base)
                deps.update(f"{base}.{a.name}" for a in node.names)  # `from framegen import train` is a module
        graph[name] = {d for d in deps if d in modules and d != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state, stack = {}, []

    def visit(n):
        state[n] = "open"
        stack.append(n)
        for m in sorted(graph[n]):
            if state.get(m) == "open":
                return stack[stack.index(m):] + [m]
            if m not in state and (c := visit(m)):
                return c
        state[n] = "done"
        stack.pop()
        return None

    for n in sorted(graph):
        if n not in state and (c := visit(n)):
            return c
    return None


def test_the_import_graph_inside_framegen_has_no_cycle():
    graph = import_graph()
    assert {"framegen.train", "framegen.generate", "framegen.cli"} <= set(graph)
    assert "framegen.train" in graph["framegen.cli"]  # imports inside functions are seen
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle)


def test_no_module_imports_one_above_it():
    graph = import_graph()
    layer = {m: i for i, names in enumerate(LAYERS) for m in names}
    assert set(graph) == set(layer), f"add new modules to LAYERS, drop gone ones: {set(graph) ^ set(layer)}"
    upward = [f"{m} imports {d}" for m in graph for d in graph[m] if layer[d] > layer[m]]
    assert not upward, "; ".join(sorted(upward))


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
