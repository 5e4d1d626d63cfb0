"""A run's finished days, kept in its results folder so that a run stopped after day k
(interrupted, or a process killed) resumes from day k + 1 (``lemgrid run --resume DIR``)
with the results an uninterrupted run gives.

``checkpoint.pkl`` holds the scenario as run and every finished day (the market's and
the agents' records: DayResult); it is rewritten whole (atomically) after every day.
What the next day needs follows from it: each battery's energy at the end of the last
day, and the agents that have left the run. It is a Python pickle: resume only results
folders you trust.
"""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

from lemgrid.scenarios.results import atomic
from lemgrid.scenarios.results.outcome import DayResult

CHECKPOINT = "checkpoint.pkl"
FORMAT = 1


class CheckpointError(ValueError):
    """A results folder that cannot be resumed (one line naming the file and why)."""


def save(out: Path, scenario: dict, days: list[DayResult]) -> None:
    """Keep ``days`` (all finished days from the first) with the scenario as run."""
    atomic.write_bytes(Path(out) / CHECKPOINT, pickle.dumps(
        {"format": FORMAT, "scenario": scenario, "days": days}))


def load(out: Path, scenario: dict) -> list[DayResult]:
    """The finished days kept in ``out``; the scenario must be the one they were run
    with."""
    path = Path(out) / CHECKPOINT
    try:
        kept = pickle.loads(path.read_bytes())
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no finished day kept (the run stopped before its "
                              "first day ended, or this is not a lemgrid results folder)") \
            from None
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file
        raise CheckpointError(f"{path}: unreadable ({type(exc).__name__})") from None
    if not isinstance(kept, dict) or kept.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a checkpoint of this lemgrid version")
    if kept["scenario"] != scenario:
        raise CheckpointError(f"{path}: kept for another scenario than {path.parent}/"
                              "config.yaml")
    days = kept["days"]
    if [d.day for d in days] != list(range(len(days))):
        raise CheckpointError(f"{path}: its days are not consecutive from day 1")
    return days


def carried_over(community, days: list[DayResult]):
    """The community as it starts the day after ``days``: every battery holding the energy
    the last day left it. Agents without a settled last day keep their own."""
    if not days:
        return list(community)
    last = days[-1].schedules
    out = []
    for d in community:
        sched = last.get(d.name)
        if d.battery is not None and sched is not None and sched.soc_kwh is not None:
            d = dataclasses.replace(d, battery=dataclasses.replace(
                d.battery, e0_kwh=float(sched.soc_kwh[-1])))
        out.append(d)
    return out
