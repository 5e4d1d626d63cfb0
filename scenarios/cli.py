"""The ``lemgrid`` command line: run, validate, bench."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from coordinator.service import add_arguments as add_coordinator_arguments
from coordinator.service import serve as serve_coordinator
from scenarios.schema import ScenarioError, load_scenario

EXIT_INVALID = 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lemgrid", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a scenario and write results")
    run.add_argument("scenario")
    run.add_argument("--out", default=None, help="results folder (default results/<name>)")
    run.add_argument("--mode", choices=["decentralized", "centralized"], default=None)
    run.add_argument("--set", dest="overrides", action="append", default=[],
                     metavar="KEY=VALUE", help="override a scenario field, e.g. market.p2v=false")
    run.add_argument("--quiet", action="store_true", help="no progress bar or table")
    run.add_argument("--runtime", choices=["distributed", "inprocess"], default=None,
                     help="agents as processes (default) or all in this process")
    coord = sub.add_parser("coordinator", help="serve the market coordinator (ZeroMQ)")
    add_coordinator_arguments(coord)
    val = sub.add_parser("validate", help="check a scenario file")
    val.add_argument("scenario")
    val.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    bench = sub.add_parser("bench", help="benchmark decentralized vs centralized")
    bench.add_argument("scenario", nargs="?", default=None)
    bench.add_argument("--runs", type=int, default=3)
    bench.add_argument("--out", default="bench.json")
    bench.add_argument("--quick", action="store_true", help="tiny scenario, one run")
    return p


def _load(args):
    overrides = list(args.overrides)
    if getattr(args, "mode", None):
        overrides.append(f"market.mode={args.mode}")
    if getattr(args, "runtime", None):
        overrides.append(f"runtime.kind={args.runtime}")
    return load_scenario(resolve_scenario(args.scenario), overrides)


def resolve_scenario(name: str) -> Path:
    """A path, or the name of a scenario shipped in ``scenarios/`` (e.g. ``faia2021``)."""
    path = Path(name)
    if path.exists() or path.suffix:
        return path
    return Path(__file__).with_name(f"{name}.yaml")


def cmd_validate(args) -> int:
    scenario = _load(args)
    print(f"{args.scenario}: valid ({sum(t.count for t in scenario.templates) + len(scenario.agents)}"
          f" agents, mechanism {scenario.market.mechanism})")
    return 0


def cmd_run(args) -> int:
    from scenarios.report import print_summary
    from scenarios.world import run_scenario

    scenario = _load(args)
    out = Path(args.out or Path("results") / scenario.name)
    start = time.perf_counter()
    summary = run_scenario(scenario, out, progress=not args.quiet, t0=start)
    for name, reason in summary["failed_agents"].items():
        print(f"warning: {reason} (agent {name} left the market)", file=sys.stderr)
    if not args.quiet:
        print_summary(summary, out)
    return 0


def cmd_bench(args) -> int:
    from scenarios.bench import run_bench

    return run_bench(args)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    commands = {"run": cmd_run, "validate": cmd_validate, "bench": cmd_bench,
                "coordinator": serve_coordinator}
    try:
        return commands[args.command](args)
    except ScenarioError as exc:
        print("\n".join(exc.lines), file=sys.stderr)
        return EXIT_INVALID
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
