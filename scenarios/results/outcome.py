"""What a market day produced, whatever the mode and runtime: the results tables are
written from a run's list of days."""

from __future__ import annotations

from dataclasses import dataclass, field

from lemgrid.agents.data import Schedule
from lemgrid.coordinator.mechanisms.base import RoundRecord


@dataclass
class RoundStats:
    record: RoundRecord
    solve_s: dict[str, float]
    cost_eur: dict[str, float]  # each agent's planned cost of the day in this round


@dataclass
class DayResult:
    """What one market day produced, whatever the mode: the settled schedules (realised
    flows and bills), the rounds, who failed, the protocol messages and timings."""

    mode: str
    schedules: dict[str, Schedule]
    rounds: list[RoundStats] = field(default_factory=list)
    converged: bool = True
    failed: dict[str, str] = field(default_factory=dict)
    messages: list = field(default_factory=list)
    market_s: float = 0.0
    build_s: float = 0.0
    objective_eur: float | None = None
    notes: list[str] = field(default_factory=list)  # what went wrong but did not stop the run
    day: int = 0
    clearings: dict = field(default_factory=dict)  # agent -> its ClearingBody

    @property
    def critical_path_s(self) -> float:
        return float(sum(max(r.solve_s.values(), default=0.0) for r in self.rounds))

    @property
    def solve_times_s(self) -> list[float]:
        return [s for r in self.rounds for s in r.solve_s.values() if s > 0]


def failed_in(days: list[DayResult]) -> dict[str, str]:
    """Agents that left the run, each with the first day's reason."""
    out: dict[str, str] = {}
    for d in days:
        for name, reason in d.failed.items():
            out.setdefault(name, reason)
    return out
