"""``lemgrid bench`` of a run of many days (e.g. tems2023: 10 buildings, 30 days): the
whole run distributed (each agent its own process, the coordinator serving every day)
beside the same run in-process, the market's time per day and the agents' solve times.
Medians of the runs, with the ratio measured within each run pair."""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from lemgrid.coordinator.records import read_days
from lemgrid.scenarios.community.builder import build_actuals, build_community
from lemgrid.scenarios.run.inprocess import run_decentralized

GOALS = {"distributed_wall_s": "≤ 60"}


def inprocess_run(s) -> dict[str, float]:
    community = build_community(s)
    t0 = time.perf_counter()
    days = run_decentralized(s, community, build_actuals(s, community))
    wall = time.perf_counter() - t0
    solves = [x for d in days for x in d.solve_times_s]
    return {"inprocess_wall_s": wall,
            "inprocess_market_s_per_day": statistics.median(d.market_s for d in days),
            "agent_solve_median_ms": 1e3 * float(np.median(solves)),
            "agent_solve_p95_ms": 1e3 * float(np.percentile(solves, 95)),
            "inprocess_total_eur": sum(float(sc.cost_eur.sum()) for d in days
                                       for sc in d.schedules.values())}


def distributed_run(s, out: Path) -> dict[str, float]:
    from lemgrid.scenarios.run.world import run_scenario

    summary = run_scenario(s, out)
    records = read_days(out / "rounds")
    per_day = [sum(r["seconds"] for r in d["rounds"]) for d in records]
    t = summary["timing_s"]
    return {"distributed_wall_s": t["wall"], "startup_s": t["startup"],
            "market_s_per_day": statistics.median(per_day),
            "simulation_outside_market_s": t["grid"],
            "agent_processes": summary["processes"]["agents"],
            "distributed_total_eur": summary["costs_eur"]["total"]}


def bench_days(s, runs: int, info: dict, out: str) -> int:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(runs):
            row = distributed_run(s, Path(tmp) / str(i)) | inprocess_run(s)
            row["distributed_over_inprocess"] = (row["distributed_wall_s"]
                                                 / row["inprocess_wall_s"])
            rows.append(row)
    stats = {k: [float(r[k]) for r in rows] for k in rows[0]}
    agents = sum(t.count for t in s.templates) + len(s.agents)
    print(f"lemgrid bench: {s.name} ({agents} agents, {s.horizon.days} days, "
          f"{s.market.mechanism}), {runs} run(s); machine: {info['cpu']}, {info['cores']} "
          f"cores, Python {info['python']}")
    print(f"{'metric':<32} {'median':>12} {'min':>12} {'max':>12}  goal")
    for key, values in stats.items():
        print(f"{key:<32} {statistics.median(values):>12.4f} {min(values):>12.4f} "
              f"{max(values):>12.4f}  {GOALS.get(key, '')}".rstrip())
    report = {"scenario": s.name, "runs": runs, "machine": info,
              "metrics": {k: {"median": statistics.median(v), "min": min(v), "max": max(v),
                              "values": v} for k, v in stats.items()}}
    Path(out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"written: {out}")
    return 0
