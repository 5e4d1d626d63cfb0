"""The clearance market's own results (docs/mechanisms/clearance.md): ``clearance.parquet``
(one row per day and period: the community's load, what the double auction offered, what the network
operator accepted and curtailed, in MW, and the limits that bound) and ``trades.parquet``
(one row per day, period and trade, with what was offered and accepted), and its figures
for ``summary.json``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from lemgrid.coordinator.protocol import INFEASIBLE, KW_PER_MW, P2P
from lemgrid.scenarios.results import atomic, figures
from lemgrid.scenarios.results.outcome import DayResult
from lemgrid.scenarios.results.sections import FigureSpec, Section

CLEARANCE_COLUMNS = ["day", "hour", "period", "total_load_mw", "offered_mw", "accepted_mw",
                     "curtailed_mw", "binding"]
TRADE_COLUMNS = ["day", "period", "seller", "buyer", "commodity", "offered_kw", "kw"]


def _last(day: DayResult):
    return day.rounds[-1].record if day.rounds else None


def clearance_frame(days: list[DayResult], period_h: float) -> pd.DataFrame:
    """Per day and period: the agents' realised load (MW), the matched and the accepted
    trades (MW) and the binding limits (``; ``-joined labels)."""
    rows = []
    for d in days:
        rec = _last(d)
        if rec is None:
            continue
        offered = np.asarray(rec.per_period.get("offered_kw", []), float)
        accepted = np.asarray(rec.per_period.get("accepted_kw", []), float)
        binding = json.loads(rec.scalars.get("binding") or "{}")
        load = sum((np.asarray(s.flows_kw["load_kw"], float) for s in d.schedules.values()
                    if "load_kw" in s.flows_kw), np.zeros(len(offered)))
        for t in range(len(offered)):
            rows.append({"day": d.day, "hour": t * period_h, "period": t,
                         "total_load_mw": float(load[t]) / KW_PER_MW,
                         "offered_mw": offered[t] / KW_PER_MW,
                         "accepted_mw": accepted[t] / KW_PER_MW,
                         "curtailed_mw": (offered[t] - accepted[t]) / KW_PER_MW,
                         "binding": "; ".join(binding.get(str(t), []))})
    return pd.DataFrame(rows, columns=CLEARANCE_COLUMNS)


def trades_frame(days: list[DayResult]) -> pd.DataFrame:
    """Every matched trade per period with kW offered and accepted (the market's last
    round record)."""
    rows = []
    for d in days:
        rec = _last(d)
        for trade in json.loads((rec.scalars.get("trades_json") if rec else None) or "[]"):
            rows += [{"day": d.day, "period": t, "seller": trade["seller"],
                      "buyer": trade["buyer"], "commodity": P2P, "offered_kw": float(q),
                      "kw": float(a)}
                     for t, (q, a) in enumerate(zip(trade["offered_kw"], trade["accepted_kw"],
                                                    strict=True)) if q > 0]
    return pd.DataFrame(rows, columns=TRADE_COLUMNS)


def write_clearance(out: Path, days: list[DayResult], period_h: float) -> dict:
    """Write the tables; the figures ``summary.json`` adds under ``market``."""
    table = clearance_frame(days, period_h)
    for d in days:  # periods the operator could not clear at all: named in the notes
        bad = table[(table["day"] == d.day) & table["binding"].str.startswith(INFEASIBLE)]
        if len(bad):
            first = bad["binding"].iloc[0][len(INFEASIBLE):].strip()
            d.notes.append(f"day {d.day + 1}: the network operator refused every trade in "
                           f"{len(bad)} period(s) whose base injections alone overload the "
                           f"network (first: {first})")
    atomic.write_parquet(out / "clearance.parquet", table)
    atomic.write_parquet(out / "trades.parquet", trades_frame(days))
    return {"offered_kwh": float(table["offered_mw"].sum() * KW_PER_MW * period_h),
            "accepted_kwh": float(table["accepted_mw"].sum() * KW_PER_MW * period_h),
            "curtailed_kwh": float(table["curtailed_mw"].sum() * KW_PER_MW * period_h),
            "binding_periods": int((table["binding"] != "").sum()),
            "infeasible_periods": int(table["binding"].str.startswith(INFEASIBLE).sum())}


# -- its part of the report ------------------------------------------------------------------
CLEARANCE_TITLE = "Trades cleared by the network operator"
CLEARANCE_HEADER = ["day", "period", "offered kW", "accepted kW", "curtailed kW",
                    "binding limits"]


def figure_specs() -> list[FigureSpec]:
    return [
        FigureSpec("clearance", "Trades the double auction matched per period: accepted by the "
               "network operator (green) and curtailed (red), with the community's load.",
               lambda run: figures.clearance(run.tables.get("clearance")),
               lambda run: (None if len(run.tables.get("clearance", ()))
                            else "No clearance in this run."),
               section=CLEARANCE_TITLE),
    ]



def clearance_rows(run) -> list[list[str]]:
    """Every period with a matched trade: offered, accepted and curtailed kW and the
    limits that bound (curtailed periods and binding limits are what a reader looks
    for)."""
    t = run.tables.get("clearance")
    if t is None:
        return []
    live = t[(t["offered_mw"] > 0) | (t["binding"] != "")]
    return [[str(r.day + 1), str(r.period), f"{1e3 * r.offered_mw:.3f}",
             f"{1e3 * r.accepted_mw:.3f}", f"{1e3 * r.curtailed_mw:.3f}", r.binding or "—"]
            for r in live.itertuples()]


def report_sections(run) -> list[Section]:
    return [Section(CLEARANCE_TITLE, CLEARANCE_HEADER, clearance_rows(run))]
