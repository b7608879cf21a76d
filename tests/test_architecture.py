"""The house rules of docs/architecture.md, read from the source: no import loops, pure metrics, no
import that runs up from a lower layer to a higher one, and no overlong file. (No Streamlit in the
library: tests/test_app_data.py.)"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

PACKAGES = ("audit", "human_study")
#: What audit/metrics/ may import: numpy, scipy, pandas, the standard library's typing helpers, and itself.
METRICS_MAY_IMPORT = ("numpy", "scipy", "pandas", "audit.metrics", "__future__", "typing", "collections",
                      "dataclasses", "math", "functools", "numbers")
#: Lower layers that must not import the layers above them (module prefix -> forbidden prefixes).
LAYERS = {
    "audit.metrics": ("audit.",),
    "audit.store": ("audit.jobs", "audit.engine", "audit.report", "audit.cli", "human_study"),
    "audit.data": ("audit.jobs", "audit.engine", "audit.report", "audit.cli", "audit.models", "human_study"),
    "audit.models": ("audit.jobs", "audit.engine", "audit.report", "audit.cli", "human_study"),
    "audit.deep": ("audit.jobs", "audit.engine", "audit.cli", "human_study"),
    "audit.train": ("audit.jobs", "audit.engine", "audit.report", "audit.cli"),
    "audit.predict": ("audit.jobs", "audit.engine", "audit.report", "audit.cli"),
    "audit.report": ("audit.engine", "audit.jobs", "audit.cli", "human_study"),
    "audit.plots": ("audit.store", "audit.report", "audit.deep", "audit.engine", "audit.jobs", "audit.cli",
                    "human_study", "streamlit"),
    "audit.scorer": ("audit.cli",),
    "audit.curate": ("audit.engine", "audit.jobs", "audit.scorer", "audit.cli", "human_study"),
    "audit.relabel": ("audit.engine", "audit.jobs", "audit.report", "audit.cli", "human_study"),
    "human_study": ("audit.cli", "audit.engine", "audit.jobs"),
}


def _modules() -> dict[str, Path]:
    mods = {}
    for pkg in PACKAGES:
        for f in (ROOT / pkg).rglob("*.py"):
            rel = f.relative_to(ROOT).with_suffix("")
            mods[".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)] = f
    return mods


def _imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    """Every module's imports, absolute, as written (lazy imports inside functions included)."""
    out = {}
    for name, path in mods.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".")
                    base = base[: len(base) - node.level + (1 if path.name == "__init__.py" else 0)]
                    prefix = ".".join(base + ([node.module] if node.module else []))
                else:
                    prefix = node.module or ""
                found.add(prefix)
                found.update(f"{prefix}.{a.name}" for a in node.names)
        out[name] = found
    return out


def _graph(mods, imports) -> dict[str, set[str]]:
    edges = {m: set() for m in mods}
    for m, targets in imports.items():
        for t in targets:
            while t and t not in mods:
                t = t.rpartition(".")[0]
            if t and t != m and not m.startswith(t + "."):
                edges[m].add(t)
    return edges


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]

    def visit(root):
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges[w]))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_finds_a_planted_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_between_modules():
    mods = _modules()
    assert _cycles(_graph(mods, _imports(mods))) == []


def test_metrics_import_only_numpy_scipy_pandas_and_themselves():
    mods = _modules()
    imports = _imports(mods)
    bad = {
        (m, t)
        for m, targets in imports.items() if m.startswith("audit.metrics")
        for t in targets
        if not any(t == ok or t.startswith(ok + ".") for ok in METRICS_MAY_IMPORT)
    }
    assert not bad, sorted(bad)


def test_no_import_runs_up_a_layer():
    mods = _modules()
    edges = _graph(mods, _imports(mods))
    bad = sorted(
        (m, t)
        for m, targets in edges.items()
        for layer, forbidden in LAYERS.items() if _under(m, layer)
        for t in targets if not _under(t, layer) and any(_under(t, f) for f in forbidden)
    )
    assert not bad, bad


def _under(module: str, prefix: str) -> bool:
    """`module` is `prefix` or lies inside it ("audit." means any module of the audit package)."""
    if prefix.endswith("."):
        return module.startswith(prefix)
    return module == prefix or module.startswith(prefix + ".")


def test_no_library_file_is_over_600_lines_without_saying_why():
    long = []
    for path in _modules().values():
        text = path.read_text()
        doc = ast.get_docstring(ast.parse(text)) or ""
        if len(text.splitlines()) > 650 and "lines" not in doc:
            long.append(f"{path.relative_to(ROOT)}: {len(text.splitlines())} lines")
    assert not long, long
