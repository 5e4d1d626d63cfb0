"""``lemgrid bench --qp [SCENARIO]``: how a consensus market's peers solve each round's QP
(``market.qp``): HiGHS's active-set method from scratch against OSQP with its
factorization and last iterates kept between rounds (``agents.qp``), measured in one run
pair by pair (alternating which goes first): the whole run in the scenario's runtime,
its rounds, the market's time per round and the bill."""

from __future__ import annotations

import tempfile
from pathlib import Path

from lemgrid.scenarios.bench.models import pair_table, run_figures
from lemgrid.scenarios.schema import Scenario

QP_WAYS = ("highs", "osqp")  # the old way, the new
FIGURES = ("wall_s", "startup_s", "market_s", "market_s_per_round", "rounds", "total_eur")
KEY = "qp"  # the market parameter of the mechanisms whose peers solve QPs


def qp_problem(s: Scenario) -> str | None:
    """Why ``s`` cannot be benchmarked so (one line), or None."""
    from lemgrid.scenarios import mechanisms
    from lemgrid.scenarios.run.lab import has_parameter

    if KEY not in type(s.market).model_fields:
        having = [n for n in mechanisms.registry() if has_parameter(n, KEY)]
        return (f"bench --qp: {s.name}'s mechanism {s.market.mechanism} solves no QPs; "
                f"allowed: {', '.join(having)} (--set market.mechanism=NAME)")
    return None


def qp_run(s: Scenario, qp: str, out: Path) -> dict[str, float]:
    """One run of ``s`` with its peers' QPs solved ``qp``."""
    figures, summary = run_figures(s.model_copy(update={
        "market": s.market.model_copy(update={KEY: qp})}), out)
    return figures | {"market_s_per_round": figures["market_s"] / max(figures["rounds"], 1),
                      "converged": bool(summary["market"].get("converged", False))}


def run_qp_bench(s: Scenario, runs: int) -> list[dict]:
    """``runs`` pairs, alternating which way goes first; per pair each way's figures."""
    pairs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(runs):
            order = QP_WAYS if i % 2 == 0 else QP_WAYS[::-1]
            pairs.append({qp: qp_run(s, qp, Path(tmp) / f"{i}-{qp}") for qp in order})
    return pairs


def qp_table(pairs: list[dict]) -> list[str]:
    old, new = QP_WAYS
    rows = [(f"run, {key.replace('_', ' ')}", [p[old][key] for p in pairs],
             [p[new][key] for p in pairs]) for key in FIGURES]
    rows.append(("run, converged", [float(p[old]["converged"]) for p in pairs],
                 [float(p[new]["converged"]) for p in pairs]))
    return pair_table(rows, old, new)
