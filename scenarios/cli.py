"""The ``lemgrid`` command line: run, validate, bench, lab.

A command imports what it needs when it runs: building the parser and ``--help`` load
nothing beyond the standard library and the coordinator's constants."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from lemgrid.coordinator.arguments import add_coordinator_arguments, add_key_arguments
from lemgrid.scenarios.run.errors import as_interrupt

EXIT_INVALID = 2
SERVE_AGENTS_PORT = 5600  # default first port of `lemgrid serve-agents`
SERVE_GRID_PORT = 5700  # default port of `lemgrid grid`
SERVE_ACCEPT_TIMEOUT_S = 600.0  # a served simulator waits this long for the runner


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lemgrid", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a scenario and write results")
    run.add_argument("scenario", nargs="?", default=None)
    run.add_argument("--out", default=None, help="results folder (default results/<name>)")
    run.add_argument("--resume", default=None, metavar="DIR",
                     help="continue the stopped run in DIR from its last finished day (its "
                     "config.yaml is the scenario; give no SCENARIO, --set, --mode, --runtime)")
    run.add_argument("--mode", choices=["decentralized", "centralized"], default=None)
    add_set_argument(run)
    run.add_argument("--quiet", action="store_true", help="no progress bar or table")
    run.add_argument("--runtime", choices=["distributed", "inprocess"], default=None,
                     help="agents as processes (default) or all in this process")
    coord = sub.add_parser("coordinator", help="serve the market coordinator (ZeroMQ)")
    add_coordinator_arguments(coord)
    coord.add_argument("--scenario", default=None, help="take the mechanism, its parameters "
                       "and the roster from this scenario (then --out sets where the log "
                       "and records go)")
    coord.add_argument("--out", default=None, help="with --scenario: the run's results folder")
    add_set_argument(coord)
    keys = sub.add_parser("keys", help="write CURVE key pairs for the coordinator and agents")
    add_key_arguments(keys)
    agents = sub.add_parser("serve-agents", help="serve one shard of a scenario's agent "
                            "simulators for a runner to connect to (runtime.agent_hosts)")
    agents.add_argument("--scenario", required=True)
    agents.add_argument("--shard", default="0/1", help="i/n: this host serves shard i of n; "
                        "NAME/n: one of n replicas behind the DNS name NAME, its shard the "
                        "position of its address among theirs")
    add_set_argument(agents)
    add_server_arguments(agents, SERVE_AGENTS_PORT)
    grid = sub.add_parser("grid", help="serve the grid simulator for a runner to connect to "
                          "(runtime.grid_host)")
    add_server_arguments(grid, SERVE_GRID_PORT)
    mech = sub.add_parser("mechanisms", help="list the registered market mechanisms, the "
                          "agent kinds they serve, their parameters and where they came from")
    mech.add_argument("name", nargs="?", default=None, help="one mechanism, in full")
    val = sub.add_parser("validate", help="check a scenario file")
    val.add_argument("scenario")
    add_set_argument(val)
    bench = sub.add_parser("bench", help="benchmark decentralized vs centralized")
    bench.add_argument("scenario", nargs="?", default=None)
    bench.add_argument("--runs", type=int, default=3)
    bench.add_argument("--out", default=None,
                       help="JSON file (default bench.json, with --scale bench_scaling.json)")
    bench.add_argument("--quick", action="store_true", help="tiny scenario, one run")
    bench.add_argument("--scale", type=int, nargs="+", default=None, metavar="AGENTS",
                       help="instead: one distributed day per community size")
    bench.add_argument("--scale-scenario", default="scale",
                       help="the scenario --scale sizes by its two template counts")
    bench.add_argument("--agents-per-process", type=int, default=None, metavar="N",
                       help="with --scale: N agents to a simulator process (default: the "
                       "scenario's)")
    bench.add_argument("--mechanism", action="append", default=None, metavar="NAME",
                       help="with --scale: the curve under this mechanism (repeat for "
                       "several; all: every one that serves the scale scenario's agents); "
                       "default: the scenario's own")
    bench.add_argument("--keep", default=None, metavar="DIR",
                       help="with --scale: keep each run's results in DIR/AGENTS/RUN")
    bench.add_argument("--load", type=int, default=None, metavar="AGENTS",
                       help="instead: the coordinator under AGENTS scripted agents "
                       "(1 %% of them late)")
    bench.add_argument("--load-days", type=int, default=1, metavar="DAYS")
    bench.add_argument("--load-hosts", type=int, default=None, metavar="HOSTS",
                       help="with --load: the agents share HOSTS connections, each message "
                       "in an envelope naming its agent (default: one connection each up "
                       "to 1000 agents, else hosts of 1000; 0: one each)")
    bench.add_argument("--load-deadline-s", type=float, default=None, metavar="S",
                       help="with --load: the round deadline, which drops the late agents "
                       "(default: 5 s, or 1 s for each 2000 agents)")
    bench.add_argument("--models", action="store_true",
                       help="instead: agents' models built from their structure's template "
                       "against directly in Pyomo (build per agent, the in-process day)")
    bench.add_argument("--qp", action="store_true",
                       help="instead: a consensus market's peer QPs solved by HiGHS from "
                       "scratch against OSQP kept between rounds (market.qp), the whole run "
                       "each way")
    bench.add_argument("--versus", action="append", default=[], metavar="KEY=VALUE",
                       help="instead: the scenario as it is against with these settings "
                       "(repeatable; e.g. an old path: solver.agent_models=pyomo "
                       "solver.lp_first=false grid.solver=pandapower), whole runs pair by "
                       "pair")
    bench.add_argument("--set", dest="overrides", action="append", default=[],
                       metavar="KEY=VALUE", help="with --scale, --models, --qp, --versus or a "
                       "scenario's own bench: override a scenario field, e.g. "
                       "market.mechanism=bilateral")
    bench.add_argument("--power-flow", metavar="NETWORK", default=None,
                       help="instead: a day's 96 power flows of NETWORK with pandapower's "
                       "levers (numba, lightsim2grid, recycle) and on lemgrid's arrays")
    report = sub.add_parser("report", help="write DIR/report.html and DIR/figures/ from a "
                            "results folder")
    report.add_argument("dir", type=Path)
    compare = sub.add_parser("compare", help="key figures of results folders side by side")
    compare.add_argument("dirs", type=Path, nargs="+", metavar="DIR")
    compare.add_argument("--csv", type=Path, default=Path("compare.csv"),
                         help="where to write the table (default compare.csv; the bills "
                         "and savings go beside it, compare_bills.csv)")
    compare.add_argument("--baseline", type=Path, default=None, metavar="DIR",
                         help="the run savings are measured against (default the first)")
    compare.add_argument("--against", metavar="FIELD", default=None,
                         help="a sweep: plot KPIs against this scenario field of each run "
                         "(e.g. market.loss_price), one figure per KPI beside the CSV")
    compare.add_argument("--plot", action="append", metavar="KPI", default=None,
                         help="with --against: a KPI to plot (repeatable; default "
                         "network_losses_kwh and total_cost_eur)")
    lab = sub.add_parser("lab", help="run a scenario under every mechanism that serves it, "
                         "beside the retail baseline and the community optimum; one report")
    lab.add_argument("scenario")
    lab.add_argument("--mechanisms", default="all", metavar="all|NAME,...",
                     help="the mechanisms to run (default all: every one serving the "
                     "scenario's agent kinds); the retail baseline always runs")
    lab.add_argument("--runtime", choices=["distributed", "inprocess"], default=None,
                     help="agents as processes (default) or all in this process")
    lab.add_argument("--out", default=None, help="lab folder (default results/<name>_lab)")
    lab.add_argument("--jobs", type=int, default=1, metavar="N",
                     help="N runs at a time, each in a process of its own (default 1; their "
                     "wall times then share the machine)")
    lab.add_argument("--sweep", default=None, metavar="FIELD=V1,V2,...",
                     help="the lab at each value of a scenario field (a market parameter: "
                     "the mechanisms that have it), DIR/FIELD=V each, and the KPIs against "
                     "the value in DIR/sweep.html")
    add_set_argument(lab)
    lab.add_argument("--quiet", action="store_true", help="no progress bar or lines")
    return p


def add_set_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a scenario field, e.g. market.p2v=false")


def add_server_arguments(p: argparse.ArgumentParser, port: int) -> None:
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default loopback; 0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=port, help="port (agent shards: the first "
                   "of consecutive ports, one per process group)")
    p.add_argument("--accept-timeout-s", type=float, default=SERVE_ACCEPT_TIMEOUT_S,
                   help="exit if no runner has connected within this")


def _load(args):
    from lemgrid.scenarios.schema import load_scenario, resolve_scenario

    overrides = list(args.overrides)
    if getattr(args, "mode", None):
        overrides.append(f"market.mode={args.mode}")
    if getattr(args, "runtime", None):
        overrides.append(f"runtime.kind={args.runtime}")
    return load_scenario(resolve_scenario(args.scenario), overrides)



def cmd_validate(args) -> int:
    from lemgrid.scenarios.community.builder import build_actuals, build_community
    from lemgrid.scenarios.schema import agent_count

    scenario = _load(args)
    build_actuals(scenario, build_community(scenario))  # data the file asks for can be made
    print(f"{args.scenario}: valid ({agent_count(scenario)}"
          f" agents, mechanism {scenario.market.mechanism})")
    return 0


def _resumed(args):
    """``run --resume DIR``: the scenario DIR was run with, and DIR as the results folder."""
    from lemgrid.scenarios.schema import ScenarioError, load_scenario

    given = [flag for flag, value in (("SCENARIO", args.scenario), ("--set", args.overrides),
                                      ("--mode", args.mode), ("--runtime", args.runtime),
                                      ("--out", args.out)) if value]
    if given:
        raise ScenarioError([(f"run --resume {args.resume}: the run continues as it was "
                             f"started; drop {', '.join(given)}")])
    config = Path(args.resume) / "config.yaml"
    if not config.is_file():
        raise ScenarioError([(f"{config}: no such file; allowed: --resume names the results "
                             "folder of a lemgrid run")])
    return load_scenario(config), Path(args.resume)


def cmd_run(args) -> int:
    from lemgrid.scenarios.schema import ScenarioError

    if args.resume is None and args.scenario is None:
        raise ScenarioError(["run: give a SCENARIO (a file or a shipped name) or --resume DIR"])
    if args.resume is not None:
        scenario, out = _resumed(args)
    else:
        scenario = _load(args)  # a bad scenario is refused before the run's heavy imports
        out = Path(args.out or Path("results") / scenario.name)
    rt, keys = scenario.runtime, scenario.runtime.curve_keys
    starts_coordinator = scenario.market.mode == "decentralized" and rt.kind == "distributed" \
        and rt.coordinator is None  # it reads the curve keys from this host
    if keys and starts_coordinator and not Path(keys).is_dir():
        raise ScenarioError([(f"{scenario.source}: runtime.curve_keys: no folder {keys}; "
                             f"allowed: a folder made by `lemgrid keys {keys}`")])
    from lemgrid.scenarios.results.checkpoint import CheckpointError
    from lemgrid.scenarios.results.report import print_summary
    from lemgrid.scenarios.run.errors import interrupts_raised
    from lemgrid.scenarios.run.world import run_scenario

    start = time.perf_counter()
    try:
        with interrupts_raised():
            summary = run_scenario(scenario, out, progress=not args.quiet, t0=start,
                                   resume=args.resume is not None)
    except CheckpointError as exc:
        raise ScenarioError([str(exc)]) from None
    for name, reason in summary["failed_agents"].items():
        print(f"warning: {reason} (agent {name} left the market)", file=sys.stderr)
    if not args.quiet:
        print_summary(summary, out)
    return 0


def cmd_mechanisms(args) -> int:
    from lemgrid.scenarios.mechanisms.listing import describe, overview

    try:
        print(overview() if args.name is None else describe(args.name))
    except KeyError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return EXIT_INVALID
    return 0


def cmd_coordinator(args) -> int:
    """``lemgrid coordinator``: a market from ``--params`` (written by a run), or from
    ``--scenario``."""
    from lemgrid.coordinator.service import serve as serve_coordinator
    from lemgrid.scenarios.schema import ScenarioError

    if args.scenario is None:
        if args.params is None:
            raise ScenarioError([("coordinator: give --scenario SCENARIO (the market, its "
                                 "parameters and roster) or --params FILE")])
        return serve_coordinator(args)
    from lemgrid.scenarios.community.builder import build_community
    from lemgrid.scenarios.run.distributed import coordinator_argv

    s = _load(args)
    community = build_community(s)  # a scenario error before anything is written
    out = Path(args.out or Path("results") / s.name)
    out.mkdir(parents=True, exist_ok=True)
    argv = coordinator_argv(s, community, out, args.endpoint)
    parsed = add_coordinator_arguments(argparse.ArgumentParser()).parse_args(argv)
    return serve_coordinator(parsed)


def cmd_serve_agents(args) -> int:
    """Serve this shard's process groups: replace this process by the agent launcher, so
    the simulators inherit only the agent stack."""
    from lemgrid.scenarios.run.topology import group_count, parse_shard, shard_groups

    s = _load(args)
    try:
        shard, shards = parse_shard(args.shard, s.runtime.connect_retries,
                                    s.runtime.connect_retry_s)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    count = len(shard_groups(s, group_count(s), shard, shards))
    print(f"{s.name} shard {shard}/{shards}: {count} agent simulator process(es) on "
          f"{args.host}:{args.port}..{args.port + max(count - 1, 0)}", flush=True)
    if count == 0:
        return 0
    argv = [sys.executable, "-m", "lemgrid.agents.launcher", str(count), args.host, "--port",
            str(args.port), "--accept-timeout-s", str(args.accept_timeout_s)]
    os.execv(sys.executable, argv)  # does not return


def cmd_grid(args) -> int:
    """Serve the grid simulator until a runner has connected and finished."""
    from lemgrid.agents.serve import listen_and_serve
    from lemgrid.grid.simulator import GridSimulator

    return listen_and_serve(GridSimulator(), args.host, args.port, args.accept_timeout_s,
                            "grid simulator")


def cmd_bench(args) -> int:
    """``lemgrid bench``; SIGINT and SIGTERM stop a run's helper processes with it."""
    from lemgrid.scenarios.run.errors import interrupts_raised

    with interrupts_raised():
        return _bench(args)


def _bench(args) -> int:
    if args.load is not None:
        import tempfile

        from lemgrid.scenarios.bench.load import hosts_for, print_load, run_load

        hosts = hosts_for(args.load) if args.load_hosts is None else args.load_hosts or None
        with tempfile.TemporaryDirectory() as tmp:
            result = run_load(args.load, args.load_days, max(args.load // 100, 1), Path(tmp),
                              round_deadline_s=args.load_deadline_s, hosts=hosts)
        print_load(result)
        return 0 if set(result.late) <= set(result.dropped) else 1
    from lemgrid.scenarios.bench.market import run_bench

    return run_bench(args)


def _from_results(action) -> int:
    """Run ``action`` on results folders; a missing folder or file is one line, exit 2."""
    from lemgrid.scenarios.results.report import ResultsMissing

    try:
        action()
    except ResultsMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    return 0


def cmd_report(args) -> int:
    from lemgrid.scenarios.results.report import write_report

    return _from_results(lambda: print(f"report: {write_report(args.dir)}"))


def cmd_compare(args) -> int:
    from lemgrid.scenarios.results.compare import run_compare

    if not args.csv.parent.is_dir():
        print(f"error: {args.csv.parent}: no such folder for --csv", file=sys.stderr)
        return EXIT_INVALID
    return _from_results(lambda: run_compare(args.dirs, args.csv, args.baseline, args.against,
                                             args.plot))


def cmd_lab(args) -> int:
    """``lemgrid lab``: every serving mechanism's run, the yardsticks and lab.html."""
    from lemgrid.scenarios.run.errors import interrupts_raised
    from lemgrid.scenarios.run.lab import run_lab, run_sweep
    from lemgrid.scenarios.schema import load_scenario, resolve_scenario

    path = resolve_scenario(args.scenario)
    overrides = [*args.overrides, *([f"runtime.kind={args.runtime}"] if args.runtime else [])]
    scenario = load_scenario(path, overrides)  # a bad scenario is one line, nothing run
    out = Path(args.out or Path("results") / f"{scenario.name}_lab")
    if args.jobs < 1:
        print(f"error: --jobs {args.jobs}: allowed: 1 or more", file=sys.stderr)
        return EXIT_INVALID
    with interrupts_raised():
        if args.sweep:
            run_sweep(path, overrides, out, args.sweep, args.mechanisms,
                      progress=not args.quiet, jobs=args.jobs)
        else:
            run_lab(path, overrides, out, args.mechanisms, progress=not args.quiet,
                    jobs=args.jobs)
    if not args.quiet:
        print(f"lab: {out / ('sweep.html' if args.sweep else 'lab.html')}")
    return 0


def cmd_keys(args) -> int:
    from lemgrid.coordinator.auth import write_keys

    return write_keys(args)


def _raised(exc: BaseException, module: str, name: str) -> bool:
    """``exc`` is ``module.name``'s (a module never imported raised nothing)."""
    loaded = sys.modules.get(module)
    return loaded is not None and isinstance(exc, getattr(loaded, name))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    commands = {"run": cmd_run, "validate": cmd_validate, "bench": cmd_bench,
                "coordinator": cmd_coordinator, "serve-agents": cmd_serve_agents,
                "mechanisms": cmd_mechanisms,
                "grid": cmd_grid, "keys": cmd_keys,
                "report": cmd_report, "compare": cmd_compare, "lab": cmd_lab}
    try:
        return commands[args.command](args)
    except KeyboardInterrupt as exc:
        print(f"error: {as_interrupt(exc)}", file=sys.stderr)
        return 128 + as_interrupt(exc).signum
    except Exception as exc:  # noqa: BLE001 (_failed raises again what it does not know)
        return _failed(exc)


def _failed(exc: Exception) -> int:
    """A command's failure as one line and its exit code (anything else goes up)."""
    if _raised(exc, "lemgrid.scenarios.schema.scenario_error", "ScenarioError"):
        print("\n".join(exc.lines), file=sys.stderr)
        return EXIT_INVALID
    if isinstance(exc, RuntimeError):  # one line per problem, each marked
        print("\n".join(f"error: {line}" for line in str(exc).splitlines() or [""]),
              file=sys.stderr)
        return getattr(exc, "exit_code", 1)
    if _raised(exc, "zmq", "ZMQError"):  # e.g. the coordinator's endpoint in use
        print(f"error: coordinator: {exc}", file=sys.stderr)
        return 1
    if isinstance(exc, OSError):  # e.g. a port in use
        print(f"error: {exc.strerror or exc}"
              f"{f' ({exc.filename})' if exc.filename else ''}", file=sys.stderr)
        return 1
    raise exc


if __name__ == "__main__":
    sys.exit(main())
