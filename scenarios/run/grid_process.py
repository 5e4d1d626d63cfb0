"""``python -m lemgrid.scenarios.run.grid_process HOST``: the grid simulator as its own process,
listening on a free port of HOST (printed first as ``grid simulator listening on
HOST:PORT``) for one runner's mosaik ``connect``. The distributed runner starts it beside
the coordinator and the agent launcher, so that its imports (pandapower) overlap theirs
instead of following them; it imports no more than the grid simulator needs."""

from __future__ import annotations

import json
import sys

from lemgrid.agents.serve import listen_and_serve

ACCEPT_TIMEOUT_S = 120.0  # exit if no runner has connected by then
READY = "grid simulator listening on "


def main(argv: list[str] | None = None) -> int:
    """``HOST [NETWORK OPTIONS_JSON]``: with a network, it is built before the process
    listens (``grid.networks.load_network`` keeps it), while the agents start, instead of
    when the runner creates the grid (0.3-0.5 s at the end of the start-up)."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) not in (1, 3):
        print("usage: python -m lemgrid.scenarios.run.grid_process HOST [NETWORK OPTIONS_JSON]",
              file=sys.stderr)
        return 2
    from lemgrid.grid.simulator import GridSimulator

    if len(argv) == 3:
        from lemgrid.grid.networks import load_network

        try:
            load_network(argv[1], **json.loads(argv[2]))
        except ValueError:
            pass  # the runner's create names what is wrong
    return listen_and_serve(GridSimulator(), argv[0], 0, ACCEPT_TIMEOUT_S, READY.strip())


if __name__ == "__main__":
    # pandapower uses numba when it can import it (lemgrid installs numba for the
    # bilateral market's netting, which this process never runs): 0.5 s more start-up
    # (its import 0.2 s, the first net 0.13 s, loading its compiled helpers at the first
    # power flow 0.16 s) and 140 MB, for no gain on these networks. Hidden, pandapower
    # takes its pure-Python path.
    sys.modules["numba"] = None
    raise SystemExit(main())
