"""``lemgrid mechanisms``: every registered mechanism, the agent kinds it serves and where
it came from; with a name, its parameters (name, default, description) too."""

from __future__ import annotations

from lemgrid.scenarios.mechanisms import registry

COMMON = ("mechanism",)  # fields a listing leaves out: the name itself


def overview() -> str:
    rows = [("mechanism", "serves", "strategy", "origin", "")]
    for name, m in registry().items():
        rows.append((name, ", ".join(sorted(m.kinds)), m.strategy, m.origin, m.description))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4] for r in rows]
    return "\n".join(lines + ["", "lemgrid mechanisms NAME: one mechanism and its parameters"])


def parameter_rows(name: str) -> list[tuple[str, str, str]]:
    """(parameter, default, description) of every parameter of ``name``'s model."""
    mech = registry().get(name, None)
    if mech is None:
        raise KeyError(f"unknown mechanism {name!r}; known: {', '.join(registry())}")
    rows = []
    for field, info in mech.params.model_fields.items():
        if field in COMMON:
            continue
        default = info.default if field != "max_rounds" else f"null ({mech.default_rounds})"
        rows.append((field, str(default), info.description or ""))
    return rows


def describe(name: str) -> str:
    rows = parameter_rows(name)
    mech = registry()[name]
    head = [f"{name}: {mech.description}",
            f"  paper:     {mech.citation or '—'}",
            f"  serves:    {', '.join(sorted(mech.kinds))}",
            f"  strategy:  {mech.strategy}",
            f"  rounds:    {mech.default_rounds} at most by default (market.max_rounds)",
            f"  origin:    {mech.origin}", "", "  parameters (market.NAME: default  what):"]
    width = max(len(r[0]) for r in rows)
    return "\n".join(head + [f"    {p:<{width}}  {d}  {text}" for p, d, text in rows])
