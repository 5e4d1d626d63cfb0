"""Container health check that does not touch the service: ``python -m lemgrid.scenarios.run.health
PORT [PORT ...]`` exits 0 when this host has a socket listening on every port.

The served mosaik simulators accept exactly one connection (the runner's), so a probe
that connects would use it up; this reads the kernel's socket tables instead.
"""

from __future__ import annotations

import sys
from pathlib import Path

TABLES = ("/proc/net/tcp", "/proc/net/tcp6")
LISTEN = "0A"  # the kernel's state code of a listening TCP socket


def listening_ports(tables=TABLES) -> set[int]:
    ports = set()
    for table in tables:
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] == LISTEN:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def main(argv: list[str] | None = None) -> int:
    wanted = {int(p) for p in (sys.argv[1:] if argv is None else argv)}
    missing = sorted(wanted - listening_ports())
    if missing:
        print(f"not listening on port(s) {', '.join(map(str, missing))}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
