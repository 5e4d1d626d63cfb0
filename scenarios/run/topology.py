"""Where each agent runs: process groups of ``runtime.agents_per_process`` agents, and
the groups split into contiguous shards, one per agent host (``lemgrid serve-agents``).

The runner and every agent host compute the same split from the same scenario, so an
agent host needs only its shard number to know how many simulator processes to serve.
"""

from __future__ import annotations

from scenarios.run.market import needs_operator
from scenarios.schema import Scenario, agent_count


def group_count(s: Scenario) -> int:
    """The agents' process groups, and the network operator's where the market has one."""
    operator = 1 if needs_operator(s) else 0
    return -(-agent_count(s) // s.runtime.agents_per_process) + operator


def process_groups(community: list, size: int) -> list[list]:
    """Consecutive agents, ``size`` to a process."""
    return [community[i:i + size] for i in range(0, len(community), size)]


def shard_range(groups: int, shard: int, shards: int) -> range:
    """The process groups of shard ``shard`` (0-based) of ``shards``: contiguous, sizes
    differing by at most one."""
    if not 0 <= shard < shards:
        raise ValueError(f"shard {shard} is not in 0..{shards - 1}")
    return range(shard * groups // shards, (shard + 1) * groups // shards)


def shard_groups(s: Scenario, groups: int, shard: int, shards: int) -> range:
    """The process groups shard ``shard`` of ``shards`` serves, counted among the groups
    that ``runtime.connect`` does not place."""
    return shard_range(max(groups - len(s.runtime.connect[:groups]), 0), shard, shards)


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` → (i, n), with a one-line error for anything else."""
    i, sep, n = text.partition("/")
    try:
        shard, shards = int(i), int(n)
    except ValueError:
        shard = shards = -1
    if not sep or shards < 1 or not 0 <= shard < shards:
        raise ValueError(f"--shard {text!r}: expected i/n with 0 <= i < n, e.g. 0/2")
    return shard, shards


def group_addresses(s: Scenario, groups: int) -> list[str | None]:
    """host:port of each process group's running simulator, or None where the runner
    starts it: ``runtime.connect`` first, then the ``runtime.agent_hosts`` shards (shard
    i's groups on consecutive ports from its port)."""
    given: list[str | None] = list(s.runtime.connect[:groups])
    hosts = s.runtime.agent_hosts
    for i, address in enumerate(hosts):
        host, port = address.rsplit(":", 1)
        given += [f"{host}:{int(port) + k}"
                  for k in range(len(shard_groups(s, groups, i, len(hosts))))]
    return given + [None] * (groups - len(given))
