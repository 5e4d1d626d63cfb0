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
)
from lemgrid.scenarios.results.tables import scenario_config
from lemgrid.scenarios.run.central_p2p import solve_central
from lemgrid.scenarios.run.errors import RunStopped
from lemgrid.scenarios.run.market import operator_data
from lemgrid.scenarios.run.network import place_agents
from lemgrid.scenarios.run.world import run_scenario
from lemgrid.scenarios.schema import Scenario, ScenarioError, agent_kinds, load_scenario

FAILED = "lab_failed.json"  # a failed run's settings and reason, in its folder
OPTIMUM_FILE = "optimum.json"
OPTIMUM_DIR = "optimum"
INTERRUPTED_CODE = 128  # a run stopped by a signal exits above this


def baseline_mechanism() -> str | None:
    """The registered mechanism marked as the retail baseline (the first, if several)."""
    return next((n for n, m in mechanisms.registry().items() if m.retail_baseline), None)


def lab_mechanisms(s: Scenario, asked: str = "all") -> list[str]:
    """The mechanisms to run: ``all`` (every one serving the scenario's agent kinds) or
    a comma-separated list of registered names; ScenarioError naming an unknown one."""
    serving = mechanisms.serving(agent_kinds(s))
    if asked == "all":
        return serving
    names = [n.strip() for n in asked.split(",") if n.strip()]
    unknown = [n for n in names if n not in mechanisms.registry()]
    if unknown or not names:
        raise ScenarioError([(f"--mechanisms: unknown {', '.join(unknown) or 'empty list'}; "
                             f"allowed: all or a comma-separated list of "
                             f"{', '.join(mechanisms.registry())} (serving {s.name}: "
                             f"{', '.join(serving)})")])
    return list(dict.fromkeys(names))


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
    the model's losses (kWh) and seconds. Every day starts from the batteries' initial
    energy (each day's plan ends at least there, as the peers' own do)."""
    community = build_community(s)
    bus_of = place_agents(s, community)
    operator = operator_data(s, bus_of, community) if with_network else None
    bill = loss_cost = losses = seconds = 0.0
    for day in range(s.horizon.days):
        data = [day_slice(d, day, d.battery.e0_kwh if d.battery is not None else None)
                for d in community]
        result = solve_central(data, operator, day)
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
    ran = kept is None or kept.get("config") != config
    if ran:
        kept = {"config": config, "notes": []}
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

def run_lab(path: Path, overrides: list[str], out: Path, asked: str = "all",
            progress: bool = True):
    """Run the lab of the scenario file ``path`` (with ``overrides``) into ``out``; write
    its report; returns the table (pandas) and the names of the runs made now."""
    s = load_scenario(path, overrides)
    names = lab_mechanisms(s, asked)
    base = baseline_mechanism()
    jobs = ([(base, BASELINE)] if base else []) + [(n, MECHANISM) for n in names if n != base]
    outcomes, made, notes = [], [], []
    if base is None:
        notes.append("no registered mechanism is marked as the retail baseline: no savings")
    bar = tqdm(total=len(jobs) + 1, desc=f"lab {s.name}", unit="run", disable=not progress)
    say = bar.write if progress else (lambda _line: None)
    try:
        for name, role in jobs:
            bar.set_postfix_str(name)
            start = time.perf_counter()
            outcome, ran = run_one(path, overrides, name, role, out / name)
            outcomes.append(outcome)
            made += [name] if ran else []
            say(f"{name}: {outcome.status}, "
                      f"{f'{time.perf_counter() - start:.1f} s' if ran else 'kept (same settings)'}")
            bar.update()
        bar.set_postfix_str(OPTIMUM)
        optimum, ran, opt_notes = community_optimum(s, out / OPTIMUM_DIR)
        outcomes.append(optimum)
        notes += opt_notes
        made += [OPTIMUM] if ran else []
        say(f"{OPTIMUM}: {optimum.status}{'' if ran else ', kept (same settings)'}")
        bar.update()
    finally:
        bar.close()
    return write_lab(out, s.name, outcomes, notes), made
