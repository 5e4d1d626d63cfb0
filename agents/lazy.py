"""Modules imported when first used.

An agent process forked from the launcher builds its models from templates the runner
built (``agents.model``) and never writes one in Pyomo; yet every agent module names
Pyomo, and importing ``pyomo.environ`` is 0.35 s of the launcher's 0.75 s start-up, on
the cores its 90 simulators are starting on. In a process that has set ``DEFER``
(the launcher, before it imports the agents' stack), ``lazy`` gives the module at once
and imports it at the first attribute asked of it (the standard library's
``LazyLoader``); elsewhere it imports it at once, so that no two threads can race to
import it first (Python 3.12's lazy modules are not safe for that).
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

DEFER = False  # set by a process whose agents build their models from templates alone


def lazy(name: str) -> ModuleType:
    """Module ``name``, imported at its first use where ``DEFER`` is set (at once if it
    is imported already; its parent packages are imported now), else at once."""
    if name in sys.modules:  # as it is (importing it again would load a lazy one)
        return sys.modules[name]
    if not DEFER:
        return importlib.import_module(name)
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
