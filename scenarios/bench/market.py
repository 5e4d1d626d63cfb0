"""``lemgrid bench``: decentralized vs centralized on one day of a P2V scenario, with the
paper's reference values (Faia et al. 2021, scenario B) printed beside ours; runs of
many days or other mechanisms go to ``scenarios.bench.days``."""

from __future__ import annotations

import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from lemgrid.agents.solver import agent_kind
from lemgrid.scenarios import mechanisms
from lemgrid.scenarios.community.builder import build_community
from lemgrid.scenarios.results.outcome import DayResult
from lemgrid.scenarios.run.frozen import frozen
from lemgrid.scenarios.run.inprocess import run_centralized, run_decentralized

# Faia et al. 2021, scenario B (docs/mechanisms/p2v_rules.md#reproduction).
PAPER = {"gap_pct": 0.15, "prosumer_mean_vs_central_pct": -2.04,
         "ev_mean_vs_central_pct": 1.45, "central_over_critical_path": 144.0, "rounds": 5}
GOALS = {"gap_pct": "≤ 0.5", "agent_solve_median_ms": "≤ 20", "startup_s": "≤ 10",
         "end_to_end_s": "≤ 30", "power_flows_96_s": "≤ 2", "agent_peak_rss_mb": "≤ 100",
         "distributed_over_inprocess": "≤ 2"}


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "system": f"{platform.system()} {platform.release()}"}


def _costs(result: DayResult, community) -> dict:
    kinds = {d.name: agent_kind(d) for d in community}
    per = {n: float(np.sum(s.cost_eur)) for n, s in result.schedules.items()}
    mean = {k: statistics.fmean(v for n, v in per.items() if kinds[n] == k)
            for k in ("prosumer", "ev")}
    return {"total": sum(per.values()), **mean}


def _time_power_flows(s, result: DayResult, community) -> float:
    """Seconds for one AC power flow per period of the settled day, in-process."""
    from lemgrid.scenarios.run.network import place_agents, run_grid_inprocess

    bus_of = place_agents(s, community)
    start = time.perf_counter()
    run_grid_inprocess(s, [result], bus_of)
    return time.perf_counter() - start


def one_run(s, with_central: bool) -> dict:
    with frozen():  # as a run: its garbage collected at its end, not frozen by the next
        return _one_run(s, with_central)


def _one_run(s, with_central: bool) -> dict:
    community = build_community(s)
    t0 = time.perf_counter()
    dec = run_decentralized(s, community)[0]
    dec_wall = time.perf_counter() - t0
    row = {"dec": _costs(dec, community), "dec_wall_s": dec_wall, "rounds": len(dec.rounds),
           "converged": dec.converged, "critical_path_s": dec.critical_path_s,
           "solve_times_s": dec.solve_times_s,
           "error_kw": [r.record.error_kw for r in dec.rounds],
           "power_flows_96_s": _time_power_flows(s, dec, community)}
    if with_central:
        t0 = time.perf_counter()
        cen = run_centralized(s, community)[0]
        row |= {"cen": _costs(cen, community), "cen_wall_s": time.perf_counter() - t0,
                "cen_solve_s": cen.market_s}
    return row


def _pct(a: float, b: float) -> float:
    return 100.0 * (a - b) / abs(b)


def metrics(runs: list[dict]) -> dict[str, list[float]]:
    """Each benchmark figure, one value per run."""
    out: dict[str, list[float]] = {}

    def put(key, value):
        out.setdefault(key, []).append(float(value))

    for r in runs:
        times = np.array(r["solve_times_s"]) * 1e3
        put("agent_solve_median_ms", np.median(times))
        put("agent_solve_p95_ms", np.percentile(times, 95))
        put("rounds", r["rounds"])
        put("final_error_kw", r["error_kw"][-1])
        put("decentralized_total_eur", r["dec"]["total"])
        put("decentralized_wall_s", r["dec_wall_s"])
        put("critical_path_s", r["critical_path_s"])
        if "cen" in r:
            put("centralized_total_eur", r["cen"]["total"])
            put("gap_pct", _pct(r["dec"]["total"], r["cen"]["total"]))
            put("prosumer_mean_vs_central_pct", _pct(r["dec"]["prosumer"], r["cen"]["prosumer"]))
            put("ev_mean_vs_central_pct", _pct(r["dec"]["ev"], r["cen"]["ev"]))
            put("centralized_wall_s", r["cen_wall_s"])
            put("central_over_critical_path", r["cen_solve_s"] / r["critical_path_s"])
    return out


def table(stats: dict[str, list[float]]) -> list[str]:
    """One line per figure: median, min, max over the runs, the paper's value (Faia et
    al. 2021, scenario B) and the project's goal where there is one."""
    lines = [f"{'metric':<32} {'median':>12} {'min':>12} {'max':>12} {'paper':>8}  goal"]
    for key, values in stats.items():
        paper = PAPER.get(key, "")
        lines.append(f"{key:<32} {statistics.median(values):>12.4f} {min(values):>12.4f} "
                     f"{max(values):>12.4f} {paper:>8}  {GOALS.get(key, '')}".rstrip())
    return lines


def runtime_run(s, tmp: Path) -> dict[str, float]:
    """One distributed run: each agent its own process."""
    from lemgrid.scenarios.run.world import run_scenario

    summary = run_scenario(s, tmp)
    t = summary["timing_s"]
    return {"agent_processes": summary["processes"]["agents"], "startup_s": t["startup"],
            "market_s": t["market"], "simulation_outside_market_s": t["grid"],
            "end_to_end_s": t["wall"],
            "agent_peak_rss_mb": summary["processes"]["agent_peak_rss_mb"]}


def inprocess_run(s, tmp: Path) -> float:
    """One in-process run of the whole day (market, realisation, power flows, results):
    its wall time, the distributed runtime's yardstick."""
    from lemgrid.scenarios.run.world import run_scenario

    return run_scenario(s.model_copy(update={"runtime": s.runtime.model_copy(
        update={"kind": "inprocess"})}), tmp)["timing_s"]["wall"]


def runtime_metrics(rows: list[dict]) -> dict[str, list[float]]:
    return {k: [float(r[k]) for r in rows] for k in rows[0]}


def scaled_mechanisms(path: Path, named: list[str] | None) -> list[str | None]:
    """The mechanisms ``--mechanism`` names (``all``: every one that serves the scenario's
    agents); none named: the scenario's own (None)."""
    if not named:
        return [None]
    if "all" not in named:
        return list(named)
    from lemgrid.scenarios.schema import agent_kinds, load_scenario

    return mechanisms.serving(agent_kinds(load_scenario(path)))


def bench_scaling(args, info: dict) -> int:
    from lemgrid.scenarios.bench.scaling import run_scaling, scaling_figure, scaling_table
    from lemgrid.scenarios.schema import resolve_scenario

    path = resolve_scenario(args.scale_scenario)
    rows, stopped = [], None
    try:  # a size that fails or is interrupted stops the bench; the finished ones are kept
        for mech in scaled_mechanisms(path, args.mechanism):
            rows += run_scaling(path, args.scale, args.runs, args.agents_per_process,
                                args.keep, mech, tuple(args.overrides))
    except (KeyboardInterrupt, RuntimeError) as exc:
        if not rows:
            raise
        stopped = exc
    print(f"lemgrid bench --scale: {path.stem}"
          f"{''.join(f' --set {o}' for o in args.overrides)}, {args.runs} run(s) per size; machine: "
          f"{info['cpu']}, {info['cores']} cores, Python {info['python']}")
    print("\n".join(scaling_table(rows)))
    figure = scaling_figure(rows, Path(args.out).with_suffix(".png"))
    Path(args.out).write_text(json.dumps(
        {"scenario": path.stem, "runs": args.runs, "machine": info, "set": args.overrides,
         "scaling": rows,
         **({"stopped": str(stopped) or type(stopped).__name__} if stopped else {})},
        indent=2) + "\n")
    print(f"written: {args.out}, {figure}")
    if stopped is not None:
        raise stopped
    return 0


def _pair_bench(args, info: dict, kind: str, heading: str, lines: list[str],
                report: dict) -> int:
    """Print a pair bench's heading (with the machine) and table; write its JSON."""
    print(f"lemgrid bench --{kind}: {heading}; machine: {info['cpu']}, {info['cores']} "
          f"cores, Python {info['python']}")
    print("\n".join(lines))
    args.out = args.out or f"bench_{kind}.json"
    Path(args.out).write_text(json.dumps(report | {"runs": args.runs, "machine": info},
                                         indent=2) + "\n")
    print(f"written: {args.out}")
    return 0


def bench_models(args, info: dict) -> int:
    from lemgrid.scenarios.bench.models import models_table, run_models_bench
    from lemgrid.scenarios.schema import load_scenario, resolve_scenario

    name = args.scenario or "faia2021"
    pairs = run_models_bench(load_scenario(resolve_scenario(name), args.overrides), args.runs)
    return _pair_bench(args, info, "models", f"{name}, {args.runs} run pair(s)",
                       models_table(pairs), {"scenario": name, "pairs": pairs})


def bench_versus(args, info: dict) -> int:
    from lemgrid.scenarios.bench.models import run_versus_bench, versus_table
    from lemgrid.scenarios.schema import load_scenario, resolve_scenario

    path = resolve_scenario(args.scenario or "faia2021")
    now = load_scenario(path, args.overrides)
    other = load_scenario(path, [*args.overrides, *args.versus])
    pairs = run_versus_bench(now, other, args.runs)
    return _pair_bench(args, info, "versus",
                       f"{now.name}, {now.runtime.kind}, {args.runs} run pair(s), other: "
                       f"{' '.join(args.versus)}", versus_table(pairs),
                       {"scenario": now.name, "other": args.versus, "pairs": pairs})


def bench_qp(args, info: dict) -> int:
    from lemgrid.scenarios.bench.qp import qp_problem, qp_table, run_qp_bench
    from lemgrid.scenarios.run.errors import RunError
    from lemgrid.scenarios.schema import load_scenario, resolve_scenario

    s = load_scenario(resolve_scenario(args.scenario or "faia2021"), args.overrides)
    problem = qp_problem(s)
    if problem:
        raise RunError(problem)
    pairs = run_qp_bench(s, args.runs)
    return _pair_bench(args, info, "qp",
                       f"{s.name}, {s.market.mechanism}, residual tolerance "
                       f"{s.market.residual_tolerance:g}, {s.runtime.kind}, {args.runs} run "
                       f"pair(s)", qp_table(pairs),
                       {"scenario": s.name, "mechanism": s.market.mechanism, "pairs": pairs})


def run_bench(args) -> int:
    from lemgrid.scenarios.schema import load_scenario, resolve_scenario

    if args.scale:
        args.out = args.out or "bench_scaling.json"
        return bench_scaling(args, machine())
    if args.power_flow:
        from lemgrid.scenarios.bench.powerflow import bench_power_flow, power_flow_table

        info, rows = machine(), bench_power_flow(args.power_flow, args.runs)
        print(f"lemgrid bench --power-flow: {args.power_flow}, 96 periods, {args.runs} run(s); "
              f"machine: {info['cpu']}, {info['cores']} cores, Python {info['python']}")
        print("\n".join(power_flow_table(rows)))
        args.out = args.out or "bench_power_flow.json"
        Path(args.out).write_text(json.dumps({"network": args.power_flow, "machine": info,
                                              "variants": rows}, indent=2) + "\n")
        print(f"written: {args.out}")
        return 0
    if args.models:
        return bench_models(args, machine())
    if args.qp:
        return bench_qp(args, machine())
    if args.versus:
        return bench_versus(args, machine())
    args.out = args.out or "bench.json"
    name = "tiny" if args.quick else (args.scenario or "faia2021")
    runs_n = 1 if args.quick else args.runs
    s = load_scenario(resolve_scenario(name), args.overrides)
    mech = mechanisms.get(s.market.mechanism)
    if mech.bench is not None:
        return mech.bench(scenario=s, runs=runs_n, info=machine(), out=args.out)
    if s.horizon.days > 1 or mech.run_centralized is None:
        from lemgrid.scenarios.bench.days import bench_days
        return bench_days(s, runs_n, machine(), args.out)
    runs = [one_run(s, with_central=True) for _ in range(runs_n)]
    stats = metrics(runs)
    info = machine()
    print(f"lemgrid bench: {s.name}, {runs_n} run(s); machine: {info['cpu']}, "
          f"{info['cores']} cores, Python {info['python']}")
    print("\nmarket: decentralized (in-process) vs centralized")
    print("\n".join(table(stats)))
    with tempfile.TemporaryDirectory() as tmp:
        pairs = [(runtime_run(s, Path(tmp) / f"d{i}"), inprocess_run(s, Path(tmp) / f"i{i}"))
                 for i in range(runs_n)]
    rt = runtime_metrics([d | {"inprocess_end_to_end_s": w,
                               "distributed_over_inprocess": d["end_to_end_s"] / w}
                          for d, w in pairs])
    rt["power_flows_96_s"] = [r["power_flows_96_s"] for r in runs]
    print(f"\nruntime: distributed, {s.runtime.agents_per_process} agent(s) per process, "
          f"grid {s.grid.network}")
    print("\n".join(table(rt)))
    stats |= rt
    report = {"scenario": s.name, "runs": runs_n, "machine": info, "paper": PAPER,
              "metrics": {k: {"median": statistics.median(v), "min": min(v), "max": max(v),
                              "values": v} for k, v in stats.items()}}
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"written: {args.out}")
    return 0
