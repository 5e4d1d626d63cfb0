"""The ADMM market's own results (MODELS.md §B): ``admm_iterations.parquet`` (one row per
day and round: scaled primal and dual residuals, ρ of each constraint group, the community's objective that
round) and ``trades.parquet`` (one row per day, period and bilateral trade), and its
figures for ``summary.json`` (final residuals, the gap to the centralized optimum)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from coordinator.protocol import P2P
from scenarios.results import atomic
from scenarios.results.outcome import DayResult

ITERATION_COLUMNS = ["day", "round", "primal_residual", "dual_residual", "rho", "rho_net",
                     "primal_trade", "dual_trade", "primal_net", "dual_net", "objective_eur"]
TRADE_COLUMNS = ["day", "period", "seller", "buyer", "commodity", "kw"]
TRADE_MIN_KW = 1e-6  # smaller agreed trades are solver noise, not trades


def iterations_frame(days: list[DayResult]) -> pd.DataFrame:
    """Residuals (the largest over the constraint groups, and each group's: the pairs'
    reciprocity ``trade``, the network's consensus ``net``), each group's ρ and the
    objective (the peers' planned bills plus the operator's loss cost, as each planned it
    that round) per day and round."""
    scalars = ITERATION_COLUMNS[2:-1]
    rows = [{"day": d.day, "round": r.record.round,
             **{k: r.record.scalars.get(k) for k in scalars},
             "objective_eur": float(sum(r.cost_eur.values()))}
            for d in days for r in d.rounds]
    return pd.DataFrame(rows, columns=ITERATION_COLUMNS)


def trades_frame(days: list[DayResult]) -> pd.DataFrame:
    """Every agreed trade once, from its buyer's clearing (kW bought from the seller)."""
    rows = []
    for d in days:
        for buyer, clearing in sorted(d.clearings.items()):
            by = (clearing.by_counterparty_kw or {}).get(P2P, {})
            for seller, kws in sorted(by.items()):
                rows += [{"day": d.day, "period": t, "seller": seller, "buyer": buyer,
                          "commodity": P2P, "kw": float(kw)}
                         for t, kw in enumerate(kws) if kw > TRADE_MIN_KW]
    return pd.DataFrame(rows, columns=TRADE_COLUMNS)


def objective_eur(day: DayResult) -> float | None:
    """The community's objective at the market's last round."""
    return float(sum(day.rounds[-1].cost_eur.values())) if day.rounds else None


def write_admm(out: Path, days: list[DayResult], central_eur: list[float | None]) -> dict:
    """Write the tables; the figures ``summary.json`` adds under ``market``."""
    iterations = iterations_frame(days)
    atomic.write_parquet(out / "admm_iterations.parquet", iterations)
    atomic.write_parquet(out / "trades.parquet", trades_frame(days))
    last = iterations.iloc[-1] if len(iterations) else None
    return {"primal_residual": None if last is None else float(last["primal_residual"]),
            "dual_residual": None if last is None else float(last["dual_residual"]),
            "rho": None if last is None else float(last["rho"]),
            "rho_net": None if last is None or pd.isna(last["rho_net"]) else float(last["rho_net"]),
            **gap_figures([objective_eur(d) for d in days], central_eur)}


def gap_figures(ours: list[float | None], central_eur: list[float | None]) -> dict:
    """The market's objective and the centralized optimum over the days that have both,
    and the market's gap above it (%)."""
    paired = [(o, c) for o, c in zip(ours, central_eur, strict=True)
              if o is not None and c is not None]
    total_ours, total_central = sum(o for o, _ in paired), sum(c for _, c in paired)
    gap = (100 * (total_ours - total_central) / abs(total_central)
           if paired and total_central else None)
    return {"objective_eur": total_ours if paired else None,
            "centralized_eur": total_central if paired else None,
            "gap_to_centralized_pct": gap}
