"""The bilateral market's own results (docs/mechanisms/bilateral.md): ``trades.parquet`` (one
row per day, period and cleared trade, commodity ``power`` or ``heat``, the ADMM market's columns:
every trade from a net seller to a net buyer of its period),
``bilateral_iterations.parquet`` (one row per day and round: the ADMM residuals and ρ, or
a congestion check's congested lines and the network's AC losses) and the figures for
``summary.json``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from lemgrid.coordinator.mechanisms.bilateral import HEAT, POWER
from lemgrid.coordinator.protocol import period_values
from lemgrid.scenarios.results import atomic, figures
from lemgrid.scenarios.results.admm import TRADE_COLUMNS, TRADE_MIN_KW, gap_figures
from lemgrid.scenarios.results.outcome import DayResult, RoundStats
from lemgrid.scenarios.results.sections import FigureSpec, Section, format_value

ITERATION_COLUMNS = ["day", "round", "primal_residual", "dual_residual", "rho",
                     "welfare_eur", "congestion_check", "congested", "losses_kw"]


def trades_frame(days: list[DayResult]) -> pd.DataFrame:
    """Every cleared power and heat trade once, from its buyer's clearing (the agreed
    trades netted of circulations: ``coordinator.mechanisms.bilateral.cleared_trades``)."""
    rows = []
    for d in days:
        for buyer, clearing in sorted(d.clearings.items()):
            for key in (POWER, HEAT):
                by = (clearing.by_counterparty_kw or {}).get(key, {})
                for seller, kws in sorted(by.items()):
                    rows += [{"day": d.day, "period": t, "seller": seller, "buyer": buyer,
                              "commodity": key, "kw": float(kw)}
                             for t, kw in period_values(kws) if kw > TRADE_MIN_KW]
    return pd.DataFrame(rows, columns=TRADE_COLUMNS)


def iterations_frame(days: list[DayResult]) -> pd.DataFrame:
    rows = []
    for d in days:
        for r in d.rounds:
            s = r.record.scalars
            losses = r.record.per_period.get("losses_kw")
            rows.append({"day": d.day, "round": r.record.round,
                         "primal_residual": s.get("primal_residual"),
                         "dual_residual": s.get("dual_residual"), "rho": s.get("rho"),
                         "welfare_eur": round_welfare_eur(r),
                         "congestion_check": s.get("congestion_check"),
                         "congested": s.get("congested"),
                         "losses_kw": None if losses is None else float(sum(losses))})
    return pd.DataFrame(rows, columns=ITERATION_COLUMNS)


def round_welfare_eur(r: RoundStats) -> float | None:
    """The market's welfare in an ADMM round (None in the operator's rounds): the peers'
    planned own costs and the path penalties the coordinator recorded (``penalties_eur``)."""
    paid = r.record.scalars.get("penalties_eur")
    return None if paid is None else float(sum(r.cost_eur.values())) + float(paid)


def welfare_eur(day: DayResult) -> float | None:
    """The market's welfare at its last ADMM round."""
    market = [w for w in map(round_welfare_eur, day.rounds) if w is not None]
    return market[-1] if market else None


def write_bilateral(out: Path, days: list[DayResult], period_h: float,
                    central_eur: list[float | None]) -> dict:
    """Write the tables; the summary's figures: energy traded per commodity, congestion
    checks and the lines the last one found congested (none: the market cleared them),
    the market's welfare against the centralized optimum (``central_eur``, per day)."""
    trades = trades_frame(days)
    iterations = iterations_frame(days)
    atomic.write_parquet(out / "trades.parquet", trades)
    atomic.write_parquet(out / "bilateral_iterations.parquet", iterations)
    checks = iterations.dropna(subset=["congestion_check"])
    last = json.loads(checks["congested"].iloc[-1]) if len(checks) else {}
    return {"traded_kwh_power": float(trades.loc[trades["commodity"] == POWER, "kw"].sum()
                                      * period_h),
            "traded_kwh_heat": float(trades.loc[trades["commodity"] == HEAT, "kw"].sum()
                                     * period_h),
            "congestion_checks": len(checks),
            "congested_after_checks": sorted({label.split(" at ")[0] for labels in last.values()
                                              for label in labels}),
            **gap_figures([welfare_eur(d) for d in days], central_eur)}


def trade_matrix(trades: pd.DataFrame, commodity: str, period_h: float) -> pd.DataFrame:
    """Sellers × buyers, energy of ``commodity`` traded over the run (kWh)."""
    part = trades[trades["commodity"] == commodity]
    if part.empty:
        return pd.DataFrame()
    table = (part.assign(kwh=part["kw"] * period_h)
             .pivot_table(index="seller", columns="buyer", values="kwh", aggfunc="sum",
                          fill_value=0.0))
    return table.loc[sorted(table.index, key=natural), sorted(table.columns, key=natural)]


def natural(name: str) -> tuple:
    """Sort key putting "C2" before "C10"."""
    return tuple(int(part) if part.isdigit() else part
                 for part in re.split(r"(\d+)", str(name)))


# -- its part of the report ------------------------------------------------------------------
BILATERAL_TITLE = "Bilateral market: congestion checks"
BILATERAL_HEADER = ["day", "round", "check", "lines above the limit", "AC losses kW"]


def _trade_figure(commodity: str) -> FigureSpec:
    def matrix(run):
        trades = run.tables.get("trades")
        return trade_matrix(trades, commodity, run.period_h) if trades is not None else ()

    return FigureSpec(f"trades_{commodity}", f"Energy of {commodity} each seller sold each "
                      "buyer over the run (kWh; bilateral splits are not unique where no "
                      "penalty tells paths apart: compare row and column sums).",
                      lambda run: figures.trade_matrix(matrix(run), commodity),
                      lambda run: None if len(matrix(run)) else f"No {commodity} trades.",
                      section=BILATERAL_TITLE)


def figure_specs() -> list[FigureSpec]:
    return [_trade_figure("power"), _trade_figure("heat")]


def bilateral_rows(run) -> list[list[str]]:
    """Every congestion check: the lines the AC power flow found above the limit (none:
    the market cleared them) and the network's losses."""
    t = run.tables.get("bilateral_iterations")
    checks = t.dropna(subset=["congestion_check"]) if t is not None else t
    if checks is None:
        return []
    return [[str(r.day + 1), str(r.round), str(int(r.congestion_check)),
             "; ".join(sorted({x for v in json.loads(r.congested).values() for x in v})) or "none",
             format_value(r.losses_kw)] for r in checks.itertuples()]


def report_sections(run) -> list[Section]:
    return [Section(BILATERAL_TITLE, BILATERAL_HEADER, bilateral_rows(run))]
