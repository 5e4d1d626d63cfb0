"""Where each agent runs: process groups of ``runtime.agents_per_process`` agents, and
the groups split into contiguous shards, one per agent host (``lemgrid serve-agents``).

The runner and every agent host compute the same split from the same scenario, so an
agent host needs only its shard number to know how many simulator processes to serve.

Agent hosts may also be the replicas of one service behind one DNS name (a compose
service scaled to n containers): the name resolves to the n hosts' addresses, shard i is
the i-th address in order, and a host finds its own shard by the address it can bind.
"""

from __future__ import annotations

import ipaddress
import socket
import time

from lemgrid.scenarios.run.errors import RunError
from lemgrid.scenarios.run.market import needs_operator
from lemgrid.scenarios.schema import Scenario, agent_count


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


def parse_shard(text: str, tries: int = 1, retry_s: float = 1.0) -> tuple[int, int]:
    """``"i/n"`` → (i, n); ``"NAME/n"`` (n replicas behind the DNS name NAME) → (this
    host's position among their addresses, n); a one-line error for anything else."""
    i, sep, n = text.partition("/")
    try:
        shards = int(n)
    except ValueError:
        shards = -1
    try:
        shard = int(i)
    except ValueError:
        shard = -1
        if sep and shards >= 1 and i:
            return own_position(replica_addresses(i, shards, tries, retry_s)), shards
    if not sep or shards < 1 or not 0 <= shard < shards:
        raise ValueError(f"--shard {text!r}: expected i/n with 0 <= i < n, e.g. 0/2, or "
                         "NAME/n, n replicas behind the DNS name NAME")
    return shard, shards


def replica_addresses(name: str, count: int, tries: int = 60,
                      retry_s: float = 1.0) -> list[str]:
    """The addresses ``name`` resolves to, in order, once it resolves to ``count`` of them
    (a scaled service's replicas come up one by one)."""
    found: list[str] = []
    for attempt in range(tries):
        try:
            infos = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
            found = sorted({info[4][0] for info in infos}, key=ipaddress.ip_address)
        except socket.gaierror:
            found = []
        if len(found) > count:
            raise ValueError(f"{name} resolves to {len(found)} addresses, expected {count} "
                             f"replicas: {', '.join(found)}")
        if len(found) == count:
            return found
        if attempt < tries - 1:
            time.sleep(retry_s)
    raise ValueError(f"{name} resolves to {len(found)} of {count} replicas' addresses after "
                     f"{tries} tries, {retry_s:g} s apart")


def own_position(addresses: list[str]) -> int:
    """The position of this host's address among ``addresses`` (the one it can bind)."""
    for i, address in enumerate(addresses):
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind((address, 0))
            except OSError:
                continue
            return i
    raise ValueError(f"none of {', '.join(addresses)} is an address of this host")


def agent_hosts(s: Scenario) -> list[str]:
    """host:port of each agent-host shard: ``runtime.agent_hosts``, or the replicas of
    ``runtime.agent_service`` (resolved, retried as ``runtime.connect_*`` say)."""
    r = s.runtime
    if r.agent_service is None:
        return list(r.agent_hosts)
    name, port = r.agent_service.rsplit(":", 1)
    try:
        found = replica_addresses(name, r.agent_service_replicas, r.connect_retries,
                                  r.connect_retry_s)
    except ValueError as exc:
        raise RunError(f"runtime.agent_service: {exc}") from None
    return [f"{a}:{port}" for a in found]


def group_addresses(s: Scenario, groups: int) -> list[str | None]:
    """host:port of each process group's running simulator, or None where the runner
    starts it: ``runtime.connect`` first, then the ``runtime.agent_hosts`` shards (shard
    i's groups on consecutive ports from its port)."""
    given: list[str | None] = list(s.runtime.connect[:groups])
    hosts = agent_hosts(s)
    for i, address in enumerate(hosts):
        host, port = address.rsplit(":", 1)
        given += [f"{host}:{int(port) + k}"
                  for k in range(len(shard_groups(s, groups, i, len(hosts))))]
    return given + [None] * (groups - len(given))
