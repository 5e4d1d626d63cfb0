"""A run's finished days, kept in its results folder so that a run stopped after day k
(interrupted, or a process killed) resumes from day k + 1 (``lemgrid run --resume DIR``)
with the results an uninterrupted run gives.

``checkpoint.pkl`` is a stream of pickles: a header (the format and the scenario as run),
then one record per finished day (the market's and the agents' records: DayResult),
appended as each day ends, so a year costs one day's writing a day, not the whole run's
again. A day is appended whole and flushed to disk before the next starts; a record cut
short by a crash is not a finished day and is dropped when the file is read. What the
next day needs follows from it: each battery's energy at the end of the last day, and the
agents that have left the run. It is a Python pickle: resume only results folders you
trust.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
from pathlib import Path

from lemgrid.scenarios.results import atomic
from lemgrid.scenarios.results.outcome import DayResult

CHECKPOINT = "checkpoint.pkl"
FORMAT = 2
_stored: dict[Path, tuple[dict, int]] = {}  # a file this process wrote: (scenario, days)


class CheckpointError(ValueError):
    """A results folder that cannot be resumed (one line naming the file and why)."""


def save(out: Path, scenario: dict, days: list[DayResult], whole: bool = False) -> None:
    """Keep ``days`` (all finished days from the first) with the scenario as run: the
    days not yet on file are appended; ``whole``, a file this process did not write, or
    one of another scenario is written anew (atomically) with all of them (at the end of
    a run, so that what was added to a kept day since, a note, is kept too)."""
    path = (Path(out) / CHECKPOINT).resolve()
    known = _stored.get(path)
    if (whole or known is None or known[0] != scenario or known[1] > len(days)
            or not path.exists()):
        atomic.write_bytes(path, pickle.dumps({"format": FORMAT, "scenario": scenario})
                           + b"".join(pickle.dumps(d) for d in days))
    elif known[1] < len(days):
        with path.open("ab") as f:
            f.write(b"".join(pickle.dumps(d) for d in days[known[1]:]))
            f.flush()
            os.fsync(f.fileno())
    _stored[path] = (scenario, len(days))


def load(out: Path, scenario: dict) -> list[DayResult]:
    """The finished days kept in ``out``; the scenario must be the one they were run
    with."""
    path = Path(out) / CHECKPOINT
    try:
        with path.open("rb") as f:
            header, days = pickle.load(f), _records(f)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no finished day kept (the run stopped before its "
                              "first day ended, or this is not a lemgrid results folder)") \
            from None
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file
        raise CheckpointError(f"{path}: unreadable ({type(exc).__name__})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a checkpoint of this lemgrid version")
    if header["scenario"] != scenario:
        raise CheckpointError(f"{path}: kept for another scenario than {path.parent}/"
                              "config.yaml")
    if [d.day for d in days] != list(range(len(days))):
        raise CheckpointError(f"{path}: its days are not consecutive from day 1")
    return days


def _records(f) -> list[DayResult]:
    """The day records after the header; a last one cut short (a crash while it was
    appended) is not a finished day."""
    days = []
    while True:
        try:
            day = pickle.load(f)
        except EOFError:
            return days
        except (pickle.UnpicklingError, ValueError, AttributeError, IndexError):
            return days  # the tail a crash cut short
        if not isinstance(day, DayResult):
            raise TypeError("a record that is no day")
        days.append(day)


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
