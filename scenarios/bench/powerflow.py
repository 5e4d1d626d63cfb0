"""``lemgrid bench --power-flow``: the grid simulator's 96 power flows of a day, with
pandapower's levers one by one: the project's settings (Newton-Raphson warm-started from
the previous period, numba off), numba's JIT (first run, with compilation, then warm),
lightsim2grid's solver, ``recycle`` (keep pandapower's internal case, rewrite the loads),
lightsim2grid with recycle, and lemgrid's solver (``grid.newton``: Newton-Raphson and
results on arrays). Each variant runs the same 96 load vectors (the network's
own loads scaled by a seeded random factor per period) ``runs`` times; the table gives
medians, the ratio to the project's old settings (recycle off) and the largest voltage
difference from them. A variant whose package is not installed is named and skipped."""

from __future__ import annotations

import copy
import importlib.util
import statistics
import time
import warnings

import numpy as np
import pandapower as pp

from lemgrid.grid.networks import load_network
from lemgrid.grid.newton import ArrayPowerFlow
from lemgrid.grid.powerflow import RECYCLE, RUNPP_OPTIONS

PERIODS = 96
ARRAYS = "arrays (solver lemgrid)"  # the variant that runs grid.newton, not runpp
VARIANTS = {  # name -> (extra runpp options, package it needs)
    "old settings (no recycle)": ({}, None),
    "numba, first run (JIT)": ({"numba": True}, "numba"),
    "numba, warm": ({"numba": True}, "numba"),
    "lightsim2grid": ({"lightsim2grid": True}, "lightsim2grid"),
    "recycle (solver pandapower)": ({"recycle": RECYCLE}, None),
    "numba + recycle": ({"numba": True, "recycle": RECYCLE}, "numba"),
    "lightsim2grid + recycle": ({"lightsim2grid": True, "recycle": RECYCLE}, "lightsim2grid"),
    ARRAYS: ({}, None),
}


def _day(net, loads: np.ndarray, options: dict) -> tuple[float, np.ndarray]:
    net = copy.deepcopy(net)
    start, init, vm = time.perf_counter(), "flat", []
    for p in loads:
        net.load["p_mw"] = p
        pp.runpp(net, init=init, **(RUNPP_OPTIONS | options))
        init = "results"
        vm.append(net.res_bus["vm_pu"].to_numpy().copy())
    return time.perf_counter() - start, np.array(vm)


def _day_on_arrays(net, loads: np.ndarray, options: dict) -> tuple[float, np.ndarray]:
    """lemgrid's solver (``grid.newton``): the first period by pandapower, which builds the
    internal case, the others on arrays."""
    net = copy.deepcopy(net)
    start = time.perf_counter()
    net.load["p_mw"] = loads[0]
    pp.runpp(net, init="flat", **RUNPP_OPTIONS)
    vm = [net.res_bus["vm_pu"].to_numpy().copy()]
    arrays = ArrayPowerFlow.after(net, RUNPP_OPTIONS["tolerance_mva"])
    q_mvar = net.load["q_mvar"].to_numpy()
    for p in loads[1:]:
        vm.append(arrays.run(p, q_mvar).vm_pu)
    return time.perf_counter() - start, np.array(vm)


def bench_power_flow(network: str, runs: int, seed: int = 0) -> list[dict]:
    net = load_network(network)
    base = net.load["p_mw"].to_numpy()
    loads = base * np.random.default_rng(seed).uniform(0.2, 1.2, (PERIODS, len(base)))
    rows, reference = [], None
    warnings.filterwarnings("ignore", module="pandapower")
    for name, (options, package) in VARIANTS.items():
        if package and importlib.util.find_spec(package) is None:
            rows.append({"variant": name, "missing": package})
            continue
        times = []
        day = _day_on_arrays if name == ARRAYS else _day
        for _ in range(1 if name.endswith("(JIT)") else runs):
            seconds, vm = day(net, loads, options)
            times.append(seconds)
        reference = vm if reference is None else reference
        rows.append({"variant": name, "median_s": statistics.median(times),
                     "min_s": min(times), "max_s": max(times), "runs": len(times),
                     "max_dv_pu": float(np.abs(vm - reference).max())})
    first = rows[0]["median_s"]
    for row in rows:
        if "median_s" in row:
            row["speedup"] = first / row["median_s"]
    return rows


def power_flow_table(rows: list[dict]) -> list[str]:
    head = (f"{'variant':<30} {'runs':>4} {'median s':>9} {'min–max s':>15} {'× old':>6} "
            f"{'max |ΔV| pu':>12}")
    lines = [head]
    for r in rows:
        if "missing" in r:
            lines.append(f"{r['variant']:<30} not installed ({r['missing']})")
            continue
        lines.append(f"{r['variant']:<30} {r['runs']:>4} {r['median_s']:>9.3f} "
                     f"{r['min_s']:>7.3f}–{r['max_s']:<7.3f} {r['speedup']:>6.2f} "
                     f"{r['max_dv_pu']:>12.1e}")
    return lines
