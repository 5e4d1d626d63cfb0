"""Errors of a run that the command line reports in one line."""


class RunError(RuntimeError):
    """A run that cannot produce results; the message is one line for the user."""
