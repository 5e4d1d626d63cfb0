"""The run's progress bar: one bar over the day's periods, its label naming the day, the
market round and the period. The distributed runtime learns the round by tailing the
coordinator's messages.jsonl (a file, so it works for a coordinator on another host
writing into the shared results folder) and the period from the collector's steps."""

from __future__ import annotations

import json
from pathlib import Path

from tqdm import tqdm

from lemgrid.scenarios.run.periodic import PeriodicThread

TAIL_S = 0.2  # seconds between looks at messages.jsonl


class DayProgress:
    """One bar over every period of the run; its label names the day and the round."""

    def __init__(self, name: str, periods: int, enabled: bool, days: int = 1):
        self.name, self.periods, self.days, self.day, self.round = name, periods, days, 0, 0
        self.bar = tqdm(total=periods * days, unit="period", disable=not enabled, leave=False,
                        desc=self._label())

    @property
    def shown(self) -> bool:
        return not self.bar.disable

    def _label(self) -> str:
        market = f"round {self.round}" if self.round else "market opening"
        return f"{self.name} day {self.day + 1}/{self.days} {market}"

    def on_day(self, day: int) -> None:
        if day != self.day:
            self.day, self.round = day, 0
            self.bar.set_description(self._label())

    def on_round(self, round_: int, error_kw: float | None = None) -> None:
        if round_ != self.round:
            self.round = round_
            self.bar.set_description(self._label())
        if error_kw is not None:
            self.bar.set_postfix(error_kw=f"{error_kw:.3f}")

    def on_period(self, period: int) -> None:
        """``period`` of the current day (or of the run, when it is beyond the day)."""
        done = period + 1 if period >= self.periods else self.day * self.periods + period + 1
        self.bar.update(max(done - self.bar.n, 0))

    def close(self) -> None:
        self.bar.close()


class RoundWatcher(PeriodicThread):
    """Tail ``messages.jsonl`` in a thread; report each new round a signal opens."""

    def __init__(self, path: Path, on_round, tail_s: float = TAIL_S):
        super().__init__(self._read, tail_s)
        self.path, self.on_round = path, on_round
        self._offset, self._round = 0, (0, 0)

    def _read(self) -> None:
        try:
            with self.path.open("rb") as f:
                f.seek(self._offset)
                chunk = f.read()
        except OSError:
            return
        end = chunk.rfind(b"\n") + 1  # complete lines only
        self._offset += end
        for line in chunk[:end].splitlines():
            if b"signal" not in line:  # most lines: not worth parsing
                continue
            try:
                msg = json.loads(line)["msg"]
            except (ValueError, KeyError, TypeError):
                continue
            if not (isinstance(msg, dict) and msg.get("type") == "signal"):
                continue
            key = (msg.get("day"), msg.get("round"))
            if all(isinstance(k, int) for k in key) and key > self._round:
                self._round = key
                self.on_round(key[1])
