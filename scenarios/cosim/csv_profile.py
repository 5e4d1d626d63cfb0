"""A mosaik simulator that plays day profiles from a CSV file.

Each ``Profile`` entity reads one column of a CSV file whose first column is the time of
day (e.g. the hour) and whose rows cover one day at any resolution that divides the
scenario's periods (24 hourly rows → each held for 4 quarter-hours). Every step it
outputs ``p_kw`` (this period's value) and ``profile_kw`` (the whole day, one value per
period: what an agent plans the day with).

Start it as mosaik ``cmd``: ``%(python)s -m lemgrid.scenarios.cosim.csv_profile %(addr)s``, or
in-process as ``python: lemgrid.scenarios.cosim.csv_profile:CSVProfile``.
"""

from __future__ import annotations

import csv
from pathlib import Path

import mosaik_api_v3
from loguru import logger

SECONDS_PER_DAY = 86_400
META = {
    "api_version": "3.0",
    "type": "time-based",
    "models": {"Profile": {"public": True, "params": ["path", "column", "scale"],
                           "attrs": ["p_kw", "profile_kw"]}},
}


def read_day(path: str | Path, column: str, periods: int, scale: float = 1.0) -> list[float]:
    """One column of the CSV as ``periods`` values (rows held for periods/rows periods)."""
    with Path(path).open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or column not in rows[0]:
        have = ", ".join(list(rows[0])[1:]) if rows else "no rows"
        raise ValueError(f"{path}: no column {column!r} (columns: {have})")
    if periods % len(rows):
        raise ValueError(f"{path}: {len(rows)} rows do not divide a day of {periods} periods")
    hold = periods // len(rows)
    return [scale * float(row[column]) for row in rows for _ in range(hold)]


class CSVProfile(mosaik_api_v3.Simulator):
    def __init__(self):
        super().__init__(META)
        self.period_s, self.profiles, self.period = 900, {}, 0

    def init(self, sid, time_resolution=1.0, period_s=900):
        self.period_s = int(period_s)
        return self.meta

    def create(self, num, model, path, column, scale=1.0):
        periods = SECONDS_PER_DAY // self.period_s
        out = []
        for _ in range(num):
            eid = f"{column}-{len(self.profiles)}"
            self.profiles[eid] = read_day(path, column, periods, float(scale))
            out.append({"eid": eid, "type": model})
        return out

    def step(self, time, inputs, max_advance):
        self.period = (time % SECONDS_PER_DAY) // self.period_s
        return time + self.period_s

    def get_data(self, outputs):
        return {eid: {a: (self.profiles[eid][self.period] if a == "p_kw" else self.profiles[eid])
                      for a in attrs} for eid, attrs in outputs.items()}


def main():
    logger.disable("mosaik_api_v3")
    return mosaik_api_v3.start_simulation(CSVProfile(), "CSV day-profile simulator",
                                         configure_logging=False)


if __name__ == "__main__":
    main()
