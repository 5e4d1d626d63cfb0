"""The distributed runtime: the coordinator as its own process (ZeroMQ), every agent
group as its own mosaik simulator process, the grid simulator as its own process, and
an in-process collector that records every output per period."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import mosaik
import numpy as np
from loguru import logger
from mosaik.exceptions import SimulationError

from agents.data import Schedule, data_to_dict
from agents.market_agent import period_costs_eur
from agents.simulator import FLOW_ATTRS
from agents.solver import agent_kind
from coordinator.mechanisms.p2v_rules import RoundRecord
from grid.powerflow import PeriodResult
from scenarios.results.outcome import DayResult, RoundStats
from scenarios.run import collector
from scenarios.run.errors import RunError
from scenarios.run.network import n_buses, network_options
from scenarios.run.progress import RoundWatcher
from scenarios.run.topology import group_addresses, group_count, process_groups
from scenarios.schema import Scenario

GRID_OUTPUTS = ["vm_pu", "loading_pct", "voltage_violations", "line_violations", "converged",
                "losses_kw"]
AGENT_OUTPUTS = ["p_kw", *FLOW_ATTRS, "soc_kwh", "pid", "rss_mb", "ok"]
LAUNCHER_EXIT_S = 10.0  # after the simulation, the helper processes exit within this
RECORDS_FILE = "rounds.json"  # the coordinator's record of the day's rounds


@dataclass
class DistributedOutcome:
    result: DayResult
    grid_results: list[PeriodResult] | None = field(default_factory=list)  # None: not run
    pids: set = field(default_factory=set)
    grid_s: float = 0.0  # the simulation's wall time outside the market rounds
    peak_rss_mb: float | None = None  # the largest agent process's peak resident memory
    aborted: str | None = None  # why the co-simulation stopped early, if it did


def _grid_results(rows, period_s: int) -> list[PeriodResult]:
    """The grid simulator's outputs per period as PeriodResults (None → NaN)."""
    by_period: dict[int, dict] = {}
    for t, _, attr, value in rows:
        if attr in GRID_OUTPUTS:
            by_period.setdefault(t // period_s, {})[attr] = value

    def arr(values):
        return np.array([np.nan if v is None else v for v in values or []], float)
    return [PeriodResult(t, bool(o.get("converged")), arr(o.get("vm_pu")),
                         arr(o.get("loading_pct")), int(o.get("voltage_violations") or 0),
                         int(o.get("line_violations") or 0),
                         np.nan if o.get("losses_kw") is None else o["losses_kw"], np.nan)
            for t, o in sorted(by_period.items())]


def coordinator_argv(s: Scenario, names: list[str], out: Path, price: float,
                     endpoint: str) -> list[str]:
    """The ``lemgrid coordinator`` arguments for scenario ``s``; writes the roster file."""
    roster = out / "roster.txt"
    roster.write_text("\n".join(names) + "\n")
    argv = ["--mechanism", s.market.mechanism, "--tolerance-kw", str(s.market.tolerance_kw),
            "--max-rounds", str(s.market.max_rounds), "--price-eur-per-kwh", repr(price),
            "--roster", str(roster), "--endpoint", endpoint, "--log",
            str(out / "messages.jsonl"), "--records", str(out / RECORDS_FILE),
            "--round-deadline-s", str(s.runtime.round_deadline_s),
            "--registration-timeout-s", str(s.runtime.registration_timeout_s)]
    return argv + (["--curve-keys", s.runtime.curve_keys] if s.runtime.curve_keys else [])


def start_coordinator(s: Scenario, names: list[str], out: Path, price: float):
    """Start ``lemgrid coordinator`` as a process; return it and its endpoint."""
    cmd = [sys.executable, "-m", "scenarios.cli", "coordinator",
           *coordinator_argv(s, names, out, price, f"tcp://{s.runtime.coordinator_host}:0")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip()
    if not line.startswith("coordinator listening on "):
        proc.kill()
        raise RunError(f"coordinator did not start: {line or proc.stderr.read().strip()}")
    return proc, line.rsplit(" ", 1)[-1]


def _stop(coordinator, launcher, at_once: bool) -> None:
    """End the helper processes: the coordinator and the launcher exit by themselves after
    a normal day; after an aborted simulation the launcher's whole process group (its
    forked agent simulators) is killed at once."""
    for p in (coordinator, launcher):
        if p is None:
            continue
        try:
            p.wait(timeout=0 if at_once else LAUNCHER_EXIT_S)
        except subprocess.TimeoutExpired:
            if p is launcher:
                os.killpg(p.pid, signal.SIGKILL)
            p.kill()
            p.wait()


def start_launcher(count: int):
    """Start ``python -m agents.launcher``; return it and the forked simulators' addresses."""
    proc = subprocess.Popen([sys.executable, "-m", "agents.launcher", str(count)],
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    line = proc.stdout.readline()
    try:
        return proc, json.loads(line)
    except json.JSONDecodeError:
        proc.kill()
        raise RunError(f"agent launcher did not start: {line.strip()!r}") from None


def _sim_config(s: Scenario, addresses: list[str | None], forked: list[str]) -> dict:
    """Agent groups at their running simulators' addresses, else forked simulators
    (``launcher: fork``) or mosaik-started processes (``launcher: cmd``)."""
    cmd = f"{sys.executable} -m agents.simulator %(addr)s"
    forks = iter(forked)
    config = {}
    for i, address in enumerate(addresses):
        address = address or next(forks, None)
        config[f"Agents{i}"] = {"connect": address} if address else {"cmd": cmd}
    config["Grid"] = ({"connect": s.runtime.grid_host} if s.runtime.grid_host else
                      {"cmd": f"{sys.executable} -m grid.simulator %(addr)s"})
    config["Collector"] = {"python": "scenarios.run.collector:Collector"}
    config |= {c.name: c.start() for c in s.cosimulators}
    return config


def _fill_out(value, out: Path):
    """``{out}`` in string values → the run's results folder."""
    if isinstance(value, dict):
        return {k: _fill_out(v, out) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill_out(v, out) for v in value]
    return value.replace("{out}", str(out)) if isinstance(value, str) else value


def add_cosimulators(world, s: Scenario, out: Path, agents: dict, grid) -> None:
    """Start the scenario's co-simulators, create their entities, link them."""
    for c in s.cosimulators:
        sim = start_sim(world, c.name, s, **_fill_out(c.sim_params, out))
        try:
            factory = getattr(sim, c.model)
            entities = [factory(**_fill_out(params, out)) for params in c.entities]
        except Exception as exc:  # noqa: BLE001 - mosaik's or the simulator's complaint
            raise RunError(f"cosimulators.{c.name}: {exc}".splitlines()[0]) from None
        for i, link in enumerate(c.links):
            target = link.to or link.from_
            other = grid if target == "grid" else agents.get(target.removeprefix("agent:"))
            if other is None:
                raise RunError(f"cosimulators.{c.name}.links.{i}: no agent "
                               f"{target.removeprefix('agent:')!r} in the community")
            src, dest = (entities[link.entity], other) if link.to else (other,
                                                                         entities[link.entity])
            try:
                world.connect(src, dest, *link.attrs.items())
            except Exception as exc:  # noqa: BLE001 - e.g. an attribute the model lacks
                raise RunError(f"cosimulators.{c.name}.links.{i}: {exc}".splitlines()[0]) \
                    from None


def _with_retries(s: Scenario, attempt, errors, what: str, tries: int | None = None):
    """``attempt()`` up to ``tries`` times (default ``runtime.connect_retries``),
    ``runtime.connect_retry_s`` apart, while it raises one of ``errors``; then a RunError
    naming ``what``."""
    tries = tries or s.runtime.connect_retries
    for i in range(tries):
        try:
            return attempt()
        except errors:
            if i < tries - 1:
                time.sleep(s.runtime.connect_retry_s)
    raise RunError(f"{what} never came up ({tries} tries, {s.runtime.connect_retry_s:g} s "
                   "apart)")


def start_sim(world, name: str, s: Scenario, **params):
    """``world.start`` with bounded retries for a simulator mosaik connects to: mosaik's
    ``connect`` does not retry, and a remote simulator may still be starting."""
    address = world.sim_config[name].get("connect")  # None: a process mosaik starts
    return _with_retries(s, lambda: world.start(name, sim_id=f"{name}-0", **params),
                         SimulationError, f"simulator {name} at {address}",
                         None if address else 1)


def build_world(s: Scenario, community, bus_of: dict[str, int], endpoint: str,
                forked: list[str], results_dir: Path):
    """Start every simulator, create the entities and connect them."""
    groups = process_groups(community, s.runtime.agents_per_process)
    world = mosaik.World(_sim_config(s, group_addresses(s, len(groups)), forked),
                         time_resolution=1.0, skip_greetings=True, configure_logging=False)
    try:
        _populate(world, s, groups, bus_of, endpoint, results_dir)
    except BaseException:
        world.shutdown()  # the simulators started so far
        raise
    return world


def _populate(world, s: Scenario, groups, bus_of, endpoint: str, results_dir: Path) -> None:
    so, period_s = s.solver, s.horizon.period_minutes * 60
    solver = {"mip_rel_gap": so.mip_rel_gap, "time_limit_s": so.time_limit_s,
              "lp_first": so.lp_first}
    g = s.grid
    grid = start_sim(world, "Grid", s).Grid(
        network=g.network, network_options=network_options(s), bus_of=bus_of,
        limits={"v_min_pu": g.v_min_pu, "v_max_pu": g.v_max_pu,
                "max_loading_pct": g.max_loading_pct},
        period_s=period_s, power_factor=g.power_factor, keep_network_loads=g.keep_network_loads,
        background_kw=[g.background_kw_per_bus] * n_buses(g.network) if g.background_kw_per_bus
        else None)
    sink = world.start("Collector").Collector()
    agents = {}
    for i, group in enumerate(groups):
        sim = start_sim(world, f"Agents{i}", s, endpoint=endpoint, period_s=period_s,
                        solver=solver, results_dir=str(results_dir),
                        curve_keys=s.runtime.curve_keys)
        for ent in sim.Agent.create(len(group), agents=[data_to_dict(d) for d in group]):
            world.connect(ent, grid, "p_kw")
            world.connect(ent, sink, *AGENT_OUTPUTS)
            agents[ent.eid] = ent
    world.connect(grid, sink, *GRID_OUTPUTS)
    add_cosimulators(world, s, results_dir.parent, agents, grid)



def _agent_files(results_dir: Path) -> list[dict]:
    """The settled days the agent processes wrote (agents.simulator.write_schedule)."""
    return [json.loads(p.read_text()) for p in sorted(results_dir.glob("*.json"))]


def _round_costs(files: list[dict]) -> dict[int, dict[str, float]]:
    """Round → agent → planned cost."""
    costs: dict[int, dict[str, float]] = {}
    for data in files:
        for r, cost in data.get("round_costs_eur", {}).items():
            costs.setdefault(int(r), {})[data["agent"]] = cost
    return costs


def _day_result(s: Scenario, community, rows, records: dict, market_s: float,
                files: list[dict]) -> DayResult:
    """Settled schedules rebuilt from the agents' per-period outputs."""
    n, period_s = s.horizon.periods, s.horizon.period_minutes * 60
    by_agent: dict[str, dict[str, np.ndarray]] = {}
    ok: dict[str, bool] = {}
    for t, name, attr, value in rows:
        if attr == "ok":
            ok[name] = bool(value)
        elif attr in FLOW_ATTRS or attr == "soc_kwh":
            arr = by_agent.setdefault(name, {}).setdefault(attr, np.full(n, np.nan))
            arr[(t // period_s) % n] = np.nan if value is None else value
    schedules = {}
    for d in community:
        if not ok.get(d.name) or d.name not in by_agent:
            continue
        flows = {k: v for k, v in by_agent[d.name].items() if k != "soc_kwh"}
        soc = by_agent[d.name].get("soc_kwh")
        costs = period_costs_eur(d, flows)
        schedules[d.name] = Schedule(d.name, agent_kind(d), "optimal", float(costs.sum()),
                                     "", 0.0, flows, soc if d.battery else None, costs)
    costs = _round_costs(files)
    rounds = [RoundStats(RoundRecord(r["round"], r["error_kw"], np.array(r["sold_kw"]),
                                     np.array(r["bought_kw"]), r["rule"], r["limits_changed"]),
                         {"round": r["seconds"]}, costs.get(r["round"], {}))
              for r in records["rounds"]]
    return DayResult("decentralized", schedules, rounds, bool(records["converged"]),
                     dict(records["failed"]), [], market_s)


def _recover(s: Scenario, community, out: Path, records: dict, market_s: float,
             startup_s: float, aborted: str) -> DistributedOutcome:
    """The co-simulation stopped (a simulator process died): the market's records come
    from the coordinator, the surviving agents' settled days from their result files;
    the caller runs the power flows in-process."""
    rows, files = [], _agent_files(out / "agent_results")
    for data in files:
        for attr, values in [*data["flows_kw"].items(), ("soc_kwh", data["soc_kwh"])]:
            for t, v in enumerate(values or []):
                rows.append((t * s.horizon.period_minutes * 60, data["agent"], attr, v))
        rows.append((0, data["agent"], "ok", True))
    result = _day_result(s, community, rows, records, market_s, files)
    for d in community:
        if d.name not in result.schedules and d.name not in result.failed:
            result.failed[d.name] = "its simulator process stopped"
    result.build_s = startup_s
    return DistributedOutcome(result, None, set(range(group_count(s))), 0.0, None, aborted)


def _records(s: Scenario, out: Path, coordinator) -> dict:
    """The coordinator's record of the day. A coordinator this run started exits after
    writing it; a running one (``runtime.coordinator``) writes it into the shared
    results folder, which is polled."""
    timeout_s = s.runtime.registration_timeout_s + s.runtime.round_deadline_s * \
        s.market.max_rounds
    path, deadline = out / RECORDS_FILE, time.monotonic() + timeout_s
    if coordinator is not None:
        coordinator.wait(timeout=timeout_s)
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise RunError(f"{path}: no record of the market day from the coordinator "
                       f"({type(exc).__name__})") from None


def _wait_for_coordinator(s: Scenario, endpoint: str) -> None:
    """A running coordinator must accept TCP connections (a bare TCP connection is
    harmless to a ZeroMQ socket) within the scenario's connect retries; ZeroMQ itself
    would wait silently."""
    host, port = endpoint.removeprefix("tcp://").rsplit(":", 1)
    _with_retries(s, lambda: socket.create_connection(
        (host, int(port)), timeout=s.runtime.connect_retry_s).close(), OSError,
        f"coordinator at {endpoint}")


def _start_helpers(s: Scenario, community, out: Path, price: float):
    """The coordinator (unless one runs already) and the agent launcher (for the groups
    no running simulator serves)."""
    (out / RECORDS_FILE).unlink(missing_ok=True)
    if s.runtime.coordinator:
        proc, endpoint = None, s.runtime.coordinator
        _wait_for_coordinator(s, endpoint)
    else:
        proc, endpoint = start_coordinator(s, [d.name for d in community], out, price)
    forked, launcher = [], None
    missing = group_addresses(s, group_count(s)).count(None)
    if s.runtime.launcher == "fork" and missing:
        launcher, forked = start_launcher(missing)
    return proc, endpoint, launcher, forked


def _simulate(world, s: Scenario, out: Path, bar) -> str | None:
    """``world.run`` with the progress bar fed; why it stopped early, or None."""
    period_s, periods = s.horizon.period_minutes * 60, s.horizon.periods
    hook = (lambda t: bar.on_period((t // period_s) % periods)) if bar else None
    collector.STEP_HOOKS[:] = [hook] if hook else []
    try:
        with RoundWatcher(out / "messages.jsonl", bar.on_round if bar else lambda _: None):
            world.run(until=periods * period_s, print_progress=False)
    except Exception as exc:  # noqa: BLE001 - a simulator died: the caller recovers
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
    finally:
        collector.STEP_HOOKS.clear()
    return None


def run_distributed(s: Scenario, community, bus_of: dict[str, int], out: Path,
                    price: float, bar=None) -> DistributedOutcome:
    """Run one day across processes; the coordinator's records and every output return.
    ``bar`` (a DayProgress) shows the round and the period."""
    logger.disable("mosaik")
    logger.disable("mosaik_api_v3")
    t0, aborted = time.perf_counter(), "the simulators did not start"
    proc, endpoint, launcher, forked = _start_helpers(s, community, out, price)
    try:
        world = build_world(s, community, bus_of, endpoint, forked, out / "agent_results")
        startup_s = time.perf_counter() - t0
        sid = next(k for k in collector.RECORDS if k.startswith("Collector"))
        t_run = time.perf_counter()
        aborted = _simulate(world, s, out, bar)
        run_s = time.perf_counter() - t_run
        records = _records(s, out, proc)
    finally:
        _stop(proc, launcher, at_once=aborted is not None)
    rows = collector.RECORDS.pop(sid)
    market_s = sum(r["seconds"] for r in records["rounds"])
    if aborted is not None:
        return _recover(s, community, out, records, market_s, startup_s, aborted)
    result = _day_result(s, community, rows, records, market_s,
                         _agent_files(out / "agent_results"))
    result.build_s = startup_s
    pids = {v for _, _, attr, v in rows if attr == "pid"}
    grid = _grid_results(rows, s.horizon.period_minutes * 60)
    rss = [v for _, _, attr, v in rows if attr == "rss_mb" and v is not None]
    return DistributedOutcome(result, grid, pids, max(run_s - market_s, 0.0),
                              max(rss, default=None))
