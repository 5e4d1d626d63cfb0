"""Result files are replaced whole: a write that fails half-way leaves the previous file
and no temporary file behind."""

import pandas as pd
import pytest

from lemgrid.scenarios.results.atomic import write_atomic, write_parquet, write_text


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
