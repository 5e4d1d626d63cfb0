"""Start many agent simulator processes quickly: import once, pre-bind, fork.

mosaik's ``cmd`` start runs one interpreter per simulator, one after another, and each
imports Pyomo and HiGHS. Here the parent imports the agents' stack once (Pyomo only
when a model is first written in it, ``agents.lazy``: the simulators build their models
from the runner's templates), binds one listening socket per simulator and forks one
child per socket; each child serves exactly one mosaik connection (mosaik's ``connect``
start). Because the sockets listen before ``launch`` returns, mosaik can connect at
once: no start-up race, no retries.
"""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import time
from pathlib import Path

ACCEPT_TIMEOUT_S = 120.0  # a child waits this long for mosaik to connect, then exits
REAP_TIMEOUT_S = 10.0  # how long ``reap`` waits for the children to exit
CHILD_LIFETIME_S = 24 * 3600.0  # the launcher process outlives its children at most this long
SPLIT_AT = 16  # from this many simulators on, two processes fork them (half each)
TEMPLATES_WAIT_S = 10.0  # how long the launcher waits for the runner's model templates


def _finish(simulator) -> None:
    """However the co-simulation ended (mosaik may stop without a ``stop`` request), an
    agent simulator finishes its day and closes its connections to the coordinator (a
    no-op when mosaik's ``stop`` has done so already)."""
    simulator.finalize()


def _child(sock: socket.socket, others: list[socket.socket], accept_timeout_s: float) -> None:
    for other in others:
        other.close()
    code = 0
    try:
        from lemgrid.agents.serve import serve_one  # imported before the fork (``launch``)
        from lemgrid.agents.simulator import AgentSimulator

        asyncio.run(serve_one(sock, accept_timeout_s, AgentSimulator(), _finish))
    except BaseException:  # noqa: BLE001 - a child must never return into the parent's code
        code = 1
    finally:
        os._exit(code)


def launch(count: int, host: str = "127.0.0.1", port: int = 0,
           accept_timeout_s: float = ACCEPT_TIMEOUT_S, nice: int = 0
           ) -> tuple[list[str], list[int]]:
    """Fork ``count`` agent simulators listening on ``port``, ``port + 1``, ... (0: any
    free ports), each ``nice`` steps below normal CPU priority; return their
    ``host:port`` addresses and the pids to wait for (from ``SPLIT_AT`` simulators on,
    a second process forks half of them, on another core, and waits for those)."""
    import lemgrid.agents.serve
    import lemgrid.agents.simulator  # noqa: F401 - once here, not in every child

    socks = [socket.create_server((host, port + i if port else 0)) for i in range(count)]
    # The children share the parent's imported modules copy-on-write; a garbage
    # collection in a child writes to every object it tracks and so copies those pages
    # into each child (36 MB a child at 1000 agents). Frozen objects are never collected.
    gc.collect()
    gc.freeze()
    pids = []
    second = socks[len(socks) // 2:] if len(socks) >= SPLIT_AT else []
    if second:  # a second forker forks these meanwhile, waits for them, then exits
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = 1 if reap(_fork_each(second, socks, accept_timeout_s, nice),
                                 CHILD_LIFETIME_S) else 0
            finally:
                os._exit(code)
        pids.append(pid)
    pids += _fork_each(socks[:len(socks) - len(second)], socks, accept_timeout_s, nice)
    addresses = [f"{host}:{s.getsockname()[1]}" for s in socks]
    for sock in socks:
        sock.close()
    return addresses, pids


def _fork_each(mine: list[socket.socket], socks: list[socket.socket],
               accept_timeout_s: float, nice: int) -> list[int]:
    """Fork one simulator child for each socket of ``mine``; their pids."""
    pids = []
    for sock in mine:
        pid = os.fork()
        if pid == 0 and nice:
            os.nice(nice)
        if pid == 0:
            _child(sock, [s for s in socks if s is not sock], accept_timeout_s)
        pids.append(pid)
    return pids


def read_when_written(path: Path, wait_s: float = TEMPLATES_WAIT_S) -> bool:
    """Read the agents' model templates at ``path`` into this process once the runner has
    written them (it does so while this process imports), so that every simulator forked
    from it has them; False if they did not come within ``wait_s`` (the simulators then
    read them at ``init``)."""
    from lemgrid.agents.model import read_templates

    deadline = time.monotonic() + wait_s
    while not path.exists():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.002)
    read_templates(path)
    return True


def reap(pids: list[int], timeout_s: float = REAP_TIMEOUT_S) -> list[int]:
    """Wait for the children to exit; kill the ones still running after ``timeout_s``.
    Returns the pids that had to be killed."""
    deadline, left = time.monotonic() + timeout_s, set(pids)
    while left and time.monotonic() < deadline:
        for pid in list(left):
            if os.waitpid(pid, os.WNOHANG)[0]:
                left.discard(pid)
        time.sleep(0.01)
    for pid in left:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    return sorted(left)


def parser():
    import argparse

    p = argparse.ArgumentParser(prog="python -m lemgrid.agents.launcher", description=main.__doc__)
    p.add_argument("count", type=int, help="number of agent simulator processes")
    p.add_argument("host", nargs="?", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=0,
                   help="first port; the others follow it (default: any free ports)")
    p.add_argument("--accept-timeout-s", type=float, default=ACCEPT_TIMEOUT_S,
                   help="each process exits if mosaik has not connected within this")
    p.add_argument("--preload", action="append", default=[], metavar="MODULE",
                   help="import MODULE before forking (what the agents' answers need: "
                   "each process importing it on its own costs every one of them)")
    p.add_argument("--templates", type=Path, default=None, metavar="FILE",
                   help="the agents' model templates (agents.model.write_templates): read "
                   "before forking, once the runner has written them (waited for up to "
                   f"{TEMPLATES_WAIT_S:g} s; else each simulator reads them itself)")
    p.add_argument("--nice", type=int, default=0,
                   help="lower the simulators' CPU priority by this much (0-19), so that "
                   "the coordinator and mosaik, which every agent waits for, keep theirs")
    return p


def main(argv: list[str] | None = None) -> int:
    """Fork COUNT agent simulators, print their addresses as one JSON line, wait for
    them to finish. Run as its own lean process so the children inherit only the agent
    stack (not the runner's pandas/pandapower)."""
    import importlib
    import json
    import sys

    args = parser().parse_args(argv)
    from lemgrid.agents import lazy

    lazy.DEFER = True  # the simulators build their models from the runner's templates
    from lemgrid.agents import solver

    solver.HIGHS_THREADS = 1  # one solve at a time, one of many processes
    for module in args.preload:
        importlib.import_module(module)
    if args.templates is not None:
        read_when_written(args.templates)
    try:
        addresses, pids = launch(args.count, args.host, args.port, args.accept_timeout_s,
                                 args.nice)
    except OSError as exc:
        print(f"error: agent simulators on {args.host}:{args.port}: {exc.strerror or exc}",
              file=sys.stderr)
        return 1
    print(json.dumps(addresses), flush=True)
    return 1 if reap(pids, timeout_s=CHILD_LIFETIME_S) else 0


if __name__ == "__main__":
    raise SystemExit(main())
