"""Package boundaries (docs/reference/layout.md#import-rules), checked by parsing every
module's imports."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# package -> imports it must not make (prefixes); agents may import the protocol and the pure
# network models (the operator agent holds them: the branch-flow and DC models, the feeder's
# paths and the AC power flow).
FORBIDDEN = {
    "agents": ("coordinator", "scenarios", "grid"),
    "coordinator": ("agents", "scenarios", "grid", "mosaik"),
    "grid": ("agents", "coordinator", "scenarios"),
}
ALLOWED = {"agents": ("coordinator.protocol", "grid.branchflow", "grid.clearance",
                      "grid.networks", "grid.paths", "grid.powerflow")}
# Pure modules: no transport, no co-simulation framework.
PURE = ["agents/data.py", "agents/equipment.py", "agents/formulations.py", "agents/solver.py",
        "agents/diagnose.py", "agents/market_agent.py", "coordinator/protocol.py",
        "coordinator/session.py", "coordinator/centralized.py", "coordinator/mechanisms",
        "agents/admm_peer.py", "agents/operator.py",
        "grid/branchflow.py", "grid/paths.py"]


def raw_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def imports(path: Path) -> set[str]:
    """What a module imports, the project's own modules without their ``lemgrid.``
    (``lemgrid.grid.paths`` -> ``grid.paths``, as the folders are named)."""
    return {n.removeprefix("lemgrid.") for n in raw_imports(path)}


def modules(rel: str):
    p = ROOT / rel
    return [p] if p.is_file() else sorted(p.rglob("*.py"))


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_boundaries(package):
    bad = []
    for path in modules(package):
        for name in imports(path):
            if name.startswith(FORBIDDEN[package]) and not name.startswith(
                    ALLOWED.get(package, ("\0",))):
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, bad


def test_models_and_mechanisms_are_pure():
    bad = [f"{p.relative_to(ROOT)} imports {n}" for rel in PURE for p in modules(rel)
           for n in imports(p) if n.split(".")[0] in ("zmq", "mosaik", "mosaik_api_v3")]
    assert not bad, bad


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph(packages=("agents", "coordinator", "grid", "scenarios")) -> dict[str, set[str]]:
    """Module -> project modules it imports (at any depth of the file, lazy ones too)."""
    mods = {_module_name(p): p for pkg in packages for p in modules(pkg)}
    graph = {}
    for name, path in mods.items():
        targets = set()
        for imp in imports(path):
            while imp and imp not in mods:  # "from pkg import module" names the package
                imp = imp.rpartition(".")[0]
            if imp and imp != name:
                targets.add(imp)
        graph[name] = targets
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state, stack = {}, []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_circles_between_modules():
    assert _cycle(_graph()) is None, " -> ".join(_cycle(_graph()))


def test_no_import_circles_between_scenario_subpackages():
    """scenarios/{community,run,results,bench} and the top modules form a DAG."""
    def part(mod: str) -> str:
        bits = mod.split(".")
        return ".".join(bits[:2]) if bits[0] == "scenarios" else bits[0]
    graph: dict[str, set[str]] = {}
    for mod, targets in _graph().items():
        graph.setdefault(part(mod), set()).update(part(t) for t in targets if part(t) != part(mod))
    found = _cycle(graph)
    assert found is None, " -> ".join(found)


# -- mechanisms are plug-ins -----------------------------------------------------------------
PRODUCT = ("agents", "coordinator", "grid", "scenarios")


def _own_modules(mech) -> set[Path]:
    """A mechanism's own modules: its core's (where its parameter model names it), its
    plug-in's, and the modules named after it (its results, bench, network model)."""
    import importlib

    own = {Path(importlib.import_module(m).__file__).resolve()
           for m in (mech.params.__module__, mech.source.partition(":")[0])}
    return own | {p.resolve() for pkg in PRODUCT for p in modules(pkg) if p.stem == mech.name}


def test_no_mechanism_name_outside_its_own_modules():
    """A registered mechanism's name, as a string, appears only in its own modules: the
    runtime, schema, results, report, bench and command line ask the plug-in instead."""
    from lemgrid.scenarios.mechanisms import registry

    own = {name: _own_modules(mech) for name, mech in registry().items()}
    bad = []
    for pkg in PRODUCT:
        for path in modules(pkg):
            for node in ast.walk(ast.parse(path.read_text())):
                if (isinstance(node, ast.Constant) and node.value in own
                        and path.resolve() not in own[node.value]):
                    bad.append(f"{path.relative_to(ROOT)}:{node.lineno} names {node.value!r}")
    assert not bad, bad


WIDE_CALL = 8  # positional arguments from which a call must name them


def test_wide_calls_name_their_arguments():
    """No product call passes ``WIDE_CALL`` or more arguments by position: a wide
    constructor or function is called with keywords (its order cannot drift silently)."""
    bad = [f"{path.relative_to(ROOT)}:{node.lineno} {ast.unparse(node.func)}"
           for pkg in PRODUCT for path in modules(pkg)
           for node in ast.walk(ast.parse(path.read_text()))
           if isinstance(node, ast.Call) and len(node.args) >= WIDE_CALL]
    assert not bad, bad


def test_the_project_is_imported_through_its_namespace():
    """Installed, the four folders are ``lemgrid.agents``, ``lemgrid.coordinator``,
    ``lemgrid.grid`` and ``lemgrid.scenarios``: no module imports them by their bare
    folder names (which would load a second copy of each module)."""
    bare = [f"{path.relative_to(ROOT)} imports {name}"
            for rel in (*PRODUCT, "tests", "lemgrid") for path in modules(rel)
            for name in raw_imports(path) if name.split(".")[0] in PRODUCT]
    assert not bare, bare
