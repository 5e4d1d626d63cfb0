"""``lemgrid bench --models [SCENARIO]``: how agents' models are built, from their
structure's template against directly in Pyomo (``solver.agent_models``), measured in one
run pair by pair: the build per agent of the first day's models (templates built cold,
as a fresh process does), the build of a later day's (templates at hand), and the whole
day in-process under each, with its bill (which must not change)."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from lemgrid.agents.data import MODEL_BUILDS
from lemgrid.scenarios.schema import Scenario

DAY_FIGURES = ("wall_s", "startup_s", "market_s", "rounds", "total_eur")


def build_times(s: Scenario) -> dict[str, dict[str, float]]:
    """Per build way: ms per agent to build every agent's first-day model with no template
    at hand (``cold``: each structure's template is built on the way) and again (``warm``),
    and the number of templates."""
    from lemgrid.agents import model
    from lemgrid.agents.days import day_slice
    from lemgrid.scenarios.community.builder import build_community

    datas = [day_slice(d, 0) for d in build_community(s)]
    out = {}
    for build in MODEL_BUILDS:
        model.forget_templates()
        row = {}
        for phase in ("cold", "warm"):
            t0 = time.perf_counter()
            for d in datas:
                model.AgentModel(d, build=build)
            row[f"{phase}_ms_per_agent"] = 1e3 * (time.perf_counter() - t0) / len(datas)
        row["templates"] = model.forget_templates()
        out[build] = row
    return out


def run_figures(s: Scenario, out: Path) -> tuple[dict[str, float], dict]:
    """One run of ``s``: its ``DAY_FIGURES`` and its summary."""
    from lemgrid.scenarios.run.world import run_scenario

    summary = run_scenario(s, out)
    t = summary["timing_s"]
    return ({"wall_s": t["wall"], "startup_s": t["startup"], "market_s": t["market"],
             "rounds": summary["market"]["rounds"], "total_eur": summary["costs_eur"]["total"]},
            summary)


def day_in_process(s: Scenario, build: str, out: Path) -> dict[str, float]:
    """One in-process run of the scenario with its agents' models built ``build``."""
    return run_figures(s.model_copy(update={
        "runtime": s.runtime.model_copy(update={"kind": "inprocess"}),
        "solver": s.solver.model_copy(update={"agent_models": build})}), out)[0]


def run_models_bench(s: Scenario, runs: int) -> list[dict]:
    """``runs`` pairs, alternating which build goes first; per pair each way's figures."""
    pairs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(runs):
            order = MODEL_BUILDS if i % 2 == 0 else MODEL_BUILDS[::-1]
            pair = {"build": build_times(s)}
            for build in order:
                pair[build] = day_in_process(s, build, Path(tmp) / f"{i}-{build}")
            pairs.append(pair)
    return pairs


def run_versus_bench(now: Scenario, other: Scenario, runs: int) -> list[dict]:
    """``runs`` pairs of whole runs, the scenario as given (``now``) against it with other
    settings (``other``, e.g. an old path), alternating which goes first; per pair each
    way's ``DAY_FIGURES`` and its figures' own, plus the power flows' seconds."""
    pairs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(runs):
            ways = (("now", now), ("other", other))
            pair = {}
            for way, s in ways if i % 2 == 0 else ways[::-1]:
                figures, summary = run_figures(s, Path(tmp) / f"{i}-{way}")
                pair[way] = figures | {"grid_s": summary["timing_s"]["grid"]}
            pairs.append(pair)
    return pairs


def versus_table(pairs: list[dict]) -> list[str]:
    """One line per figure: each way's median (min–max), the median of the pairs' ratios
    other ÷ now."""
    rows = [(f"run, {key.replace('_', ' ')}", [p["other"][key] for p in pairs],
             [p["now"][key] for p in pairs]) for key in (*DAY_FIGURES, "grid_s")]
    return pair_table(rows, "other", "now")


def _stats(values: list[float], fmt: str = ".4g") -> str:
    return (f"{statistics.median(values):{fmt}} ({min(values):{fmt}}–{max(values):{fmt}})"
            if values else "")


def models_table(pairs: list[dict]) -> list[str]:
    """One line per figure: each way's median (min–max) and the median of the pairs'
    ratios pyomo ÷ template."""
    old, new = MODEL_BUILDS[1], MODEL_BUILDS[0]
    rows = []
    for key in ("cold_ms_per_agent", "warm_ms_per_agent", "templates"):
        rows.append((f"model build, {key.replace('_', ' ')}",
                     [p["build"][old][key] for p in pairs], [p["build"][new][key] for p in pairs]))
    for key in DAY_FIGURES:
        rows.append((f"in-process run, {key.replace('_', ' ')}",
                     [p[old][key] for p in pairs], [p[new][key] for p in pairs]))
    return pair_table(rows, old, new)


def pair_table(rows: list[tuple[str, list[float], list[float]]], old: str, new: str
               ) -> list[str]:
    """Figures measured pair by pair two ways (name, the old way's values, the new way's):
    one line each with each way's median (min–max) and, for times (names ending " s" or
    " ms per agent"), the median of the pairs' ratios old ÷ new."""
    lines = [(f"{'figure':<40} {old + ' median (min–max)':>30} "
             f"{new + ' median (min–max)':>30} {old + ' ÷ ' + new:>18}")]
    for name, a, b in rows:
        timed = name.endswith((" s", " ms per agent", " s per round"))
        ratios = [x / y for x, y in zip(a, b, strict=True) if y and timed]
        ratio = f"{statistics.median(ratios):.3g}" if ratios else ""
        fmt = ".4f" if name.endswith(" eur") else ".4g"  # a bill to the cent and beyond
        lines.append(f"{name:<40} {_stats(a, fmt):>30} {_stats(b, fmt):>30} {ratio:>18}")
    return lines
