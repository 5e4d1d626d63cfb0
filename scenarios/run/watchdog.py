"""Where the runner reaches into mosaik's internals, in one place: noticing a simulator
whose connection closed while mosaik was not waiting for it, and stopping what is left of
a world after an abort.

mosaik (3.6) fails a request whose connection closes while the request is outstanding,
but a simulator process that dies between two requests goes unnoticed: the next request
is written into the closed connection and its answer is awaited forever. The watchdog
fails such requests, so ``world.run`` raises mosaik's ``ConnectionClosedError`` naming
the simulator, as it does for a death during a request.
"""

from __future__ import annotations

import asyncio

WATCH_INTERVAL_S = 0.2  # how often the watchdog looks at the connections


def remote_channels(world) -> dict[str, object]:
    """Simulator id → the mosaik channel of every simulator in another process."""
    out = {}
    for sid, proxy in world._async_world._proxies.items():
        while hasattr(proxy, "_out"):  # mosaik's API-version adapters wrap the proxy
            proxy = proxy._out
        channel = getattr(proxy, "_channel", None)
        if channel is not None:
            out[sid] = channel
    return out


def fail_closed(channels: dict[str, object]) -> list[str]:
    """Fail the outstanding requests of every channel whose connection has closed; the
    ids of those simulators."""
    closed = []
    for sid, channel in channels.items():
        if not channel._receiver_task.done():
            continue
        closed.append(sid)
        for future in list(channel._outgoing_request_futures.values()):
            if not future.done():
                future.set_exception(asyncio.IncompleteReadError(b"", None))
    return closed


async def _watch(channels: dict[str, object], interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        fail_closed(channels)


def start_watchdog(world, interval_s: float = WATCH_INTERVAL_S) -> asyncio.Task:
    """Watch the world's remote simulators while it runs (cancel the task afterwards)."""
    return world.loop.create_task(_watch(remote_channels(world), interval_s),
                                  name="lemgrid simulator watchdog")


def shutdown_each(world) -> None:
    """Stop every simulator still running, each on its own (mosaik's shutdown gives up at
    the first one that cannot be reached, the dead one). mosaik's tasks stranded by the
    abort are cancelled first, so none fails unobserved while the simulators stop."""
    async def stop(proxy):
        await proxy.stop()

    def cancel_pending():
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))

    loop = world.loop
    if loop.is_closed():
        return
    cancel_pending()
    proxies = list(world._async_world._proxies.values())
    loop.run_until_complete(asyncio.gather(*(stop(p) for p in proxies), return_exceptions=True))
    cancel_pending()
    world._async_world._shutdown_performed = True
    loop.close()
