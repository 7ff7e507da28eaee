"""The package's imports point down: no module of blendgan/ imports another in a circle, every part of the
package sits on a floor and imports only parts on floors below its own, and the ops import no other part of the
package. Every `import` statement counts, also those inside functions (a late import still ties the two modules
together), and so do imports made only for type checking."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def module_names(package_dir):
    """{dotted module name: file} of every .py file under `package_dir` (a package's name for __init__)."""
    base = package_dir.parent
    names = {}
    for f in sorted(package_dir.rglob("*.py")):
        parts = list(f.relative_to(base).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = f
    return names


def import_graph(package_dir):
    """{module: set of modules of the same package it imports}, from the source (nothing is imported)."""
    modules = module_names(package_dir)
    graph = {}
    for name, f in modules.items():
        is_package = f.name == "__init__.py"
        here = name.split(".") if is_package else name.split(".")[:-1]
        targets = set()
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    anchor = here[: len(here) - node.level + 1]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                else:
                    base = node.module
                for alias in node.names:  # `from pkg import submodule` imports the submodule
                    sub = f"{base}.{alias.name}"
                    targets.add(sub if sub in modules else base)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def find_cycle(graph):
    """One import circle as [a, b, ..., a], or None."""
    state = {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt, path + [nxt])
                if found:
                    return found
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start, [start])
            if found:
                return found
    return None


# the floors of the house, bottom up: a module imports only modules of its own part or of a lower floor
FLOORS = [
    {"errors", "defaults", "allocator", "machine"},
    {"ops", "io"},
    {"models"},
    {"weights"},
    {"losses", "devices", "controls", "align", "tracking", "pairset"},
    {"distributed", "fitting", "photo", "editing"},
    {"pipeline"},
    {"jobs", "metrics", "export", "onnx_run", "publish", "speed", "dataset_tool"},
    {"training"},
    {"demo"},
    {"cli"},
    {"__main__"},
]


def part_of(module):
    """The part of the package a module belongs to: its top-level module or subpackage ('' for blendgan)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def floor_of(part):
    return next(i for i, floor in enumerate(FLOORS) if part in floor)


def upward_imports(graph):
    """(module, imported module) pairs that import a part on the same floor or above (other than their own)."""
    found = []
    for name, targets in sorted(graph.items()):
        here = part_of(name)
        if here == "":  # the package's front door names its public classes (lazily)
            continue
        for t in sorted(targets):
            there = part_of(t)
            if there != here and floor_of(there) >= floor_of(here):
                found.append((name, t))
    return found


def test_every_part_of_the_package_has_a_floor():
    graph = import_graph(ROOT / "blendgan")
    parts = {part_of(name) for name in graph} - {""}
    placed = set().union(*FLOORS)
    assert parts <= placed, f"place these in tests/test_imports.py FLOORS: {sorted(parts - placed)}"


def test_no_import_points_up_or_sideways_between_floors():
    graph = import_graph(ROOT / "blendgan")
    assert upward_imports(graph) == []


def test_the_floor_check_finds_an_upward_import():
    graph = {"blendgan.models.generator": {"blendgan.pipeline"}, "blendgan.pipeline": {"blendgan.models"}}
    assert upward_imports(graph) == [("blendgan.models.generator", "blendgan.pipeline")]
    assert upward_imports({"blendgan.losses.perceptual": {"blendgan.devices"}}) == [
        ("blendgan.losses.perceptual", "blendgan.devices")
    ]


def dangling_imports(package_dir):
    """(module, name) for every `from .x import y` / `from blendgan.x import y` of the package whose module
    does not exist (a relative import left behind by a move fails only when that line runs)."""
    modules = module_names(package_dir)
    root = package_dir.name
    found = []
    for name, f in modules.items():
        here = name.split(".") if f.name == "__init__.py" else name.split(".")[:-1]
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = ".".join(here[: len(here) - node.level + 1] + ([node.module] if node.module else []))
                elif node.module and node.module.split(".")[0] == root:
                    base = node.module
                else:
                    continue
                if base not in modules:
                    found.append((name, base))
            elif isinstance(node, ast.Import):
                found += [(name, a.name) for a in node.names if a.name.split(".")[0] == root and a.name not in modules]
    return found


def test_every_import_of_the_package_names_a_module_that_exists():
    assert dangling_imports(ROOT / "blendgan") == []


def test_the_scan_finds_a_relative_import_left_behind(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "jobs").mkdir(parents=True)
    for f in ("__init__.py", "align.py", "jobs/__init__.py"):
        (pkg / f).write_text("")
    (pkg / "jobs" / "video.py").write_text("def f():\n    from .align import x\n    from ..align import y\n")
    assert dangling_imports(pkg) == [("pkg.jobs.video", "pkg.jobs.align")]


def test_blendgan_has_no_import_circle():
    graph = import_graph(ROOT / "blendgan")
    assert len(graph) > 30 and graph["blendgan.pipeline"]  # the scan found the package and its imports
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_ops_import_nothing_above_them():
    graph = import_graph(ROOT / "blendgan")
    for name, targets in graph.items():
        if name.startswith("blendgan.ops"):
            assert all(t.startswith("blendgan.ops") for t in targets), (name, targets)


def test_weights_modules_do_not_import_commands_or_pipeline():
    graph = import_graph(ROOT / "blendgan")
    for name, targets in graph.items():
        if name.startswith("blendgan.weights"):
            assert not any(t.startswith(("blendgan.cli", "blendgan.pipeline")) for t in targets), (name, targets)


def test_the_scan_finds_circles_through_late_and_relative_imports(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from .b import x\n")
    (pkg / "a.py").write_text("def f():\n    from .sub import b\n")  # late import of a submodule
    (pkg / "sub" / "b.py").write_text("from .. import c\nx = 1\n")
    (pkg / "c.py").write_text("import pkg.a\n")
    graph = import_graph(pkg)
    assert graph["pkg.a"] == {"pkg.sub.b"} and graph["pkg.sub.b"] == {"pkg.c"}
    assert find_cycle(graph) == ["pkg.a", "pkg.sub.b", "pkg.c", "pkg.a"]
    (pkg / "c.py").write_text("import os\n")
    assert find_cycle(import_graph(pkg)) is None


def test_weights_is_the_one_door_and_stays_torch_free_until_used():
    import subprocess
    import sys

    script = (
        "import sys\nsys.modules['torch'] = None\nimport blendgan.weights as w\n"
        "from blendgan.weights import HOME_ENV, weights_dir, OFFICIAL_WEIGHTS\nprint(sorted(w.__all__)[:2])\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    import blendgan.weights as w

    for name in w.__all__:  # every public name resolves to its module's object
        assert getattr(w, name) is not None, name
    assert w.load_generator.__module__ == "blendgan.weights.building"
    for shim in ("checkpoints", "download", "safetensors_file"):  # the old doors are gone
        assert not (ROOT / "blendgan" / f"{shim}.py").exists()
