"""Peak memory of a process tree (this process and every descendant), sampled from
/proc: the sum of proportional set sizes (PSS: shared pages split among the processes
that share them, so forked agent processes are not counted many times) and, for
comparison, the sum of resident set sizes."""

from __future__ import annotations

import os
from pathlib import Path

from lemgrid.scenarios.run.periodic import PeriodicThread

SAMPLE_S = 0.5  # seconds between samples


def _children_of() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def tree_pids(root: int) -> list[int]:
    tree, out, stack = _children_of(), [], [root]
    while stack:
        pid = stack.pop()
        out.append(pid)
        stack.extend(tree.get(pid, []))
    return out


def _kb(pid: int, fields: tuple[str, ...]) -> dict[str, int]:
    values = dict.fromkeys(fields, 0)
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            key = line.split(":", 1)[0]
            if key in values:
                values[key] = int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return values


def tree_memory_mb(root: int) -> tuple[float, float]:
    """(PSS sum, RSS sum) of the tree in MB now."""
    pss = rss = 0
    for pid in tree_pids(root):
        v = _kb(pid, ("Pss", "Rss"))
        pss, rss = pss + v["Pss"], rss + v["Rss"]
    return pss / 1024, rss / 1024


class PeakMemory(PeriodicThread):
    """``with PeakMemory() as m: ...`` then ``m.pss_mb``, ``m.rss_mb``: the largest sums
    seen while the block ran, sampled every ``SAMPLE_S``."""

    def __init__(self, root: int | None = None, sample_s: float = SAMPLE_S):
        super().__init__(self._sample, sample_s)
        self.root = root or os.getpid()
        self.pss_mb = self.rss_mb = 0.0

    def _sample(self) -> None:
        pss, rss = tree_memory_mb(self.root)
        self.pss_mb, self.rss_mb = max(self.pss_mb, pss), max(self.rss_mb, rss)
