"""The matrix: every shipped scenario (``scenarios/*.yaml``) × every registered mechanism,
each combination its own test id (``scenario-mechanism``), run as a user runs it: ``lemgrid
run`` in-process on a small slice of the scenario, then ``lemgrid report`` on its results
folder, and ``lemgrid compare`` on each scenario's runs side by side.

A mechanism that does not serve the scenario's agent kinds, and a combination invalid by
design (``REFUSED``), must be refused by validation: one line, exit 2,
nothing run. The scenarios with mosaik co-simulators need the distributed runtime, so
their in-process combinations are refused too; they (with their own mechanism) and the
cheapest other combination run distributed (``DISTRIBUTED``). A combination that fails
today is marked ``xfail(strict=True)`` naming its defect (``DEFECTS``): once fixed, it
fails until the mark is removed.

The slice (``slice_overrides``): one day; a template of more than ``SMALL`` agents cut to
``SMALL`` (count distributions become weights, totals scale down; a template whose agents
the scenario places on named buses stays whole); a quarter-hourly day coarsened to hours
(the time-of-use peak and the EVs' trips to the hour); at most ``ROUNDS`` market rounds.
One number is asserted beyond the structure of the results: the shipped faia2021 day,
whole, costs 167.0396 € in 5 rounds (docs/getting-started.md#worked-example), which no
other test asserts. The runs are shared out to ``WORKERS`` processes (the budget: the module in
under 4 minutes on 2 cores); each test waits for its own."""

from __future__ import annotations

import contextlib
import io
import json
import multiprocessing
import os
import traceback
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pandas as pd
import pytest

from lemgrid.scenarios.cli import main
from lemgrid.scenarios.run.topology import group_count
from lemgrid.scenarios.schema import Counts, Scenario, agent_kinds, load_scenario

from .conftest import SCENARIOS

SMALL = 2  # agents per template in a slice
ROUNDS = 3  # market rounds at most in a slice
INPROCESS, DISTRIBUTED_KIND = "inprocess", "distributed"


def mechanisms() -> list[tuple[str, frozenset[str]]]:
    """Every registered mechanism's name and the agent kinds it serves: the test's one tie
    to the mechanism registry."""
    from lemgrid.scenarios.mechanisms import registry

    return [(name, frozenset(m.kinds)) for name, m in registry().items()]


def market_overrides(mechanism: str) -> list[str]:
    """The settings that make a scenario run ``mechanism`` for at most ROUNDS rounds: the
    test's one tie to the shape of the scenario's ``market`` section."""
    return [f"market.mechanism={mechanism}", f"market.max_rounds={ROUNDS}"]


def scenario_kinds(s: Scenario) -> frozenset[str]:
    """The agent kinds of a scenario's templates and agents, as the schema's mechanism
    check takes them."""
    return frozenset(agent_kinds(s))


# ---- the slice ---------------------------------------------------------------------------

def _hour(clock: str) -> str:
    return f"{clock[:2]}:00"


def _flow(value) -> str:
    """A --set value in YAML flow style (JSON is YAML; a clock time stays a string)."""
    return json.dumps(value)


def hourly(s: Scenario) -> list[str]:
    """A quarter-hourly day as 24 hours: the time-of-use peak and the EVs' trip times to
    the hour, the EVs' away periods a quarter as many (none for a scenario with mosaik
    co-simulators, which step by its periods, or with explicit per-period agents)."""
    if s.horizon.periods != 96 or s.cosimulators or s.agents:
        return []
    out = ["horizon.periods=24", "horizon.period_minutes=60"]
    if s.tariffs.dynamic is None and s.tariffs.day_ahead is None:
        tou = s.tariffs.time_of_use
        out += [f"tariffs.time_of_use.peak_start={_flow(_hour(tou.peak_start))}",
                f"tariffs.time_of_use.peak_end={_flow(_hour(tou.peak_end))}"]
    for i, t in enumerate(s.templates):
        if t.kind != "ev":
            continue
        tr, where = t.trips, f"templates.{i}.trips"
        peaks = list(dict.fromkeys(_hour(p) for p in tr.peak_times))
        out += [f"{where}.first_away={_flow(_hour(tr.first_away))}",
                f"{where}.last_away={_flow(_hour(tr.last_away))}",
                f"{where}.peak_times={_flow(peaks)}",
                f"{where}.mean_away_periods={tr.mean_away_periods / 4}",
                f"{where}.away_periods_total="
                + ("null" if tr.away_periods_total is None else str(tr.away_periods_total // 4))]
    return out


def _names(prefix: str, count: int) -> list[str]:
    """A template's agent names (as ``schema.agent_names``)."""
    return [f"{prefix}{k + 1:0{len(str(count))}d}" for k in range(count)]


def smaller(s: Scenario) -> list[str]:
    """Templates of more than SMALL agents cut to SMALL: count distributions as weights,
    totals scaled down, EV trips from their means. A template whose agents grid.buses
    places is kept whole (antunes2024's EVs carry its feeder's evening peak: two of them
    leave no dispatch within the voltage limits)."""
    out = []
    for i, t in enumerate(s.templates):
        count = getattr(t, "count", 0)
        if count <= SMALL or set(_names(t.name_prefix, count)) & set(s.grid.buses):
            continue
        where = f"templates.{i}"
        out.append(f"{where}.count={SMALL}")
        for field in ("battery", "model", "contracted_kva"):
            if isinstance(getattr(t, field, None), Counts):
                out.append(f"{where}.{field}={_flow({'choice': getattr(t, field).counts})}")
        for field, keys in (("load", ("total_kwh",)), ("pv", ("total_kwh", "total_installed_kw"))):
            for key in keys:
                value = getattr(getattr(t, field, None), key, None)
                if value is not None:
                    out.append(f"{where}.{field}.{key}={value * SMALL / count}")
        if t.kind == "ev":
            out += [f"{where}.trips.away_periods_total=null", f"{where}.trips.peak_count=null"]
    return out


@cache
def shipped(name: str) -> Scenario:
    return load_scenario(SCENARIOS / f"{name}.yaml")


@cache
def slice_overrides(name: str) -> tuple[str, ...]:
    """The overrides that cut scenario ``name`` to a small slice (module docstring)."""
    s = shipped(name)
    return ("horizon.days=1", *hourly(s), *smaller(s))


# ---- the combinations --------------------------------------------------------------------

SHIPPED = sorted(p.stem for p in SCENARIOS.glob("*.yaml"))

REFUSED = {  # invalid by design: what validation says
    ("faia2021_cigre", "admm"): "market.network_check: in this admm market the network "
                                "operator already takes part",
    ("faia2021_cigre", "clearance"): "market.network_check: in this clearance market the "
                                     "network operator already takes part",
    # the network operator's branch-flow model holds single-voltage radial feeders only
    ("fernandes2024_cigre", "admm"): "market.network: the network operator's model needs a "
                                     "radial feeder; network cigre_lv has transformers",
    ("fernandes2024_village", "admm"): "market.network: the network operator's model needs a "
                                       "radial feeder; network village_1 has transformers",
    # buildings with heat demand and no CHP unit need a heat market (bilateral's)
    **{("vahidinasab_heat", m): (f"agents.0.heat_demand_kw: building C1 needs up to 210 "
                                 f"kW_th, it has no CHP unit, and {m} trades no heat")
       for m in ("amc", "gdrmc", "p2g", "admm", "clearance")},
}
DEFECTS: dict = {}  # (scenario, mechanism) -> the defect that makes it fail today: none
COSIM_REFUSAL = "cosimulators: need runtime.kind distributed"
DISTRIBUTED = [("csv_profiles", "p2v_rules"), ("mosaik_ecosystem", "p2v_rules"),
               ("tiny_locality", "gdrmc")]  # the cheapest; the first two only run so
SUMMARY_KEYS = {  # docs/reference/results.md, summary.json: section -> its documented keys
    None: {"scenario", "mechanism", "mode", "agents", "days", "periods", "costs_eur",
           "market", "grid", "timing_s", "processes", "failed_agents", "notes"},
    "costs_eur": {"total", "prosumer_mean", "ev_mean", "building_mean"},
    "market": {"traded_kwh", "rounds", "converged", "max_imbalance_kw"},
    "grid": {"network", "v_min_pu", "v_max_pu", "max_loading_pct", "max_trafo_loading_pct",
             "max_reverse_flow_kw", "voltage_violations", "line_violations",
             "trafo_violations", "pf_failures", "losses_kwh"},
    "timing_s": {"wall", "startup", "market", "grid", "critical_path"},
    "processes": {"agents", "agent_peak_rss_mb"},
}


def expected_refusal(scenario: str, mechanism: str, kinds: frozenset[str]) -> str | None:
    """What validation says of the in-process combination, or None where it runs."""
    s = shipped(scenario)
    wrong = sorted(scenario_kinds(s) - kinds)
    if wrong:
        return f"market.mechanism: {mechanism} does not serve {', '.join(wrong)} agents"
    if (scenario, mechanism) in REFUSED:
        return REFUSED[scenario, mechanism]
    if s.cosimulators:
        return COSIM_REFUSAL
    return None


def combinations() -> list:
    params = []
    for scenario in SHIPPED:
        for mechanism, kinds in mechanisms():
            defect = DEFECTS.get((scenario, mechanism))
            marks = [pytest.mark.xfail(strict=True, reason=defect)] if defect else []
            params.append(pytest.param(scenario, mechanism,
                                       expected_refusal(scenario, mechanism, kinds),
                                       id=f"{scenario}-{mechanism}", marks=marks))
    return params


# ---- running ----------------------------------------------------------------------------
# The runs are jobs for WORKERS processes, started as the module's first test asks for
# them; each test waits for its own job and checks its results folder.

WORKERS = 2  # the machine's cores


@dataclass(frozen=True)
class Step:
    """``lemgrid run ARGV``, then (``report``) ``lemgrid report OUT``; the run's own call
    of the report left out then: ``lemgrid report`` writes the same one from the results
    folder, so each report is written once (the run's call is tested by the distributed
    combinations, the faia2021 day and test_report.py)."""

    argv: tuple[str, ...]
    out: Path
    report: bool = True


@dataclass(frozen=True)
class Done:
    """A command's exit code (None: it raised) and its stderr (or the traceback)."""

    command: str
    code: int | None
    err: str


def in_worker() -> None:
    """A worker's output goes nowhere (a step keeps what ``lemgrid`` says to stderr)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)


def lemgrid_here(argv: list[str]) -> Done:
    """``lemgrid ARGV`` in this process."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(argv)
    except BaseException:  # noqa: BLE001 - the test names what the command raised
        return Done(f"lemgrid {argv[0]}", None, traceback.format_exc())
    return Done(f"lemgrid {argv[0]}", code, err.getvalue())


def run_steps(steps: tuple[Step, ...]) -> dict[Path, list[Done]]:
    """A job, in a worker: its steps one after the other, each command until one fails."""
    from lemgrid.scenarios.results import report
    from lemgrid.scenarios.run import world

    done = {}
    for step in steps:
        world.write_report = ((lambda out, slowest=None: None) if step.report
                              else report.write_report)
        done[step.out] = [lemgrid_here(list(step.argv))]
        if step.report and done[step.out][0].code == 0:
            done[step.out].append(lemgrid_here(["report", str(step.out)]))
    return done


class Matrix:
    """The jobs of the collected tests, run by WORKERS processes."""

    def __init__(self, jobs: list[tuple[Step, ...]]):
        self.pool = None
        self.futures = {}
        if jobs:
            self.pool = ProcessPoolExecutor(WORKERS, multiprocessing.get_context("spawn"),
                                            initializer=in_worker)
            for job in jobs:
                future = self.pool.submit(run_steps, job)
                self.futures |= {step.out: future for step in job}

    def results(self, out: Path) -> Path:
        """Wait for the step writing ``out``; each of its commands exited 0."""
        for done in self.futures[out].result()[out]:
            assert done.code == 0, (f"{done.command} "
                                    f"{'raised' if done.code is None else f'exit {done.code}'}"
                                    f": {done.err.strip()}")
        return out

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


def folder(root: Path, scenario: str, mechanism: str, runtime: str = INPROCESS) -> Path:
    return root / runtime / scenario / mechanism


def run_argv(scenario: str, mechanism: str, out: Path, runtime: str = INPROCESS) -> list[str]:
    """``lemgrid run`` of the combination's slice (its reproduction command)."""
    sets = [*slice_overrides(scenario), *market_overrides(mechanism),
            f"runtime.kind={runtime}"]
    return ["run", scenario, "--quiet", "--out", str(out),
            *(arg for item in sets for arg in ("--set", item))]


def combination(root: Path, scenario: str, mechanism: str, runtime: str = INPROCESS) -> Step:
    out = folder(root, scenario, mechanism, runtime)
    return Step(tuple(run_argv(scenario, mechanism, out, runtime)), out, runtime == INPROCESS)


FAIA_DAY = ("run", "faia2021", "--quiet", "--set", "runtime.kind=inprocess")


def jobs_of(items, root: Path) -> list[tuple[Step, ...]]:
    """The runs the collected tests of this module check, as jobs: the distributed runs
    one after the other in one job (each starts processes of its own: the coordinator, the
    grid, the agents), first with the faia2021 day (the longest), then each in-process
    run."""
    distributed, day, inprocess = [], [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        name = getattr(item, "originalname", "")
        if getattr(item.module, "__name__", None) != __name__:
            continue
        if name == "test_faia2021_day_costs_what_the_docs_say":
            day.append(Step((*FAIA_DAY, "--out", str(root / "faia2021_day")),
                            root / "faia2021_day", report=False))
        elif name == "test_distributed":
            distributed.append(combination(root, params["scenario"], params["mechanism"],
                                           DISTRIBUTED_KIND))
        elif name == "test_combination" and params["refusal"] is None:
            inprocess.append(combination(root, params["scenario"], params["mechanism"]))
        elif name == "test_compare":
            inprocess += [combination(root, params["scenario"], m) for m in params["runs"]]
    inprocess = list({step.out: step for step in inprocess}.values())
    return [job for job in (tuple(distributed), tuple(day)) if job] + [(s,) for s in inprocess]


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("matrix")


@pytest.fixture(scope="module")
def matrix(request, root):
    runs = Matrix(jobs_of(request.session.items, root))
    yield runs
    runs.close()


def lemgrid(argv: list[str], capsys) -> tuple[int, str]:
    """``lemgrid ARGV`` in this process: its exit code and what it wrote to stderr."""
    capsys.readouterr()
    code = main(argv)
    return code, capsys.readouterr().err


def check_results(out: Path) -> dict:
    """Every documented summary key, no failed agent, a non-empty report.html; the
    summary."""
    summary = json.loads((out / "summary.json").read_text())
    for section, keys in SUMMARY_KEYS.items():
        found = summary if section is None else summary[section]
        assert keys <= set(found), f"summary.json {section or ''}: missing {keys - set(found)}"
    assert summary["failed_agents"] == {}
    page = (out / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<h2>Figures</h2>" in page
    return summary


@pytest.mark.parametrize(("scenario", "mechanism", "refusal"), combinations())
def test_combination(matrix, root, scenario, mechanism, refusal, capsys):
    """The slice runs in-process and reports, or validation refuses it in one line."""
    out = folder(root, scenario, mechanism)
    if refusal is not None:
        code, err = lemgrid(run_argv(scenario, mechanism, out), capsys)
        assert code == 2, f"exit {code}, expected a refusal naming {refusal!r}: {err}"
        assert refusal in err and "Traceback" not in err, err
        assert not out.exists()
        return
    summary = check_results(matrix.results(out))
    assert (summary["scenario"], summary["mechanism"]) == (scenario, mechanism)
    assert summary["days"] == 1 and summary["processes"]["agents"] == 1  # one process


def compared() -> dict[str, list[str]]:
    """Scenario -> the mechanisms of its in-process runs that work today."""
    runs = {}
    for scenario in SHIPPED:
        for mechanism, kinds in mechanisms():
            if (expected_refusal(scenario, mechanism, kinds) is None
                    and (scenario, mechanism) not in DEFECTS):
                runs.setdefault(scenario, []).append(mechanism)
    return runs


@pytest.mark.parametrize(("scenario", "runs"), list(compared().items()),
                         ids=list(compared()))
def test_compare(matrix, root, scenario, runs, tmp_path, capsys):
    """``lemgrid compare`` of the scenario's runs side by side: one column per run, named
    by its folder, with its summary's total cost; the bills likewise."""
    folders = [matrix.results(folder(root, scenario, m)) for m in runs]
    csv = tmp_path / "compare.csv"
    code, err = lemgrid(["compare", *map(str, folders), "--csv", str(csv)], capsys)
    assert code == 0, err
    table = pd.read_csv(csv, index_col="kpi")
    assert list(table.columns) == runs
    for p in folders:
        total = json.loads((p / "summary.json").read_text())["costs_eur"]["total"]
        assert float(table.loc["total_cost_eur", p.name]) == pytest.approx(total, rel=1e-12)
    bills = pd.read_csv(csv.with_name("compare_bills.csv"), index_col="agent")
    assert [c for c in bills.columns if "_saving_" not in c] == runs


@pytest.mark.parametrize(("scenario", "mechanism"), DISTRIBUTED,
                         ids=[f"{s}-{m}" for s, m in DISTRIBUTED])
def test_distributed(matrix, root, scenario, mechanism):
    """The cheapest combinations in the distributed runtime (the co-simulation scenarios'
    only runtime), the run writing its own report: its agents in their process groups."""
    summary = check_results(matrix.results(folder(root, scenario, mechanism,
                                                  DISTRIBUTED_KIND)))
    sliced = load_scenario(SCENARIOS / f"{scenario}.yaml", list(slice_overrides(scenario)))
    assert summary["processes"]["agents"] == group_count(sliced)  # no operator in these


def test_faia2021_day_costs_what_the_docs_say(matrix, root):
    """The shipped faia2021 day, whole and in-process, the run writing its own report:
    167.0396 € in 5 rounds (docs/getting-started.md#worked-example: the distributed run
    prints 167.04 €, its bench 167.0396 € in both runtimes)."""
    summary = check_results(matrix.results(root / "faia2021_day"))
    assert summary["costs_eur"]["total"] == pytest.approx(167.0396, abs=5e-5)
    assert summary["market"]["rounds"] == 5
