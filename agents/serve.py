"""Serve one mosaik connection on a socket that already listens (mosaik's ``connect``
start): the agent launcher's forked simulators and the grid simulator's own process.
Binding before serving lets the starter print the address at once (port 0: any free
port), so the runner connects without a start-up race. Imports nothing heavy."""

from __future__ import annotations

import asyncio
import socket
import sys

from mosaik_api_v3 import run_simulator


async def serve_one(sock: socket.socket, accept_timeout_s: float, simulator,
                    finish=None) -> None:
    """Serve ``simulator`` to the first mosaik connection on the listening socket
    ``sock``; give up after ``accept_timeout_s`` without one (``TimeoutError``).
    ``finish(simulator)`` runs however the connection ended."""
    loop = asyncio.get_running_loop()
    connected: asyncio.Future = loop.create_future()
    server = await asyncio.start_server(
        lambda r, w: connected.done() or connected.set_result((r, w)), sock=sock)
    try:
        reader, writer = await asyncio.wait_for(connected, accept_timeout_s)
    finally:
        server.close()
    from mosaik_api_v3.connection import Channel
    channel = Channel(reader, writer)
    try:
        await run_simulator(channel, simulator, api_compliant=True)
    finally:
        await channel.close()
        if finish is not None:
            finish(simulator)


def listen_and_serve(simulator, host: str, port: int, accept_timeout_s: float,
                     what: str, out=None) -> int:
    """Bind ``host:port`` (0: a free port), print ``<what> listening on HOST:PORT`` as
    the first line of output (to ``out``, default standard output), serve one mosaik
    connection, return the exit code."""
    from mosaik_api_v3.connection import EndOfRequests

    sock = socket.create_server((host, port))
    print(f"{what} listening on {host}:{sock.getsockname()[1]}", file=out or sys.stdout,
          flush=True)
    try:
        asyncio.run(serve_one(sock, accept_timeout_s, simulator))
    except TimeoutError:
        raise RuntimeError(f"no runner connected within {accept_timeout_s:g} s") from None
    except (EndOfRequests, ConnectionError):  # the runner went away without a stop: it
        return 1  # says why (interrupted, a simulator died); no traceback here
    return 0
