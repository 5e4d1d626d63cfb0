"""Errors of a run that the command line reports in one line, and interrupts."""

import signal
from contextlib import contextmanager


class RunError(RuntimeError):
    """A run that cannot produce results; the message is one line for the user."""

    exit_code = 1


class RunStopped(RunError):
    """A run that stopped before its last day; its finished days are written."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM reached the runner."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(signum)
        self.signum = int(signum)

    def __str__(self) -> str:
        return f"interrupted by {signal.Signals(self.signum).name}"


def as_interrupt(exc: KeyboardInterrupt) -> Interrupted:
    return exc if isinstance(exc, Interrupted) else Interrupted(signal.SIGINT)


_deferred: list[bool] = [False]  # inside ``deferred()``: signals wait for ``check()``
_pending: list[int] = []  # signals received while deferred


@contextmanager
def interrupts_raised():
    """While inside, SIGINT and SIGTERM raise Interrupted in the main thread (or, inside
    ``deferred()``, at its next ``check()``), so the run stops its child processes and
    writes what is finished; the previous handlers return afterwards."""
    def handler(signum, _frame):
        if _deferred[0]:
            _pending.append(signum)
            return
        raise Interrupted(signum)
    sigs = (signal.SIGINT, signal.SIGTERM)
    before = {sig: signal.signal(sig, handler) for sig in sigs}
    try:
        yield
    finally:
        for sig, old in before.items():
            signal.signal(sig, old)


@contextmanager
def deferred():
    """Signals received inside wait for the next ``check()`` (in-process runs: a solver
    running with captured output is not cut mid-call)."""
    _deferred[0], _pending[:] = True, []
    try:
        yield
    finally:
        _deferred[0] = False


def check() -> None:
    """Raise the first signal received while deferred."""
    if _pending:
        raise Interrupted(_pending.pop(0))


class CheckedProgress:
    """A progress display (``on_day``, ``on_round``, ``on_period``) that raises a
    deferred interrupt at each call: the in-process runs' safe points."""

    def __init__(self, bar):
        self.bar = bar

    def on_day(self, *args):
        check()
        self.bar.on_day(*args)

    def on_round(self, *args):
        check()
        self.bar.on_round(*args)

    def on_period(self, *args):
        check()
        self.bar.on_period(*args)
