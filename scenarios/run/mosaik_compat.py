"""A correction to mosaik's scheduler (mosaik 3.6, the newest release on the package index
this project installs from), applied once by the distributed runner.

After every step of any simulator, mosaik advances every simulator's *progress*: the
earliest time at which something may still make it step. For an event-based simulator
(mosaik-csv's CSVWriter, say) that bound comes from its triggering ancestors' next
scheduled steps, but an ancestor in the middle of a step has taken that step off its
queue, so it counts as having none, and the bound jumps to the end of the simulation.
When the ancestor's step then delivers data, the event-based simulator is asked to step
back in time and mosaik stops with ``AssertionError: cannot progress backwards``. It
happens whenever a source may run ahead of the network (a CSV simulator feeding agents)
while an event-based recorder listens to the grid simulator.

``advance_progress`` here counts an ancestor mid-step at the step it is taking (put back
on its queue for the duration of mosaik's own computation, which does not yield), which
is what mosaik's bound means; everything else is mosaik's code.

It also skips the work where it cannot change anything. mosaik advances every simulator
after every step of any of them (its own note: "Reduce the number of sims that need to
be advanced"): 92 × 8832 calls in a day of 90 agent processes, most of that day's
scheduling. A simulator no other simulator triggers (every time-based one: agents, the
grid, the collector) has a progress that depends on its own next and current step
alone, so it is recomputed only when one of those changed.
"""

from __future__ import annotations

import heapq

from mosaik import scheduler

_ORIGINAL = scheduler.advance_progress


_LAST: dict[int, tuple] = {}  # id(simulator) -> its steps when its progress was last set


def advance_progress(sim, world) -> None:
    if not sim.triggering_ancestors and not world.rt_factor:
        key = (sim.next_steps[0] if sim.next_steps else None, sim.current_step, world.until)
        if _LAST.get(id(sim)) == key:
            return
        _LAST[id(sim)] = key
        _ORIGINAL(sim, world)
        return
    held = []
    for ancestor in sim.triggering_ancestors:
        step = ancestor.current_step
        if step is not None and (not ancestor.next_steps or step < ancestor.next_steps[0]):
            heapq.heappush(ancestor.next_steps, step)
            held.append((ancestor, step))
    try:
        _ORIGINAL(sim, world)
    finally:
        for ancestor, step in held:
            ancestor.next_steps.remove(step)
            heapq.heapify(ancestor.next_steps)


def apply() -> None:
    """Install the corrected ``advance_progress`` (idempotent; before each world runs)."""
    _LAST.clear()
    scheduler.advance_progress = advance_progress
