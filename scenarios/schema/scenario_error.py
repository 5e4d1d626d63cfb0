"""``ScenarioError``, raised for a scenario that cannot be used, one printable line per
problem, by every part of the schema (the YAML loader, the error formatting, loading);
and ``_show``, a value as a problem line quotes it (the models' validators too)."""

from __future__ import annotations


def _printable(text: str) -> str:
    """``text`` with newlines and other unprintable characters escaped."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape", "backslashreplace")
                   .decode("ascii") for c in text)


class ScenarioError(ValueError):
    """A scenario that cannot be used; ``lines`` holds one message per problem."""

    def __init__(self, lines: list[str]):
        lines = [_printable(line) for line in lines]  # one line each, always
        super().__init__("\n".join(lines))
        self.lines = lines


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
