"""The run's progress bar: one bar over the day's periods, its label naming the day, the
market round and the period. The distributed runtime learns the round by tailing the
coordinator's messages.jsonl (a file, so it works for a coordinator on another host
writing into the shared results folder) and the period from the collector's steps."""

from __future__ import annotations

import json
from pathlib import Path

from tqdm import tqdm

from scenarios.run.periodic import PeriodicThread

TAIL_S = 0.2  # seconds between looks at messages.jsonl


class DayProgress:
    def __init__(self, name: str, periods: int, enabled: bool, day: int = 0):
        self.name, self.day, self.round = name, day, 0
        self.bar = tqdm(total=periods, unit="period", disable=not enabled, leave=False,
                        desc=self._label())

    def _label(self) -> str:
        market = f"round {self.round}" if self.round else "market opening"
        return f"{self.name} day {self.day + 1} {market}"

    def on_round(self, round_: int, error_kw: float | None = None) -> None:
        if round_ != self.round:
            self.round = round_
            self.bar.set_description(self._label())
        if error_kw is not None:
            self.bar.set_postfix(error_kw=f"{error_kw:.3f}")

    def on_period(self, period: int) -> None:
        self.bar.update(max(period + 1 - self.bar.n, 0))

    def close(self) -> None:
        self.bar.close()


class RoundWatcher(PeriodicThread):
    """Tail ``messages.jsonl`` in a thread; report each new round a signal opens."""

    def __init__(self, path: Path, on_round, tail_s: float = TAIL_S):
        super().__init__(self._read, tail_s)
        self.path, self.on_round = path, on_round
        self._offset, self._round = 0, 0

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
            try:
                msg = json.loads(line)["msg"]
            except (ValueError, KeyError, TypeError):
                continue
            if isinstance(msg, dict) and msg.get("type") == "signal" and \
                    isinstance(msg.get("round"), int) and msg["round"] > self._round:
                self._round = msg["round"]
                self.on_round(self._round)
