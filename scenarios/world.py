"""The composition root: scenario → community → market run → results."""

from __future__ import annotations

import time
from pathlib import Path

from tqdm import tqdm

from scenarios.community import build_community, p2v_price
from scenarios.report import write_report
from scenarios.results import write_results
from scenarios.runtime import RunError, run_centralized, run_decentralized
from scenarios.schema import Scenario


def run_scenario(s: Scenario, out: Path, progress: bool = False,
                 t0: float | None = None) -> dict:
    """Run the scenario's market day in its mode and write every result file into ``out``."""
    t0 = time.perf_counter() if t0 is None else t0
    try:
        community = build_community(s)
    except ValueError as exc:
        raise RunError(f"{s.name}: {exc}") from None
    price = p2v_price(s)
    if s.market.mode == "centralized":
        result = run_centralized(s, community)
    else:
        with tqdm(total=s.market.max_rounds, desc=f"{s.name} day 1 round", unit="round",
                  disable=not progress, leave=False) as bar:
            def tick(rec):
                bar.set_postfix(error_kw=f"{rec.error_kw:.3f}")
                bar.update(1)
            result = run_decentralized(s, community, price, progress=tick)
    summary = write_results(out, s, result, community, price, time.perf_counter() - t0)
    write_report(out, summary, result)
    return summary
