"""Extract the columns of hetdex_api's h5tools ``IsDescription`` classes into a JSON of facts.

    python scripts/h5tools_schema.py REPO > tests/data/h5tools_schema.json

REPO is a git clone of HETDEX/hetdex_api. For the commits d35b01a (the 0.8.7 release) and
b8caea2 (HEAD when written), every ``class X(tb.IsDescription)`` of the h5tools scripts listed
below is read with ``ast`` (nothing is imported or run): for each ``name = tb.<Type>Col(...)``
its type, shape, itemsize and ``pos``. The ``if hdr_survey == "hdr1": ... else: ...`` branch of
VIRUSFiber is taken for the HDR2+ survey (the else branch). The JSON is what
``tests/unit/test_h5_schema.py`` compares hetred's tables with.
"""
from __future__ import annotations

import ast
import json
import subprocess
import sys

COMMITS = {"0.8.7": "d35b01a", "head": "b8caea2"}
FILES = ("h5tools/create_shot_hdf5.py", "h5tools/create_astrometry_hdf5.py", "h5tools/create_fiber_index_hdf5.py",
         "h5tools/create_detect_hdf5.py", "hetdex_tools/get_spec2D.py")
_CODES = {"Int8Col": "i1", "Int32Col": "i4", "Int64Col": "i8", "Float32Col": "f4", "Float64Col": "f8",
          "BoolCol": "b1"}


def _literal(node: ast.AST):
    try:
        return ast.literal_eval(node)
    except ValueError:
        return None


def _column(call: ast.Call) -> dict | None:
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    if name != "StringCol" and name not in _CODES:
        return None
    args = [_literal(a) for a in call.args]
    kw = {k.arg: _literal(k.value) for k in call.keywords}
    shape: tuple = ()
    if name == "StringCol":
        code = f"S{int(args[0])}"
        if len(args) > 1:
            shape = args[1]
    else:
        code = _CODES[name]
        if args:
            shape = args[0]
        shape = kw.get("shape", shape)
    if isinstance(shape, int):
        shape = (shape,)
    return {"code": code, "shape": list(shape or ()), "pos": kw.get("pos")}


def _body(stmts: list[ast.stmt]) -> list[tuple[str, dict]]:
    out: list[tuple[str, dict]] = []
    for s in stmts:
        if isinstance(s, ast.Assign) and isinstance(s.value, ast.Call) and len(s.targets) == 1 \
                and isinstance(s.targets[0], ast.Name):
            col = _column(s.value)
            if col is not None:
                out.append((s.targets[0].id, col))
        elif isinstance(s, ast.If):          # VIRUSFiber: hdr1 branch or the HDR2+ one
            out += _body(s.orelse)
    return out


def _classes(source: str) -> dict[str, list]:
    out = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef) and any("IsDescription" in ast.unparse(b) for b in node.bases):
            out[node.name] = [[n, c["code"], c["shape"], c["pos"]] for n, c in _body(node.body)]
    return out


def main(repo: str) -> None:
    facts: dict = {"source": "HETDEX/hetdex_api h5tools IsDescription classes (scripts/h5tools_schema.py)",
                   "commits": COMMITS, "schemas": {}}
    for schema, commit in COMMITS.items():
        per = {}
        for f in FILES:
            text = subprocess.run(["git", "-C", repo, "show", f"{commit}:{f}"], capture_output=True, text=True,
                                  check=True).stdout
            per[f] = _classes(text)
        facts["schemas"][schema] = per
    json.dump(facts, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
