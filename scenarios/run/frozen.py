"""Objects kept out of the garbage collector's full collections (``gc.freeze``) while a
block runs, nested blocks leaving it to the outermost. A run freezes what exists before
it (modules, built networks, model templates, an earlier run's results: 0.3-0.5 s a full
collection walks in a process that has run a scenario before); a fork freezes what the
child shares with its parent, so that the child's collections do not copy those pages."""

from __future__ import annotations

import gc
import os
from contextlib import contextmanager

_depth = 0  # blocks open: gc.get_freeze_count() is not 0 at start-up, so it cannot tell


@contextmanager
def frozen():
    """Freeze every object tracked now; at the end, unless an outer block is open,
    collect what the block left (its cyclic garbage) and unfreeze. A process forked
    inside keeps them frozen."""
    global _depth
    pid = os.getpid()
    if _depth == 0:
        gc.freeze()
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0 and os.getpid() == pid:
            gc.collect()  # the block's own garbage (cheap: the frozen are not walked),
            gc.unfreeze()  # else the next block would freeze it for good
