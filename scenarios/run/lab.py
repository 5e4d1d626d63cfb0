"""``lemgrid lab``: one scenario's community, grid, days and seed under every registered
mechanism that serves its agent kinds, each run as ``lemgrid run`` runs it
(``world.run_scenario``) in ``DIR/<mechanism>/``, and the two yardsticks: the retail
baseline (the run of the mechanism whose plug-in is marked ``retail_baseline``) and the
community optimum (``community_optimum``). The report is ``scenarios.results.lab``'s.

A mechanism that fails on the community (refused by the scenario's checks, stopped, or
any error of its run) gets its row with the reason and the lab goes on; one that does
not converge keeps its numbers, marked. A run whose folder holds a finished run of the
same resolved scenario (its config.yaml) is not run again, nor a failure of the same
settings (``lab_failed.json``), nor the optimum (``optimum.json``).
"""

from __future__ import annotations

import json
import multiprocessing
import time
from pathlib import Path

import yaml
from tqdm import tqdm

from lemgrid.agents.days import day_slice
from lemgrid.agents.operator import day_loss_price
from lemgrid.grid.branchflow import NetworkInfeasible, loss_price
from lemgrid.scenarios import mechanisms
from lemgrid.scenarios.community.builder import build_community
from lemgrid.scenarios.results import atomic
from lemgrid.scenarios.results.lab import (
    BASELINE,
    MECHANISM,
    NOT_CONVERGED,
    OK,
    OPTIMUM,
    Outcome,
    write_lab,
    write_sweep,
)
from lemgrid.scenarios.results.tables import scenario_config
from lemgrid.scenarios.run.central_p2p import solve_central
from lemgrid.scenarios.run.errors import RunStopped, interrupts_raised
from lemgrid.scenarios.run.market import operator_data
from lemgrid.scenarios.run.network import place_agents
from lemgrid.scenarios.run.world import run_scenario
from lemgrid.scenarios.schema import Scenario, ScenarioError, agent_kinds, load_scenario

FAILED = "lab_failed.json"  # a failed run's settings and reason, in its folder
OPTIMUM_FILE = "optimum.json"
OPTIMUM_DIR = "optimum"
OPTIMUM_METHOD = "days in sequence, batteries carried"  # a kept optimum of another is redone
INTERRUPTED_CODE = 128  # a run stopped by a signal exits above this


def baseline_mechanism() -> str | None:
    """The registered mechanism marked as the retail baseline (the first, if several)."""
    return next((n for n, m in mechanisms.registry().items() if m.retail_baseline), None)


def market_key(field: str | None) -> str | None:
    """The market parameter a swept ``market.KEY`` field sets; None for any other field."""
    return field.split(".", 2)[1] if field and field.startswith("market.") else None


def has_parameter(name: str, key: str) -> bool:
    return key in mechanisms.get(name).params.model_fields


def without(overrides: list[str], field: str) -> list[str]:
    return [o for o in overrides if o.partition("=")[0] != field]


def lab_mechanisms(s: Scenario, asked: str = "all", sweep_field: str | None = None) -> list[str]:
    """The mechanisms to run: ``all`` (every one serving the scenario's agent kinds) or
    a comma-separated list of registered names; ScenarioError naming an unknown one.
    Swept over a market parameter, those that have it (ScenarioError where none does)."""
    serving = mechanisms.serving(agent_kinds(s))
    if asked == "all":
        names = serving
    else:
        names = [n.strip() for n in asked.split(",") if n.strip()]
        unknown = [n for n in names if n not in mechanisms.registry()]
        if unknown or not names:
            raise ScenarioError([(f"--mechanisms: unknown {', '.join(unknown) or 'empty list'}; "
                                 f"allowed: all or a comma-separated list of "
                                 f"{', '.join(mechanisms.registry())} (serving {s.name}: "
                                 f"{', '.join(serving)})")])
        names = list(dict.fromkeys(names))
    key = market_key(sweep_field)
    if key is None:
        return names
    having = [n for n in names if has_parameter(n, key)]
    if not having:
        owners = ", ".join(n for n in mechanisms.registry() if has_parameter(n, key))
        where = f" ({key} is one of {owners})" if owners else ""
        raise ScenarioError([(f"--sweep {sweep_field}: no mechanism of the lab "
                             f"({', '.join(names)}) has the parameter {key}; allowed: a "
                             f"parameter of one of them{where}")])
    return having


def _same_config(path: Path, config: dict) -> bool:
    try:
        return yaml.safe_load(path.read_text()) == config
    except (OSError, yaml.YAMLError):
        return False


def finished(out: Path, config: dict) -> bool:
    """``out`` holds a whole finished run of the scenario ``config``."""
    try:
        summary = json.loads((out / "summary.json").read_text())
    except (OSError, ValueError):
        return False
    return (_same_config(out / "config.yaml", config)
            and summary.get("days") == summary.get("days_planned")
            and (out / "report.html").is_file())


def _failed_before(out: Path, config: dict) -> str | None:
    try:
        record = json.loads((out / FAILED).read_text())
    except (OSError, ValueError):
        return None
    return record["reason"] if record.get("config") == config else None


def run_one(path: Path, overrides: list[str], name: str, role: str,
            out: Path) -> tuple[Outcome, bool]:
    """The scenario under mechanism ``name`` in ``out``; returns its outcome and whether
    it ran now (False: kept from before)."""
    try:
        s = load_scenario(path, [*overrides, f"market.mechanism={name}"])
    except ScenarioError as exc:
        return Outcome(name, role, f"failed: {' '.join(exc.lines)}"), True
    config = scenario_config(s)
    if finished(out, config):
        return _outcome(name, role, out), False
    if (reason := _failed_before(out, config)) is not None:
        return Outcome(name, role, f"failed: {reason}"), False
    try:
        run_scenario(s, out)
    except RunStopped as exc:
        if exc.exit_code > INTERRUPTED_CODE:  # the user stopped the lab: so be it
            raise
        return _failed(out, config, name, role, f"{exc}")
    except Exception as exc:  # noqa: BLE001 - any failure of one mechanism: its row says it
        return _failed(out, config, name, role, f"{type(exc).__name__}: {exc}")
    (out / FAILED).unlink(missing_ok=True)
    return _outcome(name, role, out), True


def _failed(out: Path, config: dict, name: str, role: str, reason: str) -> tuple[Outcome, bool]:
    """A failed run: its reason kept in its folder (a rerun with the same settings keeps
    it), its partial results no longer read as a run."""
    out.mkdir(parents=True, exist_ok=True)
    atomic.write_text(out / FAILED, json.dumps({"config": config, "reason": reason}))
    (out / "summary.json").unlink(missing_ok=True)
    return Outcome(name, role, f"failed: {reason}"), True


def _outcome(name: str, role: str, out: Path) -> Outcome:
    summary = json.loads((out / "summary.json").read_text())
    status = OK if summary["market"]["converged"] else NOT_CONVERGED
    return Outcome(name, role, status, folder=out)


# ---- the community optimum ----------------------------------------------------------------

def optimum_days(s: Scenario, with_network: bool) -> dict:
    """The community optimum of every day: ``bill_eur`` (Σ over days of the objective
    minus the operator's loss cost: the peers' day bills with fixed costs), its loss cost,
    the model's losses (kWh) and seconds. The days are planned one after another, as the
    mechanisms' participants plan them: each day's batteries start with the energy the
    optimum's own day before left them (the first day with the scenario's)."""
    community = build_community(s)
    bus_of = place_agents(s, community)
    operator = operator_data(s, bus_of, community) if with_network else None
    start = {d.name: d.battery.e0_kwh for d in community if d.battery is not None}
    bill = loss_cost = losses = seconds = 0.0
    for day in range(s.horizon.days):
        data = [day_slice(d, day, start.get(d.name)) for d in community]
        result = solve_central(data, operator, day)
        start |= result.end_kwh
        h = data[0].horizon.period_h
        cost = 0.0 if operator is None else float(
            h * loss_price(day_loss_price(operator, day), data[0].horizon.periods,
                           operator.model) @ result.losses_kw)
        bill += result.objective_eur - cost
        loss_cost += cost
        losses += float(result.losses_kw.sum() * h)
        seconds += result.seconds
    return {"bill_eur": bill, "loss_cost_eur": loss_cost,
            "losses_kwh": losses if with_network else None, "seconds": seconds,
            "network": with_network}


def community_optimum(s: Scenario, out: Path) -> tuple[Outcome, bool, list[str]]:
    """The optimum within the network's limits, or without the network where its model
    cannot hold it (said in the notes); kept from ``out/optimum.json`` when the scenario
    is the same. Returns the outcome, whether it was computed now, and the notes."""
    config = scenario_config(s)
    path = out / OPTIMUM_FILE
    try:
        kept = json.loads(path.read_text())
    except (OSError, ValueError):
        kept = None
    ran = (kept is None or kept.get("config") != config
           or kept.get("method") != OPTIMUM_METHOD)
    if ran:
        kept = {"config": config, "method": OPTIMUM_METHOD, "notes": []}
        try:
            kept["optimum"] = optimum_days(s, with_network=True)
        except (ValueError, NetworkInfeasible) as exc:
            kept["notes"].append(f"community optimum without the network: the network model "
                                 f"cannot hold {s.grid.network} ({exc})")
            try:
                kept["optimum"] = optimum_days(s, with_network=False)
            except (ValueError, RuntimeError) as again:
                kept["optimum"] = None
                kept["reason"] = f"{type(again).__name__}: {again}"
        except RuntimeError as exc:
            kept["optimum"], kept["reason"] = None, f"{type(exc).__name__}: {exc}"
        out.mkdir(parents=True, exist_ok=True)
        atomic.write_text(path, json.dumps(kept, indent=2) + "\n")
    opt = kept["optimum"]
    status = (f"failed: {kept.get('reason')}" if opt is None
              else OK if opt["network"] else "ok (without the network)")
    return Outcome(OPTIMUM, OPTIMUM, status, optimum=opt), ran, kept["notes"]


# ---- the lab ------------------------------------------------------------------------------

def _job(task: tuple) -> tuple[Outcome, bool, list[str]]:
    """One task of a lab, in a worker process (``--jobs``): SIGINT and SIGTERM stop its run
    as they stop ``lemgrid run`` (its children stopped, what is finished written)."""
    with interrupts_raised():
        return _do(task)


def _do(task: tuple) -> tuple[Outcome, bool, list[str]]:
    """A task's outcome, whether it ran now, and its notes."""
    kind, *args = task
    return community_optimum(*args) if kind == OPTIMUM else (*run_one(*args), [])


def _tasks(s: Scenario, path: Path, overrides: list[str], out: Path, names: list[str],
           sweep_field: str | None) -> list[tuple]:
    base = baseline_mechanism()
    runs = ([(base, BASELINE)] if base else []) + [(n, MECHANISM) for n in names if n != base]
    return [*[(MECHANISM, path, for_mechanism(overrides, name, sweep_field), name, role,
               out / name) for name, role in runs],
            (OPTIMUM, s, out / OPTIMUM_DIR)]


def for_mechanism(overrides: list[str], name: str, field: str | None) -> list[str]:
    """The settings of a mechanism's run: a swept market parameter only where the
    mechanism has it (the retail baseline runs as it is)."""
    key = market_key(field)
    return overrides if key is None or has_parameter(name, key) else without(overrides, field)


def run_lab(path: Path, overrides: list[str], out: Path, asked: str = "all",
            progress: bool = True, jobs: int = 1, sweep_field: str | None = None):
    """Run the lab of the scenario file ``path`` (with ``overrides``) into ``out``, ``jobs``
    runs at a time (each in a worker process of its own where jobs > 1: their wall times
    then share the machine); write its report; returns the table (pandas) and the names
    of the runs made now. ``sweep_field``: the setting a sweep varies (a market parameter
    is set only in the mechanisms that have it, and only those run besides the
    baseline)."""
    s = load_scenario(path, without(overrides, sweep_field) if market_key(sweep_field)
                      else overrides)
    names = lab_mechanisms(s, asked, sweep_field)
    tasks = _tasks(s, path, overrides, out, names, sweep_field)
    notes = ([] if baseline_mechanism() else
             ["no registered mechanism is marked as the retail baseline: no savings"])
    results: dict[int, tuple] = {}
    bar = tqdm(total=len(tasks), desc=f"lab {s.name}", unit="run", disable=not progress)
    say = bar.write if progress else (lambda _line: None)

    def done(i: int, result: tuple, seconds: float | None) -> None:
        results[i] = result
        outcome, ran, _notes = result
        took = f", {seconds:.1f} s" if ran and seconds is not None else ""
        say(f"{outcome.name}: {outcome.status}{took if ran else ', kept (same settings)'}")
        bar.update()

    try:
        if jobs <= 1:
            for i, task in enumerate(tasks):
                bar.set_postfix_str(task[3] if task[0] == MECHANISM else OPTIMUM)
                start = time.perf_counter()
                done(i, _do(task), time.perf_counter() - start)
        else:
            with multiprocessing.get_context("spawn").Pool(jobs) as pool:
                try:
                    pending = {i: pool.apply_async(_job, (task,)) for i, task in enumerate(tasks)}
                    while pending:
                        for i in [i for i, r in pending.items() if r.ready()]:
                            done(i, pending.pop(i).get(), None)
                        time.sleep(0.2)
                except BaseException:
                    pool.terminate()  # each worker stops its run as lemgrid run stops
                    raise
    finally:
        bar.close()
    ordered = [results[i] for i in range(len(tasks))]
    made = [outcome.name for outcome, ran, _ in ordered if ran]
    notes += [n for _, _, more in ordered for n in more]
    outcomes = [outcome for outcome, _, _ in ordered]
    return write_lab(out, s.name, outcomes, notes, s.grid.v_min_pu), made


# ---- a sweep --------------------------------------------------------------------------------

def sweep_values(text: str) -> tuple[str, list[str]]:
    """``FIELD=v1,v2,...`` as the field and its values (each read as YAML by ``--set``);
    ScenarioError where it is not that."""
    field, sep, values = text.partition("=")
    items = [v.strip() for v in values.split(",") if v.strip()]
    if not sep or not field.strip() or not items:
        raise ScenarioError([(f"--sweep {text!r}: expected FIELD=v1,v2,... (a dotted scenario "
                             "field and at least one value)")])
    return field.strip(), list(dict.fromkeys(items))


def run_sweep(path: Path, overrides: list[str], out: Path, sweep: str, asked: str = "all",
              progress: bool = True, jobs: int = 1):
    """The lab at each value of a setting, ``out/FIELD=VALUE/`` each, then the sweep's
    report in ``out`` (``scenarios.results.lab.write_sweep``); returns the sweep's table.
    A value the scenario refuses is one ScenarioError before anything runs (a market
    parameter: checked with each mechanism that has it)."""
    field, values = sweep_values(sweep)
    base = load_scenario(path, overrides)
    swept = lab_mechanisms(base, asked, field) if market_key(field) else []
    for value in values:
        settings = [*overrides, f"{field}={value}"]
        for name in swept:
            load_scenario(path, [*settings, f"market.mechanism={name}"])
        if not swept:
            load_scenario(path, settings)
    labs = []
    for value in values:
        folder = out / f"{field}={value}".replace("/", "_")
        table, _made = run_lab(path, [*overrides, f"{field}={value}"], folder, asked, progress,
                               jobs, field)
        labs.append((yaml.safe_load(value), folder, table))
    return write_sweep(out, base.name, field, labs)
