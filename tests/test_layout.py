"""The code layout keeps its promises (issue 16): no import circle, no module over 800 lines, no
private name imported across modules, and each stage in its own subpackage.

The import graph counts every ``import`` statement, also those inside functions (a lazy import
is still a dependency), and a submodule importing its own package's ``__init__``."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "fhirpkg"
MAX_LINES = 800


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imported(path: Path, known: dict[str, Path]):
    """(module imported, names imported from it, line) for each fhirpkg import in one file."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("fhirpkg"):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                if full in known:
                    yield full, None, node.lineno
                else:
                    yield node.module, alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.level:
            for alias in node.names:
                yield f"<relative import level {node.level}>", alias.name, node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("fhirpkg"):
                    yield alias.name, None, node.lineno


def import_graph() -> dict[str, set[str]]:
    known = modules()
    graph = {m: set() for m in known}
    for mod, path in known.items():
        for target, _name, _line in imported(path, known):
            while target not in known and "." in target:
                target = target.rsplit(".", 1)[0]
            if target in known and target != mod:
                graph[mod].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        out.append(sorted(component))
    return out


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle():
    graph = import_graph()
    assert sum(len(v) for v in graph.values()) > 100  # the scan sees the package's imports
    assert cycles(graph) == []


def test_imports_are_absolute():
    known = modules()
    relative = [f"{p.relative_to(ROOT)}:{line}" for p in known.values()
                for target, _n, line in imported(p, known) if target.startswith("<relative")]
    assert relative == []


@pytest.mark.parametrize("folder", ["fhirpkg", "tests", "scripts", "benchmarks"])
def test_no_private_name_imported_across_modules(folder):
    known = modules()
    found = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        if "node_modules" in path.parts:
            continue
        for target, name, line in imported(path, known):
            if name and name.startswith("_") and not name.startswith("__"):
                found.append(f"{path.relative_to(ROOT)}:{line} imports {name} from {target}")
    assert found == []


def test_no_module_over_800_lines():
    sizes = {str(p.relative_to(ROOT)): len(p.read_text(encoding="utf-8").splitlines()) for p in modules().values()}
    assert len(sizes) > 40
    assert {p: n for p, n in sizes.items() if n > MAX_LINES} == {}, "split these by responsibility"


def test_stages_have_their_own_subpackages():
    """read (fhir/) -> validate (validation/) -> build and publish (publish/), content/ and logic/ beside:
    the top level keeps only the CLI, the API, the two ways of spreading work (parallel: worker
    processes, spark: a Spark cluster) and what every stage shares."""
    for sub in ("fhir", "validation", "content", "publish", "logic"):
        assert (PACKAGE / sub / "__init__.py").is_file(), sub
    top = sorted(p.stem for p in PACKAGE.glob("*.py"))
    assert top == ["__init__", "api", "cli", "errors", "fsutil", "issues", "loader", "parallel", "reports", "spark"]


def test_reading_does_not_depend_on_publishing():
    """The one-way flow: fhir/ and validation/ never import publish/ or the CLI."""
    graph = import_graph()
    back = {(a, b) for a, deps in graph.items() for b in deps
            if a.startswith(("fhirpkg.fhir", "fhirpkg.validation"))
            and b.startswith(("fhirpkg.publish", "fhirpkg.cli", "fhirpkg.content"))}
    assert back == set()
