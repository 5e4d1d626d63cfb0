"""A ``with`` block during which ``tick()`` runs every ``interval_s`` in a daemon thread
(once at the start and once more at the end as well)."""

from __future__ import annotations

import threading


class PeriodicThread:
    def __init__(self, tick, interval_s: float):
        self.tick, self.interval_s = tick, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.tick()
        while not self._stop.wait(self.interval_s):
            self.tick()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.tick()
