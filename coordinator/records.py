"""The coordinator's record of every finished day, one JSON file per day in a folder
(``day_0001.json`` for the first day), each written whole: into a temporary file, then
renamed. A day's record is written once and never rewritten, so a long run costs the
same per day and the coordinator keeps no finished day in memory; a reader never sees
half a file."""

from __future__ import annotations

import json
import os
from pathlib import Path

PATTERN = "day_*.json"


def day_path(folder: Path, day: int) -> Path:
    return Path(folder) / f"day_{day + 1:04d}.json"


def write_day(folder: Path, record: dict) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = day_path(folder, record["day"])
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(record) + "\n")
    os.replace(tmp, path)
    return path


def read_days(folder: Path) -> list[dict]:
    """Every day's record in ``folder``, in day order ([] if there is none)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    days = [json.loads(p.read_text()) for p in folder.glob(PATTERN)]
    return sorted(days, key=lambda d: d["day"])


def clear(folder: Path) -> None:
    """Remove the records of an earlier run."""
    for p in Path(folder).glob(PATTERN):
        p.unlink()
