"""The progress bar's round watcher (tailing messages.jsonl) and the memory sampler."""

import json
import os
import subprocess
import sys

from lemgrid.scenarios.bench.memory import PeakMemory, tree_memory_mb, tree_pids
from lemgrid.scenarios.run.progress import DayProgress, RoundWatcher


def _line(msg_type: str, round_: int, day: int = 0) -> str:
    return json.dumps({"dir": "out", "peer": "p1",
                       "msg": {"type": msg_type, "day": day, "round": round_}}) + "\n"


def test_round_watcher_reports_each_new_round_once(tmp_path):
    """Signals of rounds 1, 1, 2 then a half-written round-3 line: rounds 1 and 2 only;
    the line completes: round 3. Offers and garbage are ignored."""
    path, seen = tmp_path / "messages.jsonl", []
    path.write_text(_line("signal", 1) + _line("signal", 1) + "not json\n"
                    + _line("offer", 7) + _line("signal", 2) + _line("signal", 3)[:20])
    watcher = RoundWatcher(path, seen.append)
    watcher.tick()
    assert seen == [1, 2]
    with path.open("a") as f:
        f.write(_line("signal", 3)[20:])
    watcher.tick()
    assert seen == [1, 2, 3]
    with path.open("a") as f:  # the next day starts again at round 1
        f.write(_line("signal", 1, day=1) + _line("signal", 3, day=0))
    watcher.tick()
    assert seen == [1, 2, 3, 1]


def test_day_progress_counts_periods_and_names_the_round():
    bar = DayProgress("tiny", 96, enabled=True)  # drawn on stderr, which pytest captures
    bar.on_round(2, 0.5)
    bar.on_period(0)
    bar.on_period(41)
    bar.on_period(41)  # a period seen twice counts once
    assert bar.bar.n == 42 and bar.bar.desc.startswith("tiny day 1/1 round 2")
    bar.close()


def test_day_progress_counts_every_day():
    """Three days of 96 periods: day 2's period 10 is the run's period 96 + 10 + 1 = 107."""
    bar = DayProgress("tiny", 96, enabled=True, days=3)
    bar.on_day(1)
    bar.on_period(10)
    assert bar.bar.n == 107 and bar.bar.total == 288
    assert bar.bar.desc.startswith("tiny day 2/3 market opening")
    bar.close()


def test_peak_memory_sees_child_processes():
    """A child holding 200 MB of touched memory raises the tree's peak by about that."""
    before = tree_memory_mb(os.getpid())[0]
    code = "b = bytearray(200 * 2**20); import time; time.sleep(1.5)"
    with PeakMemory(sample_s=0.1) as mem:
        child = subprocess.Popen([sys.executable, "-c", code])
        assert child.pid in tree_pids(os.getpid())
        child.wait(timeout=30)
    assert mem.pss_mb - before > 150 and mem.rss_mb >= mem.pss_mb
