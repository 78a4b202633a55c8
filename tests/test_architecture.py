"""The package's shape: the kernel contract, one source of codes, no import cycles.

These hold the layout described in ``fastnn/_kernels/__init__.py`` and
``docs/contributing.md`` in place as the code grows.
"""
import ast
from pathlib import Path

import pytest

from fastnn import _kernels as K
from fastnn._kernels import codes

PACKAGE = Path(K.__file__).resolve().parents[1]  # .../fastnn


@pytest.mark.parametrize("name", K.available())
def test_every_backend_exports_exactly_the_contract(name):
    module = K.load(name)
    public = {n for n in dir(module) if not n.startswith("_")}
    allowed = {"NAME", *K.KERNELS, *K.OPTIONAL_KERNELS}
    assert public - allowed == set(), f"{name}: names beyond the contract (make them private)"
    assert set(K.KERNELS) <= public, f"{name}: misses required kernels"
    assert module.NAME == name
    assert sorted(module.__all__) == sorted(public)


@pytest.mark.parametrize("name", ["numpy", "numba", "cython"])
def test_every_backend_is_a_package_split_the_same_way(name):
    folder = PACKAGE / "_kernels" / name
    assert (folder / "__init__.py").is_file()
    parts = {p.stem for p in folder.iterdir() if p.suffix in (".py", ".pyx")}
    for concern in ("_activations", "_dense", "_losses", "_optimizers", "_training", "_predict"):
        assert concern in parts or (folder / f"{concern}.pxd").is_file(), f"{name}/ has no {concern}"


def test_codes_are_numbered_in_the_order_of_their_names():
    for group, names in codes.GROUPS.items():
        assert [getattr(codes, n) for n in names] == list(range(len(names))), group
        assert getattr(K, names[0]) == 0  # and the contract re-exports them


def test_every_code_has_its_user_facing_class():
    from fastnn import activations, losses

    for code, name in enumerate(codes.ACTIVATIONS):
        assert activations.get(name.lower()).code == code, name
    for code, name in enumerate(codes.LOSSES):
        assert losses.get(name.lower()).code == code, name


def _module_name(path):
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(name):
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file() \
        or path.with_suffix(".pyx").is_file()


def _imports(path, module):
    """fastnn modules that ``module`` imports anywhere in its body (functions included)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("fastnn"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                base = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.startswith("fastnn"):
                base = node.module
            else:
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if _is_module(sub) else base)
    found.discard(module)
    return found


def test_no_import_cycles():
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        module = _module_name(path)
        graph[module] = _imports(path, module)
    # A package's __init__ importing its own submodules is how packages are built;
    # a submodule importing its package back is the cycle to avoid.
    state, stack, cycles = {}, [], []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert cycles == [], "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_long_modules_explain_why_they_are_long():
    for path in list(PACKAGE.rglob("*.py")) + list(PACKAGE.rglob("*.pyx")):
        lines = path.read_text().splitlines()
        if len(lines) > 600:
            head = "\n".join(lines[:80]).lower()
            assert "design note" in head, f"{path.relative_to(PACKAGE)} has {len(lines)} lines and no design note"
