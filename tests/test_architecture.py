"""Package boundaries of DESIGN.md, checked by parsing every module's imports."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# package -> imports it must not make (prefixes); "coordinator.protocol" is allowed to agents.
FORBIDDEN = {
    "agents": ("coordinator", "scenarios", "grid"),
    "coordinator": ("agents", "scenarios", "grid", "mosaik"),
    "grid": ("agents", "coordinator", "scenarios"),
}
ALLOWED = {"agents": ("coordinator.protocol",)}
# Pure modules: no transport, no co-simulation framework.
PURE = ["agents/data.py", "agents/equipment.py", "agents/formulations.py", "agents/solver.py",
        "agents/diagnose.py", "agents/market_agent.py", "coordinator/protocol.py",
        "coordinator/session.py", "coordinator/centralized.py", "coordinator/mechanisms"]


def imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


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
