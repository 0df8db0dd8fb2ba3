"""The shape of the house (../shared/guide/architecture.md, docs/code.md): one package per stage,
data flowing one way, no import circles.

The graph is built from every ``import`` statement in src/hetred, those inside functions
included (a lazy import is still a dependency), but not those under ``if TYPE_CHECKING:``.
"""
from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "hetred"

#: one package per stage, in the order of the process
STAGE_PACKAGES = ("lists", "bias", "background", "flat", "twical", "sci", "astrom", "throughput", "calfib", "calfib",
                  "fullsky", "resmap", "detect", "h5", "report")
#: what any stage may import: instrument facts, io, numerics, shared fiber model, the per-amp
#: reduction, units and settings (a stage never imports another stage's internals)
SHARED = {"_ext", "_version", "errors", "stats", "moffat", "layout", "config", "virus", "io", "fibers", "ccd",
          "jobs.units"}
#: products of earlier stages that stages read through a reader module (the tarlist)
PRODUCT_READERS = {"lists.tarlist"}


def _module_name(py: Path) -> str:
    rel = py.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, module: str, is_pkg: bool) -> set[str]:
    out: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("hetred"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = module.split(".") if is_pkg else module.split(".")[:-1]
                pkg = pkg[:len(pkg) - (node.level - 1)]
                base = ".".join(pkg + ([base] if base else []))
            if base.startswith("hetred"):
                out.add(base)
                out.update(f"{base}.{a.name}" for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return out


def module_graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, py in files.items():
        deps = _imports(ast.parse(py.read_text()), name, py.name == "__init__.py")
        graph[name] = {d for d in deps if d in files and d != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
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

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def test_no_import_circles_between_modules():
    graph = module_graph()
    # a package's __init__ importing its own modules is not a circle of the code
    graph = {m: {d for d in deps if not (m.startswith(d + ".") and d.count(".") < m.count("."))}
             for m, deps in graph.items()}
    assert not _cycles(graph), f"import circles: {_cycles(graph)}"


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _allowed(dep: str) -> bool:
    rest = dep.split(".", 1)[1] if "." in dep else ""
    return any(rest == s or rest.startswith(s + ".") for s in SHARED | PRODUCT_READERS)


def test_stages_import_only_shared_packages_and_themselves():
    offenders = []
    for module, deps in module_graph().items():
        stage = _top(module)
        if stage not in STAGE_PACKAGES:
            continue
        for dep in deps:
            if _top(dep) == stage or _allowed(dep):
                continue
            offenders.append(f"{module} -> {dep}")
    assert not offenders, "a stage imports another stage's internals:\n" + "\n".join(sorted(offenders))


def test_shared_packages_import_no_stage():
    offenders = []
    for module, deps in module_graph().items():
        top = _top(module)
        if top not in {s.split(".")[0] for s in SHARED} or module.startswith("hetred.jobs"):
            continue
        offenders += [f"{module} -> {d}" for d in deps if _top(d) in STAGE_PACKAGES]
    assert not offenders, "shared code imports a stage:\n" + "\n".join(sorted(offenders))


def test_every_stage_package_has_a_run_module():
    for stage in STAGE_PACKAGES:
        pkg = SRC / stage
        if pkg.is_dir() and stage != "lists":
            assert (pkg / "run.py").exists(), f"{stage}/ has no run.py (its units of work)"


def test_the_graph_sees_the_package():
    graph = module_graph()
    assert "hetred.twical.run" in graph and "hetred.fibers.extract" in graph["hetred.twical.run"]
