"""Naming the entities a co-simulator creates, children included: by index into what
``create`` returned (``0``), by index path (``0/3``: entity 0's child 3), by eid
(``House_3``), or every entity of a type (``each: House``). Works on anything with
mosaik's entity fields (``eid``, ``type``, ``children``); imports no mosaik."""

from __future__ import annotations

import re
from itertools import groupby

INDEX_PATH = re.compile(r"^\d+(/\d+)*$")


def index_path(ref: int | str | None) -> list[int] | None:
    """The indices an entity reference names (None: 0), None for an eid."""
    if ref is None:
        return [0]
    if isinstance(ref, int):
        return [ref]
    return [int(k) for k in ref.split("/")] if INDEX_PATH.match(ref) else None


def entity_index(ref: int | str | None) -> int | None:
    """The index among the created entities a reference starts at; None for an eid."""
    path = index_path(ref)
    return None if path is None else path[0]


def walk(entities):
    """Every entity and its children, depth first, in the simulator's order."""
    for e in entities:
        yield e
        yield from walk(e.children)


def find(entities, ref: int | str | None):
    """The entity ``ref`` names among ``entities`` (what ``create`` returned); LookupError
    naming what exists where it names none."""
    path = index_path(ref)
    if path is None:
        found = next((e for e in walk(entities) if e.eid == ref), None)
        if found is None:
            raise LookupError(f"no entity with eid {ref!r}; allowed: {describe(entities)}")
        return found
    level, where = entities, []
    for k in path:
        if not 0 <= k < len(level):
            count = f"{len(level)} {'entity' if len(level) == 1 else 'entities'}"
            whose = (f"entity {'/'.join(where)} has {len(level)} children" if where
                     else f"the co-simulator created {count}")
            raise LookupError(f"{'/'.join(map(str, path))}: {whose}; allowed: "
                              f"{describe(entities)}")
        found, level = level[k], level[k].children
        where.append(str(k))
    return found


def of_type(entities, kind: str) -> list:
    """Every entity of model ``kind``, children included, in order; LookupError naming the
    types there are where none is."""
    found = [e for e in walk(entities) if e.type == kind]
    if not found:
        types = ", ".join(dict.fromkeys(e.type for e in walk(entities)))
        raise LookupError(f"no entity of type {kind!r}; allowed: {types}")
    return found


def describe(entities, prefix: str = "") -> str:
    """What exists, by index path, eid and type, runs of one type shortened:
    ``0 resid_0 (ResidentialLoads) with 0/0–0/40 House_0–House_40 (House)``."""
    parts = []
    for kind, run in groupby(enumerate(entities), key=lambda ke: ke[1].type):
        run = list(run)
        (k0, e0), (k1, e1) = run[0], run[-1]
        span = (f"{prefix}{k0} {e0.eid}" if k0 == k1
                else f"{prefix}{k0}–{prefix}{k1} {e0.eid}–{e1.eid}")
        parts.append(f"{span} ({kind})")
        if len(run) == 1 and e0.children:
            parts[-1] += f" with {describe(e0.children, f'{prefix}{k0}/')}"
    return ", ".join(parts)
