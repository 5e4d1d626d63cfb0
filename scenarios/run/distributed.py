"""The distributed runtime: the coordinator as its own process (ZeroMQ), every agent
group as its own mosaik simulator process, the grid simulator as its own process, and
an in-process collector that records every output per period."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

import mosaik
import numpy as np
from loguru import logger
from mosaik.exceptions import SimulationError

from lemgrid.agents.data import MODEL_BUILDS, data_to_dict
from lemgrid.agents.days import day_slice
from lemgrid.agents.market_agent import settle_schedule
from lemgrid.agents.simulator import agent_to_dict
from lemgrid.agents.solver import agent_kind
from lemgrid.coordinator import records
from lemgrid.coordinator.mechanisms.base import RoundRecord, dump_market
from lemgrid.coordinator.protocol import ClearingBody, SettlementBody
from lemgrid.grid.powerflow import PeriodResult
from lemgrid.scenarios.results.outcome import DayResult, RoundStats
from lemgrid.scenarios.run import collector, grid_process, mosaik_compat
from lemgrid.scenarios.run.cosimulators import (
    connect_cosimulators,
    linked_agents,
    start_cosimulators,
)
from lemgrid.scenarios.run.errors import RunError, RunStopped, as_interrupt
from lemgrid.scenarios.run.market import (
    OPERATOR,
    check_wrapper,
    market_params,
    needs_operator,
    operator_data,
    plugin,
)
from lemgrid.scenarios.run.network import grid_limits, n_buses, network_options
from lemgrid.scenarios.run.progress import RoundWatcher
from lemgrid.scenarios.run.topology import group_addresses, group_count, process_groups
from lemgrid.scenarios.run.watchdog import shutdown_each, start_watchdog
from lemgrid.scenarios.schema import Scenario

GRID_OUTPUTS = ["vm_pu", "loading_pct", "trafo_p_mw", "trafo_loading_pct",
                "voltage_violations", "line_violations", "trafo_violations", "converged",
                "losses_kw"]
LOOPBACK = "127.0.0.1"  # where the runner's own grid simulator listens for mosaik
START_AT_ONCE = 64  # agent simulators started and created concurrently
LAUNCHER_EXIT_S = 10.0  # after the simulation, the helper processes exit within this
RECORDS_DIR = "rounds"  # the coordinator's record of every finished day (one file each)
PARAMS_FILE = "mechanism.json"  # the mechanism and its parameters, for the coordinator
TEMPLATES_FILE = "templates.pkl"  # the agents' model templates, in the run's scratch folder
# ``lemgrid coordinator`` without the command line's imports (the scenario schema brings
# pandapower: 2.3 s of start-up against 0.2 s)
COORDINATOR_CMD = [sys.executable, "-m", "lemgrid.coordinator.service"]


@dataclass
class DistributedOutcome:
    days: list[DayResult]
    grid_results: list[list[PeriodResult]] | None = field(default_factory=list)  # None: not run
    pids: set = field(default_factory=set)
    grid_s: float = 0.0  # the simulation's wall time outside the market rounds
    peak_rss_mb: float | None = None  # the largest agent process's peak resident memory
    aborted: str | None = None  # why the co-simulation stopped early, if it did
    interrupted: object = None  # the Interrupted (SIGINT, SIGTERM) that stopped it
    helpers: Helpers | None = None  # still exiting after a normal day

    def finish(self) -> None:
        """Wait for the helper processes, which exit by themselves once the day is over
        (the caller writes its results meanwhile)."""
        if self.helpers is not None:
            self.helpers.stop(at_once=False)
            self.helpers = None


def _grid_results(rows, period_s: int, periods: int) -> list[list[PeriodResult]]:
    """The grid simulator's outputs per period as PeriodResults (None → NaN), by day."""
    by_period: dict[int, dict] = {}
    for t, _, attr, value in rows:
        if attr in GRID_OUTPUTS:
            by_period.setdefault(t // period_s, {})[attr] = value

    def arr(values):
        return np.array([np.nan if v is None else v for v in values or []], float)
    days: list[list[PeriodResult]] = []
    for k, o in sorted(by_period.items()):
        day, t = divmod(k, periods)
        while len(days) <= day:
            days.append([])
        days[day].append(PeriodResult(period=t, converged=bool(o.get("converged")),
                                      vm_pu=arr(o.get("vm_pu")),
                                      loading_pct=arr(o.get("loading_pct")),
                                      voltage_violations=int(o.get("voltage_violations") or 0),
                                      line_violations=int(o.get("line_violations") or 0),
                                      losses_kw=np.nan if o.get("losses_kw") is None else o["losses_kw"],
                                      p_slack_kw=np.nan, trafo_p_mw=arr(o.get("trafo_p_mw")),
                                      trafo_loading_pct=arr(o.get("trafo_loading_pct")),
                                      trafo_violations=int(o.get("trafo_violations") or 0)))
    return days


def coordinator_argv(s: Scenario, community, out: Path, endpoint: str, first_day: int = 0,
                     gone=()) -> list[str]:
    """The ``lemgrid coordinator`` arguments for scenario ``s`` from ``first_day`` on
    (``gone``: agents that left the run before it); writes the roster and the mechanism's
    parameters (those of the whole community) into ``out``."""
    roster = out / "roster.txt"
    names = [d.name for d in community] + ([OPERATOR] if needs_operator(s) else [])
    roster.write_text("".join(f"{n}\n" for n in names if n not in gone))
    (out / PARAMS_FILE).write_text(json.dumps(dump_market(plugin(s).core, market_params(s),
                                                          check_wrapper(s))))
    rt = s.runtime
    argv = ["--params", str(out / PARAMS_FILE), "--roster", str(roster), "--endpoint", endpoint,
            "--log", str(out / "messages.jsonl"), "--records", str(out / RECORDS_DIR),
            "--day", str(first_day), "--days", str(s.horizon.days - first_day),
            "--round-deadline-s", str(rt.round_deadline_s),
            "--registration-timeout-s", str(rt.registration_timeout_s),
            "--realisation-timeout-s", str(rt.realisation_timeout_s)]
    return argv + (["--curve-keys", rt.curve_keys] if rt.curve_keys else [])


def start_coordinator(s: Scenario, community, out: Path, first_day: int = 0, gone=()):
    """Start ``lemgrid coordinator`` as a process (it goes on starting while the caller
    does other things: ``coordinator_ready`` waits for it)."""
    return subprocess.Popen(
        [*COORDINATOR_CMD, *coordinator_argv(
            s, community, out, f"tcp://{s.runtime.coordinator_host}:0", first_day, gone)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def spawn_coordinator(argv: list[str], stderr=subprocess.PIPE):
    """``lemgrid coordinator ARGV`` as a process, once it listens: it and its endpoint.
    ``stderr``: where its warnings go (DEVNULL for a flood of them)."""
    return coordinator_ready(subprocess.Popen(
        [*COORDINATOR_CMD, *argv],
        stdout=subprocess.PIPE, stderr=stderr, text=True))


def listening(proc: subprocess.Popen, ready: str, what: str) -> str:
    """The address a started helper process prints as its first line (``ready`` then
    the address) once it listens; a RunError naming ``what`` if it says anything else."""
    line = proc.stdout.readline().strip()
    if not line.startswith(ready):
        proc.kill()
        why = line or (proc.stderr.read().strip() if proc.stderr else "no output")
        raise RunError(f"{what} did not start: {why}")
    return line.rsplit(" ", 1)[-1]


def coordinator_ready(proc: subprocess.Popen):
    """The coordinator process and its endpoint, once it listens."""
    return proc, listening(proc, "coordinator listening on ", "coordinator")


@dataclass
class Helpers:
    """The processes a distributed run starts beside mosaik's world: the coordinator,
    the agent launcher (its forked simulators) and the grid simulator (None where the
    scenario names a running one)."""

    coordinator: subprocess.Popen | None = None
    launcher: subprocess.Popen | None = None
    grid: subprocess.Popen | None = None
    # the run's scratch folder: the agents' model templates (``write_agent_templates``),
    # which the launcher reads before it forks
    scratch: tempfile.TemporaryDirectory = field(
        default_factory=lambda: tempfile.TemporaryDirectory(prefix="lemgrid-"))

    @property
    def templates(self) -> Path:
        return Path(self.scratch.name) / TEMPLATES_FILE

    def grid_address(self) -> str:
        """The started grid simulator's ``host:port``, once it listens."""
        return listening(self.grid, grid_process.READY, "grid simulator")

    def stop(self, at_once: bool) -> None:
        """End them: each exits by itself after a normal day (waited for up to
        ``LAUNCHER_EXIT_S``); after an aborted simulation (``at_once``), or one that does
        not exit, it is killed: the launcher with its whole process group (its forked
        agent simulators). The scratch folder goes with them."""
        for p in (self.coordinator, self.launcher, self.grid):
            if p is None:
                continue
            try:
                p.wait(timeout=0 if at_once else LAUNCHER_EXIT_S)
            except subprocess.TimeoutExpired:
                if p is self.launcher:
                    os.killpg(p.pid, signal.SIGKILL)
                p.kill()
                p.wait()
        self.scratch.cleanup()


def start_grid(host: str, s: Scenario):
    """Start the grid simulator as its own process listening on a free port of ``host``
    (``Helpers.grid_address`` reads its address), with the scenario's network built:
    forked from this process, which has both pandapower and the network already
    (``grid_process``), else a process of its own whose imports overlap the agents'
    start-up."""
    options = network_options(s)
    if grid_process.CAN_FORK:
        grid_process.prebuild(s.grid.network, options)  # the child copies it
        return grid_process.fork(host)
    network = [s.grid.network, json.dumps(options)]
    if json.loads(network[1]) != options:  # e.g. ampacities keyed by line: built at create
        network = []
    return subprocess.Popen([sys.executable, "-m", "lemgrid.scenarios.run.grid_process", host,
                             *network], stdout=subprocess.PIPE, text=True)


def start_launcher(count: int, nice: int = 0, preload: tuple[str, ...] = (),
                   templates: Path | None = None) -> subprocess.Popen:
    """Start ``python -m lemgrid.agents.launcher`` (importing ``preload`` and reading the
    agents' model ``templates`` once written, before it forks); ``launched`` reads the
    forked simulators' addresses."""
    return subprocess.Popen([sys.executable, "-m", "lemgrid.agents.launcher", str(count),
                             "--nice", str(nice), *(f"--preload={m}" for m in preload),
                             *([f"--templates={templates}"] if templates else [])],
                            stdout=subprocess.PIPE, text=True, start_new_session=True)


def launched(proc: subprocess.Popen) -> list[str]:
    """The addresses of the simulators the launcher ``proc`` has forked, once it has."""
    line = ""
    try:
        line = proc.stdout.readline()
        return json.loads(line)
    except BaseException as exc:  # also interrupted while it forks: its simulators go too
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        if isinstance(exc, json.JSONDecodeError):
            raise RunError(f"agent launcher did not start: {line.strip()!r}") from None
        raise


def _sim_config(s: Scenario, addresses: list[str | None], forked: list[str]) -> dict:
    """Agent groups at their running simulators' addresses, else forked simulators
    (``launcher: fork``) or mosaik-started processes (``launcher: cmd``); the grid
    simulator at the scenario's ``grid_host``, else started by mosaik (``_populate``
    points it at the runner's own grid process instead when there is one)."""
    cmd = f"{sys.executable} -m lemgrid.agents.simulator %(addr)s"
    forks = iter(forked)
    config = {}
    for i, address in enumerate(addresses):
        address = address or next(forks, None)
        config[f"Agents{i}"] = {"connect": address} if address else {"cmd": cmd}
    config["Grid"] = ({"connect": s.runtime.grid_host} if s.runtime.grid_host else
                      {"cmd": f"{sys.executable} -m lemgrid.grid.simulator %(addr)s"})
    config["Collector"] = {"python": "lemgrid.scenarios.run.collector:Collector"}
    config |= {c.name: c.start() for c in s.cosimulators}
    return config


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


def start_agent_groups(world, s: Scenario, params: list[dict], hosted: list[list[dict]],
                       at_once: set[str]) -> list[list]:
    """Start the simulators ``Agents0``, ``Agents1``, ... (``params``: each one's ``init``
    arguments) and create each one's agents (``hosted``); returns each group's entities.
    The ones named in ``at_once`` (those this run forked: listening already, nothing to
    retry) start up to ``START_AT_ONCE`` at a time: one after another, each start and
    create is a round trip to a process that then builds its models while the runner
    waits (10 ms each, 0.9 s for 90 processes). The others start in order as
    ``start_sim`` starts them, so that the first one that never comes up is named."""
    aw = world._async_world  # mosaik's World is a synchronous front to it
    limit = asyncio.Semaphore(START_AT_ONCE)

    async def start(i: int):
        async with limit:
            factory = await aw.start(f"Agents{i}", sim_id=f"Agents{i}-0", **params[i])
            return await factory.Agent.create(len(hosted[i]), agents=hosted[i])

    async def start_all(indices: list[int]):
        return await asyncio.gather(*(start(i) for i in indices))

    concurrent = [i for i in range(len(params)) if f"Agents{i}" in at_once]
    created = dict(zip(concurrent, world.loop.run_until_complete(start_all(concurrent))))
    for i in range(len(params)):
        if i not in created:
            created[i] = start_sim(world, f"Agents{i}", s, **params[i]).Agent.create(
                len(hosted[i]), agents=hosted[i])
    return [created[i] for i in range(len(params))]


def uses_templates(s: Scenario) -> bool:
    """Whether the scenario's agents build their models from templates."""
    return s.solver.agent_models == MODEL_BUILDS[0]


def write_agent_templates(s: Scenario, community, first_day: int, path: Path) -> Path | None:
    """The templates of the agents' models (``agents.model``) written to ``path``, built
    once here for every agent process on this host instead of each building its own; None
    where models are built directly."""
    from lemgrid.agents.model import write_templates
    from lemgrid.agents.strategies import strategy

    if not uses_templates(s):
        return None
    write_templates([day_slice(d, first_day) for d in community],
                    strategy(plugin(s).strategy).variant, path)
    return path


def build_world(s: Scenario, community, actuals, bus_of: dict[str, int], endpoint: str,
                forked: list[str], results_dir: Path, first_day: int = 0,
                grid_address=None, templates: Path | None = None):
    """Start every simulator, create the entities and connect them. ``grid_address()``:
    the address of a grid simulator the runner started (asked for once the agents are
    created), None: mosaik starts it or the scenario names one; ``templates``: the agents'
    model templates (``write_agent_templates``)."""
    groups = process_groups(community, s.runtime.agents_per_process)
    if needs_operator(s):  # the network operator: a process of its own
        groups.append([operator_data(s, bus_of, community)])
    world = mosaik.World(_sim_config(s, group_addresses(s, len(groups)), forked),
                         time_resolution=1.0, skip_greetings=True, configure_logging=False)
    try:
        _populate(world=world, s=s, groups=groups, actuals=actuals, bus_of=bus_of,
                  forked=set(forked),
                  endpoint=endpoint, results_dir=results_dir, first_day=first_day,
                  grid_address=grid_address, templates=templates)
    except BaseException:
        shutdown_each(world)  # the simulators started so far, mosaik's tasks cancelled
        raise
    return world


def _populate(world, s: Scenario, groups, actuals, bus_of, endpoint: str,
              results_dir: Path, first_day: int, grid_address=None,
              templates: Path | None = None, forked: set[str] = frozenset()) -> None:
    """The co-simulators' entities first (a wrong name stops the run before any agent
    starts), the agents (each process builds its models from its ``create`` on), then the
    grid simulator and the collector, then the links."""
    so, period_s = s.solver, s.horizon.period_minutes * 60
    cosim_entities = start_cosimulators(world, s, results_dir.parent, start_sim)
    family = plugin(s).strategy
    solver = {"mip_rel_gap": so.mip_rel_gap, "time_limit_s": so.time_limit_s,
              "lp_first": so.lp_first, "agent_models": so.agent_models,
              "release_models": so.release_models,
              **s.market.agent_options()}
    linked = linked_agents(s)
    steps = ["period" if s.runtime.agent_step == "period" or any(d.name in linked for d in g)
             else "day" for g in groups]
    params = [{"endpoint": endpoint, "period_s": period_s, "solver": solver,
               "results_dir": str(results_dir), "curve_keys": s.runtime.curve_keys,
               "family": family, "days": s.horizon.days, "first_day": first_day,
               "coordinator_timeout_s": s.runtime.coordinator_timeout_s,
               "meter_periods": s.runtime.meter_periods,
               "templates": None if templates is None else str(templates), "step": step,
               "connection": s.runtime.agent_connection} for step in steps]
    hosted = [[agent_to_dict(data_to_dict(d), actuals.get(d.name)) for d in g] for g in groups]
    agents, output = {}, {}  # output: what each agent sends the grid
    at_once = {name for name, config in world.sim_config.items()
               if config.get("connect") in forked}
    for step, created in zip(steps, start_agent_groups(world, s, params, hosted, at_once)):
        for ent in created:
            agents[ent.eid] = ent
            output[ent.eid] = "p_kw_day" if step == "day" else "p_kw"
    if grid_address is not None:
        world.sim_config["Grid"] = {"connect": grid_address()}
    g = s.grid
    grid = start_sim(world, "Grid", s).Grid(
        network=g.network, network_options=network_options(s), bus_of=bus_of,
        limits=asdict(grid_limits(s)),
        period_s=period_s, power_factor=g.power_factor, keep_network_loads=g.keep_network_loads,
        solver=g.solver,
        background_kw=[g.background_kw_per_bus] * n_buses(g.network) if g.background_kw_per_bus
        else None)
    sink = world.start("Collector", period_s=period_s).Collector()
    for eid, ent in agents.items():
        if eid in bus_of:  # every agent but the operator has a connection
            world.connect(ent, grid, output[eid])
    world.connect(grid, sink, *GRID_OUTPUTS)
    connect_cosimulators(world, s, cosim_entities, agents, grid)


def _agent_files(results_dir: Path) -> dict[str, dict]:
    """The realised days the agent processes wrote (agents.simulator.write_realised)."""
    out = {}
    for path in sorted(results_dir.glob("*.json")):
        data = json.loads(path.read_text())
        out[data["agent"]] = data
    return out


def _rounds(day: dict, files: dict[str, dict]) -> list[RoundStats]:
    """The day's rounds from the coordinator's record, each agent's planned cost from
    its own file."""
    key = str(day["day"])
    costs = {name: f["days"].get(key, {}).get("round_costs_eur", {}) for name, f in files.items()}
    return [RoundStats(RoundRecord(r["round"], r["error_kw"],
                                   {k: np.asarray(v) for k, v in r["per_period"].items()},
                                   r["scalars"]),
                       {"round": r["seconds"]},
                       {n: c[str(r["round"])] for n, c in costs.items() if str(r["round"]) in c})
            for r in day["rounds"]]


def _realised_from_files(files: dict[str, dict]) -> dict[tuple[int, str], dict]:
    return {(int(day), name): {**{k: np.asarray(v, float) for k, v in d["realised"].items()},
                               "quote_kw": np.asarray(d["quote_kw"], float)}
            for name, f in files.items() for day, d in f["days"].items()}


def _day_results(s: Scenario, community, records: dict, realised: dict, files: dict
                 ) -> list[DayResult]:
    """Every settled day: the realised flows (collector or agent files) with the
    clearing and settlement the coordinator recorded."""
    days = []
    for day in records["days"]:
        d = day["day"]
        schedules = {}
        for data in community:
            flows = realised.get((d, data.name))
            settlement = day["settlements"].get(data.name)
            if flows is None or settlement is None or np.isnan(flows["net_kw"]).any():
                continue
            clearing = day["clearings"].get(data.name)
            sched = settle_schedule(day_slice(data, d), agent_kind(data), flows,
                                    clearing and ClearingBody(**clearing),
                                    SettlementBody(**settlement))
            sched.flows_kw["quote_kw"] = flows.get("quote_kw", sched.flows_kw["net_kw"])
            schedules[data.name] = sched
        days.append(DayResult("decentralized", schedules, _rounds(day, files),
                              bool(day["converged"]), _failures(day, files), [],
                              sum(r["seconds"] for r in day["rounds"]), day=d,
                              clearings={n: ClearingBody(**c)
                                         for n, c in day["clearings"].items()}))
    return days


def _failures(day: dict, files: dict[str, dict]) -> dict[str, str]:
    """The day's failed agents: the coordinator's reason (what it saw: a missed
    deadline, silence) with the agent's own account where its file has one."""
    key, out = str(day["day"]), {}
    for name, reason in day["failed"].items():
        own = files.get(name, {}).get("failures", {}).get(key)
        out[name] = f"{reason} (the agent: {own})" if own and own not in reason else reason
    return out


def _recover(s: Scenario, community, out: Path, records: dict, startup_s: float,
             aborted: str) -> DistributedOutcome:
    """The co-simulation stopped (a simulator process died): the market's records come
    from the coordinator, the surviving agents' realised days from their result files;
    the caller runs the power flows in-process."""
    files = _agent_files(out / "agent_results")
    days = _day_results(s, community, records, _realised_from_files(files), files)
    if days:
        for d in community:
            if d.name not in days[-1].schedules and d.name not in days[-1].failed:
                days[-1].failed[d.name] = "its simulator process stopped"
        days[0].build_s = startup_s
    return DistributedOutcome(days, None, set(range(group_count(s))), 0.0, None, aborted)


def stopped(coordinator) -> str | None:
    """Why the coordinator process this run started has stopped before its last day
    (killed, crashed), or None while it runs or after a normal exit."""
    code = None if coordinator is None else coordinator.poll()
    if code in (None, 0):
        return None
    how = (f"killed by {signal.Signals(-code).name}" if code < 0 and -code in
           signal.valid_signals() else f"exit code {code}")
    return f"the coordinator (pid {coordinator.pid}) stopped: {how}"


def _records(s: Scenario, out: Path, coordinator, first_day: int = 0) -> dict:
    """The coordinator's records of the finished days. The coordinator writes one per
    day into the results folder; this waits, as long as days keep coming (within one
    day's timeouts of each other), until the last day is in or the coordinator this run
    started has exited."""
    rt = s.runtime
    day_s = (rt.registration_timeout_s + rt.realisation_timeout_s
             + rt.round_deadline_s * s.market.rounds)
    folder = out / RECORDS_DIR

    def count() -> int:
        return len(list(folder.glob(records.PATTERN))) if folder.is_dir() else 0

    seen, deadline = -1, time.monotonic() + day_s
    while time.monotonic() < deadline:
        done = count()
        if done >= s.horizon.days - first_day:
            break
        if coordinator is not None and coordinator.poll() is not None:
            break  # exited: nothing more will come
        if done > seen:
            seen, deadline = done, time.monotonic() + day_s
        time.sleep(0.1)
    days = records.read_days(folder)
    if not days:
        why = stopped(coordinator) or "no record of the market days from the coordinator"
        raise RunError(f"{why}; no day finished (nothing in {folder})")
    return {"days": days}


def _wait_for_coordinator(s: Scenario, endpoint: str) -> None:
    """A running coordinator must accept TCP connections (a bare TCP connection is
    harmless to a ZeroMQ socket) within the scenario's connect retries; ZeroMQ itself
    would wait silently."""
    host, port = endpoint.removeprefix("tcp://").rsplit(":", 1)
    _with_retries(s, lambda: socket.create_connection(
        (host, int(port)), timeout=s.runtime.connect_retry_s).close(), OSError,
        f"coordinator at {endpoint}")


def start_agents(s: Scenario) -> Helpers:
    """The agent launcher for the groups no running simulator serves, started before
    anything else of a run (its imports and forks take longest; the runner meanwhile
    places the agents and builds the network)."""
    helpers = Helpers()
    missing = group_addresses(s, group_count(s)).count(None)
    if s.runtime.launcher == "fork" and missing:
        from lemgrid.agents.strategies import strategy

        preload = getattr(strategy(plugin(s).strategy), "preload", ())
        helpers.launcher = start_launcher(missing, s.runtime.agent_nice, preload,
                                          helpers.templates if uses_templates(s) else None)
    return helpers


def _start_helpers(s: Scenario, community, out: Path, first_day: int = 0, gone=(),
                   helpers: Helpers | None = None) -> Helpers:
    """Beside the agent launcher (``start_agents``, unless ``helpers`` has it), the
    coordinator (unless the scenario names a running one) and the grid simulator
    (likewise), all starting at once; ``_ready`` waits for them."""
    records.clear(out / RECORDS_DIR)
    helpers = helpers or start_agents(s)
    try:
        if s.runtime.coordinator:
            _wait_for_coordinator(s, s.runtime.coordinator)
        else:  # it starts while the launcher does
            helpers.coordinator = start_coordinator(s, community, out, first_day, gone)
        if s.runtime.grid_host is None:
            helpers.grid = start_grid(LOOPBACK, s)
    except BaseException:
        helpers.stop(at_once=True)
        raise
    return helpers


def _ready(s: Scenario, helpers: Helpers) -> tuple[str, list[str]]:
    """The coordinator's endpoint and the forked simulators' addresses, once the
    launcher has forked them and the coordinator listens."""
    forked = [] if helpers.launcher is None else launched(helpers.launcher)
    if helpers.coordinator is None:
        return s.runtime.coordinator, forked
    helpers.coordinator, endpoint = coordinator_ready(helpers.coordinator)
    return endpoint, forked


class CoordinatorStopped(RuntimeError):
    """The coordinator process died during the co-simulation."""


def _simulate(world, s: Scenario, out: Path, bar, coordinator=None, first_day: int = 0
              ) -> tuple[str | None, int]:
    """``world.run`` with the progress bar fed and the coordinator watched; why it stopped
    early (or None) and the last day it reached."""
    period_s, periods = s.horizon.period_minutes * 60, s.horizon.periods
    reached = [0]

    def hook(t):
        reached[0] = first_day + t // period_s // periods
        if (why := stopped(coordinator)) is not None:
            raise CoordinatorStopped(f"{why} during day {reached[0] + 1}")
        if bar:
            bar.on_day(reached[0])
            bar.on_period(t // period_s % periods)
    collector.STEP_HOOKS[:] = [hook]
    mosaik_compat.apply()
    watchdog = start_watchdog(world)
    try:
        watching = bar is not None and bar.shown  # else nobody sees the rounds
        with RoundWatcher(out / "messages.jsonl", bar.on_round) if watching else nullcontext():
            world.run(until=(s.horizon.days - first_day) * periods * period_s,
                      print_progress=False,
                      shutdown=False)
        watchdog.cancel()
        world.shutdown()
    except CoordinatorStopped as exc:
        shutdown_each(world)
        return str(exc), reached[0]
    except Exception as exc:  # noqa: BLE001 - a simulator died: the caller recovers
        shutdown_each(world)
        return f"{type(exc).__name__}: {exc}".splitlines()[0], reached[0]
    finally:
        collector.STEP_HOOKS.clear()
    return None, reached[0]


def run_distributed(s: Scenario, community, actuals, bus_of: dict[str, int], out: Path,
                    bar=None, first_day: int = 0, gone=(), helpers: Helpers | None = None
                    ) -> DistributedOutcome:
    """Run the days from ``first_day`` across processes (``gone``: agents that left the
    run before it); the coordinator's records and every output return. ``bar`` (a
    DayProgress) shows the day, the round and the period; ``helpers``: the agent
    launcher the caller started early (``start_agents``). Interrupted (SIGINT, SIGTERM),
    every helper process is stopped at once and the finished days return."""
    logger.disable("mosaik")
    logger.disable("mosaik_api_v3")
    t0, aborted, interrupted = time.perf_counter(), "the simulators did not start", None
    normal = False
    active = [d for d in community if d.name not in gone]
    helpers = _start_helpers(s, community, out, first_day, gone, helpers)
    proc = helpers.coordinator
    try:
        templates = write_agent_templates(s, active, first_day, helpers.templates)
        endpoint, forked = _ready(s, helpers)
        world = build_world(s=s, community=active, actuals=actuals, bus_of=bus_of,
                            endpoint=endpoint, forked=forked, results_dir=out / "agent_results",
                            first_day=first_day,
                            grid_address=helpers.grid_address if helpers.grid else None,
                            templates=templates)
        startup_s = time.perf_counter() - t0
        sid = next(k for k in collector.RECORDS if k.startswith("Collector"))
        t_run = time.perf_counter()
        try:
            aborted, _ = _simulate(world, s, out, bar, proc, first_day)
        except KeyboardInterrupt as exc:
            interrupted = as_interrupt(exc)
            aborted = str(interrupted)
            helpers.stop(at_once=True)  # first: no agent plays on
            shutdown_each(world)
        run_s = time.perf_counter() - t_run
        try:
            records = _records(s, out, proc, first_day)
        except RunError:
            if interrupted is None:
                raise
            raise RunStopped(f"{interrupted}; no day finished",
                             128 + interrupted.signum) from None
        normal = aborted is None  # the helpers exit by themselves: the caller waits later
    finally:
        if not normal:
            helpers.stop(at_once=aborted is not None)
    rows = collector.RECORDS.pop(sid)
    if aborted is not None:
        outcome = _recover(s, active, out, records, startup_s, aborted)
        outcome.interrupted = interrupted
        return outcome
    period_s, periods = s.horizon.period_minutes * 60, s.horizon.periods
    files = _agent_files(out / "agent_results")
    days = _day_results(s, active, records, _realised_from_files(files), files)
    days[0].build_s = startup_s
    market_s = sum(d.market_s for d in days)
    pids = {f["pid"] for f in files.values() if "pid" in f}
    grid = _grid_results(rows, period_s, periods)
    rss = [f["peak_rss_mb"] for f in files.values() if "peak_rss_mb" in f]
    return DistributedOutcome(days, grid, pids, max(run_s - market_s, 0.0),
                              max(rss, default=None), helpers=helpers)
