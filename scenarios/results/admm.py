"""The ADMM market's own results (docs/mechanisms/admm.md): ``admm_iterations.parquet`` (one
row per day and round: scaled primal and dual residuals, ρ of each constraint group, the
community's objective that round) and ``trades.parquet`` (one row per day, period and
bilateral trade), and its figures for ``summary.json`` (final residuals, the gap to the
centralized optimum)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lemgrid.coordinator.protocol import P2P, period_values
from lemgrid.scenarios.results import atomic, figures
from lemgrid.scenarios.results.outcome import DayResult
from lemgrid.scenarios.results.sections import FigureSpec, Section, format_value

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
                         for t, kw in period_values(kws) if kw > TRADE_MIN_KW]
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


# -- its part of the report ------------------------------------------------------------------
ADMM_TITLE = "Peer-to-peer market (ADMM)"
ADMM_HEADER = ["day", "rounds", "final primal residual", "final dual residual",
               "final ρ €/MW²h", "objective €", "bilateral trades", "bilateral kWh"]


def admm_rows(run) -> list[list[str]]:
    """One row per day of the ADMM market: its rounds, the residuals, ρ and objective of
    its last round, and the agreed bilateral trades (trades.parquet; — where the run wrote
    none): their number and energy, more than the net P2P purchases (summary's
    traded_kwh) where a peer buys from one peer and sells to another in the same period."""
    it = run.tables.get("admm_iterations")
    if it is None or it.empty:
        return []
    last = it.sort_values(["day", "round"]).groupby("day").last()
    trades = run.tables.get("trades")
    rows = []
    for day, r in last.iterrows():
        if trades is None:
            count, kwh = "—", "—"
        else:
            traded = trades.loc[trades["day"] == day, "kw"]
            count, kwh = str(len(traded)), f"{traded.sum() * run.period_h:.2f}"
        rows.append([str(day + 1), str(int((it["day"] == day).sum())),
                     f"{r['primal_residual']:.3g}", f"{r['dual_residual']:.3g}",
                     f"{r['rho']:.4g}", format_value(float(r["objective_eur"])), count, kwh])
    return rows



def residuals_caption(run) -> str:
    """Rounds and final residuals of each day drawn."""
    it = run.tables.get("admm_iterations")
    days = figures.residual_days(it)
    text = "" if len(days) == it["day"].nunique() else (
        f"Day 1 of {it['day'].nunique()} shown; every day's rounds and final residuals are "
        "in the table above.")
    for day in days:
        rows = it[it["day"] == day].sort_values("round")
        last = rows.iloc[-1]
        text += (f" Day {day + 1}: {len(rows)} rounds, final primal residual "
                 f"{last['primal_residual']:.3g}, dual {last['dual_residual']:.3g}, "
                 f"ρ {last['rho']:.4g} €/MW²h.")
    return text.strip()



def figure_specs() -> list[FigureSpec]:
    return [
        FigureSpec("admm_residuals", "Scaled primal (solid) and dual (dashed) residuals of the ADMM "
               "market per round (log axis), the stopping tolerance dotted, ρ on the right "
               "(log axis).",
               lambda run: figures.admm_residuals(
                   run.tables.get("admm_iterations"), run.config["market"].get("residual_tolerance")),
               lambda run: None if len(run.tables.get("admm_iterations", ())) else "No ADMM rounds.",
               residuals_caption, ADMM_TITLE),
    ]


def report_sections(run) -> list[Section]:
    return [Section(ADMM_TITLE, ADMM_HEADER, admm_rows(run))]
