"""One connection to the coordinator for all the agents of a process.

The agents' clients (``agents.client``) connect to an in-process ROUTER socket instead of
the coordinator; a thread forwards between it and one DEALER connection to the
coordinator (ZeroMQ's proxy). The ROUTER puts a frame naming the client (its identity:
the agent's name) before each message, which the coordinator reads as the envelope of a
host's agent and answers in, and which the ROUTER takes off again to hand the answer to
that client (the documentation's protocol page, Transport). The clients are
unchanged; with CURVE keys, the host's connection holds them (one key for the process's
agents, as every client of a process held the same one).
"""

from __future__ import annotations

import itertools
import os
import threading

import zmq

_HOSTS = itertools.count()


class HostConnection:
    """A proxy thread between an in-process endpoint (``endpoint``, for the clients'
    sockets, which must be on the process's shared context, ``zmq.Context.instance()``,
    as ``agents.client``'s are) and the coordinator at ``coordinator`` (``options``:
    socket options such as CURVE keys)."""

    def __init__(self, coordinator: str, options: dict | None = None):
        context = zmq.Context.instance()
        self.endpoint = f"inproc://lemgrid-host-{os.getpid()}-{next(_HOSTS)}"
        frontend = context.socket(zmq.ROUTER)
        frontend.setsockopt(zmq.LINGER, 0)
        frontend.bind(self.endpoint)
        backend = context.socket(zmq.DEALER)
        backend.setsockopt(zmq.LINGER, 0)
        backend.setsockopt(zmq.IDENTITY, f"host-{os.getpid()}-{id(self):x}".encode())
        backend.setsockopt(zmq.SNDHWM, 0)
        for option, value in (options or {}).items():
            backend.setsockopt(option, value)
        backend.connect(coordinator)
        control = context.socket(zmq.PAIR)
        control.bind(f"{self.endpoint}-control")
        self._stop = context.socket(zmq.PAIR)
        self._stop.setsockopt(zmq.LINGER, 0)
        self._stop.connect(f"{self.endpoint}-control")
        self._thread = threading.Thread(target=self._serve, args=(frontend, backend, control),
                                        daemon=True, name="lemgrid-host")
        self._thread.start()

    @staticmethod
    def _serve(frontend, backend, control) -> None:
        try:
            zmq.proxy_steerable(frontend, backend, None, control)
        except zmq.ContextTerminated:
            pass
        finally:
            for sock in (frontend, backend, control):
                sock.close(linger=0)

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop forwarding (after the clients sent their last messages) and close."""
        if self._stop.closed:
            return
        self._stop.send(b"TERMINATE")
        self._thread.join(timeout_s)
        self._stop.close(linger=0)
