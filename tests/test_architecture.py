"""The house rules of docs/architecture.md, read from the source: no import loops, pure metrics, no
import that runs up from a lower layer to a higher one, no file over 600 lines and no function over 80
lines of code, no file of the audit directory named outside audit.store, the report's parts registered,
and no Streamlit in the library."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

PACKAGES = ("audit", "human_study")
#: Where the size rules hold: the library and the app's pages.
SIZED = ("audit", "human_study", "audit_app")
MAX_FILE_LINES = 600
MAX_FUNCTION_LINES = 80
#: The audit directory's own file names: only audit.store names them (everyone else asks the store).
AUDIT_FILE_NAMES = {"manifest.json", "images.parquet", "models.parquet", "images.npy", "summary.json", "report"}
#: What audit/metrics/ may import: numpy, scipy, pandas, the standard library's typing helpers, and itself.
METRICS_MAY_IMPORT = ("numpy", "scipy", "pandas", "audit.metrics", "__future__", "typing", "collections",
                      "dataclasses", "math", "functools", "numbers")
#: Lower layers that must not import the layers above them (module prefix -> forbidden prefixes).
LAYERS = {
    "audit.metrics": ("audit.",),
    "audit.store": ("audit.running", "audit.curation", "audit.report", "audit.cli", "human_study"),
    "audit.data": ("audit.running", "audit.curation", "audit.report", "audit.cli", "audit.models", "human_study"),
    "audit.models": ("audit.running", "audit.curation", "audit.report", "audit.cli", "human_study"),
    "audit.deep": ("audit.running.jobs", "audit.running.engine", "audit.curation", "audit.cli", "human_study"),
    "audit.running.train": ("audit.running.jobs", "audit.running.engine", "audit.report", "audit.cli"),
    "audit.running.predict": ("audit.running.jobs", "audit.running.engine", "audit.report", "audit.cli"),
    "audit.report": ("audit.running", "audit.curation", "audit.cli", "human_study"),
    "audit.plots": ("audit.store", "audit.report", "audit.deep", "audit.running", "audit.curation", "audit.cli",
                    "human_study", "streamlit"),
    "audit.running": ("audit.cli",),
    "audit.curation": ("audit.running.engine", "audit.running.jobs", "audit.running.score", "audit.cli",
                       "human_study"),
    "human_study": ("audit.cli", "audit.running"),
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


def _sized_files() -> list[Path]:
    return sorted(f for pkg in SIZED for f in (ROOT / pkg).rglob("*.py"))


def test_no_file_is_over_600_lines():
    long = [f"{f.relative_to(ROOT)}: {n} lines" for f in _sized_files()
            if (n := len(f.read_text().splitlines())) > MAX_FILE_LINES]
    assert not long, long


def _code_lines(node: ast.AST, source: list[str]) -> int:
    """Lines of code of a function's body: its lines less blank ones, comments and the docstring (the
    signature is not counted, so a command's list of options is not code)."""
    body = node.body
    if len(body) > 1 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        body = body[1:]
    lines = range(body[0].lineno, node.end_lineno + 1)
    return sum(1 for i in lines if source[i - 1].strip() and not source[i - 1].strip().startswith("#"))


def _long_functions(path: Path) -> list[str]:
    text = path.read_text()
    source = text.splitlines()
    return [f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {n} lines of code"
            for node in ast.walk(ast.parse(text))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and (n := _code_lines(node, source)) > MAX_FUNCTION_LINES]


def test_no_function_is_over_80_lines_of_code():
    long = [entry for f in _sized_files() for entry in _long_functions(f)]
    assert not long, long


def test_the_function_rule_counts_code_not_docstrings(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(81))
    (tmp_path / "long.py").write_text(f'def f():\n    """Doc.\n\n    More.\n    """\n    # note\n\n{body}\n')
    (tmp_path / "short.py").write_text('def g():\n    """' + "\n" * 200 + '"""\n    return 1\n')
    assert len(_long_functions_at(tmp_path / "long.py")) == 1
    assert _long_functions_at(tmp_path / "short.py") == []


def _long_functions_at(path: Path) -> list[str]:
    text = path.read_text()
    return [n.name for n in ast.walk(ast.parse(text)) if isinstance(n, ast.FunctionDef)
            and _code_lines(n, text.splitlines()) > MAX_FUNCTION_LINES]


def _audit_file_names(path: Path) -> list[str]:
    """String constants in `path`'s code (not in docstrings, messages or f-strings) that are an audit file's name."""
    tree = ast.parse(path.read_text())
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    in_fstrings = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
    return [f"{path.relative_to(ROOT)}:{n.lineno} {n.value!r}" for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value in AUDIT_FILE_NAMES
            and id(n) not in docs and id(n) not in in_fstrings]


def test_no_file_of_the_audit_directory_is_named_outside_the_store():
    store = ROOT / "audit" / "store"
    named = [entry for pkg in ("audit", "human_study", "audit_app") for f in sorted((ROOT / pkg).rglob("*.py"))
             if store not in f.parents for entry in _audit_file_names(f)]
    assert not named, named


def test_the_file_name_rule_sees_a_read_by_name(tmp_path):
    probe = ROOT / "audit" / "_probe_file_names.py"
    probe.write_text('"""manifest.json in a docstring is fine."""\nimport json\n\n\ndef f(p):\n'
                     '    return json.loads((p / "manifest.json").read_text())\n')
    try:
        assert _audit_file_names(probe) == ["audit/_probe_file_names.py:6 'manifest.json'"]
    finally:
        probe.unlink()


def test_the_report_parts_are_registered_in_order():
    from audit.report import report_parts

    parts = report_parts()
    assert [p.name for p in parts] == ["models", "split", "consistency", "classes", "dynamics", "deeper",
                                       "representations", "training_scores", "humans", "scored"]
    assert [p.name for p in parts if p.deep] == ["deeper", "representations", "training_scores"]
    assert [p.name for p in parts if not p.depends_on_tolerance] == ["models", "dynamics"]


def test_the_library_imports_no_streamlit():
    """Only the app (audit_app) imports Streamlit; the library and the study's code never do."""
    mods = _modules()
    imports = _imports(mods)
    bad = sorted((m, t) for m, targets in imports.items() for t in targets
                 if t == "streamlit" or t.startswith("streamlit."))
    assert not bad, bad
