"""Result files are replaced whole: a write that fails half-way leaves the previous file
and no temporary file behind. The checkpoint is the exception: it grows by one record a
day, and a record cut short is no finished day."""

import pickle

import pandas as pd
import pytest

from lemgrid.scenarios.results import checkpoint
from lemgrid.scenarios.results.atomic import write_atomic, write_parquet, write_text
from lemgrid.scenarios.results.outcome import DayResult


def test_a_failed_write_keeps_the_previous_file(tmp_path):
    path = write_text(tmp_path / "summary.json", '{"total": 1}\n')

    def crash(tmp):
        tmp.write_text('{"tot')  # half of it, then the process "dies"
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, crash)
    assert path.read_text() == '{"total": 1}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_parquet_is_written_whole(tmp_path):
    frame = pd.DataFrame({"day": [0, 1], "cost_eur": [1.5, -0.25]})
    path = write_parquet(tmp_path / "agents.parquet", frame)
    pd.testing.assert_frame_equal(pd.read_parquet(path), frame)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["agents.parquet"]


def test_the_checkpoint_appends_each_day_and_drops_a_cut_tail(tmp_path):
    """Three days saved one after another: the file grows by one record a day (the first
    two days' bytes stay as they were); a fourth record cut short by a crash is dropped on
    reading; a scenario changed since is refused; ``whole`` writes the file anew."""
    scenario = {"name": "t"}
    days = [DayResult("decentralized", {}, day=d, notes=[f"day {d}"]) for d in range(4)]
    path = tmp_path / checkpoint.CHECKPOINT
    checkpoint.save(tmp_path, scenario, days[:1])
    one = path.read_bytes()
    checkpoint.save(tmp_path, scenario, days[:3])
    three = path.read_bytes()
    assert three.startswith(one) and len(three) > len(one)
    assert [d.notes for d in checkpoint.load(tmp_path, scenario)] == [["day 0"], ["day 1"],
                                                                      ["day 2"]]
    path.write_bytes(three + pickle.dumps(days[3])[:-7])  # a crash while appending day 4
    assert [d.day for d in checkpoint.load(tmp_path, scenario)] == [0, 1, 2]
    with pytest.raises(checkpoint.CheckpointError, match="kept for another scenario"):
        checkpoint.load(tmp_path, {"name": "other"})
    days[2].notes.append("interrupted")
    checkpoint.save(tmp_path, scenario, days[:3], whole=True)
    assert checkpoint.load(tmp_path, scenario)[2].notes == ["day 2", "interrupted"]
