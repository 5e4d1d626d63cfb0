"""Netting a bilateral market's agreed trades: circulations and pass-through flows out.

The agreed trades of one period are a flow on the pairs' arcs (m sells q to n: an arc
m → n carrying q). ``net_period`` decomposes it into trades from net sellers to net
buyers that keep every peer's net purchase: first every arc from a net seller to a net
buyer keeps what both still have to sell and to buy (largest arcs first: the market's own
pairs where they can stand); then every net seller's remaining sale follows the arcs
(largest first) to the first net buyer with demand left, and the path becomes one trade
of the seller with that buyer; a cycle met on the way is cancelled, and what is left once
every sale is placed is a circulation, dropped.

The decomposition is compiled by numba (``cache=True``: once per installation, loaded
from its cache by later processes): a full mesh of 1000 peers has 499,500 arcs a
period, which the same walk in Python took seconds a period to follow."""
from __future__ import annotations

import numpy as np
from numba import njit

NET_MIN_KW = 1e-9  # flows, supplies and demands below this are rounding


def net_period(pairs: np.ndarray, a_t: np.ndarray, held: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One period's agreed purchases ``a_t`` over ``pairs`` (n buys a from m, n < m)
    decomposed from net sellers to net buyers at the peers' net purchases ``held``:
    (sellers, buyers, kW), one entry per placement, in the order placed (a pair may
    appear more than once)."""
    keep = np.abs(a_t) > NET_MIN_KW
    ks = np.flatnonzero(keep)
    q = a_t[ks]
    tail = np.where(q > 0, pairs[ks, 1], pairs[ks, 0]).astype(np.int64)
    head = np.where(q > 0, pairs[ks, 0], pairs[ks, 1]).astype(np.int64)
    flow = np.abs(q)
    ordered = np.argsort(-flow, kind="stable")  # largest first, ties in the pairs' order
    return _decompose(tail, head, flow, ordered, np.maximum(-held, 0.0),
                      np.maximum(held, 0.0))


@njit(cache=True)
def _by_tail(tail, ordered, peers):
    """Each peer's arcs in ``ordered``'s order, one after the other, and where each
    peer's arcs begin (a counting sort)."""
    start = np.zeros(peers + 1, np.int64)
    for arc in ordered:
        start[tail[arc] + 1] += 1
    for u in range(peers):
        start[u + 1] += start[u]
    fill = start[:-1].copy()
    out = np.empty(len(ordered), np.int64)
    for arc in ordered:
        out[fill[tail[arc]]] = arc
        fill[tail[arc]] += 1
    return out, start


@njit(cache=True)
def _decompose(tail, head, flow, ordered, supply, demand):
    peers = len(supply)
    by_tail, start = _by_tail(tail, ordered, peers)  # each peer's arcs, largest first
    cap = len(flow) + 2 * peers + 1  # every placement empties an arc, a supply or a demand
    placed = (np.empty(cap, np.int64), np.empty(cap, np.int64), np.empty(cap, np.float64))
    count = 0
    at = np.full(peers, -1, np.int64)  # a peer's place on the walk's path
    path = np.empty(peers + 1, np.int64)
    arcs = np.empty(peers + 1, np.int64)  # arcs[i] leads from path[i] to path[i + 1]
    for arc in ordered:  # the market's own pairs first
        path[0], path[1], arcs[0] = tail[arc], head[arc], arc
        count = _place(path, arcs, 2, flow=flow, supply=supply, demand=demand,
                       placed=placed, count=count)
    first = start[:-1].copy()  # each peer's next arc to try
    for s in range(peers):
        while supply[s] > NET_MIN_KW:
            n, found = _walk(s, tail=tail, head=head, flow=flow, by_tail=by_tail,
                             start=start, first=first, demand=demand, at=at, path=path,
                             arcs=arcs)
            for i in range(n):
                at[path[i]] = -1
            if not found:
                break
            count = _place(path, arcs, n, flow=flow, supply=supply, demand=demand,
                           placed=placed, count=count)
    return placed[0][:count], placed[1][:count], placed[2][:count]


@njit(cache=True)
def _place(path, arcs, n, flow, supply, demand, placed, count):
    """One trade of the seller ``path[0]`` with the buyer ``path[n - 1]`` along the
    path's arcs (``arcs[:n - 1]``): the most they all carry, the seller's supply and the
    buyer's demand allow, taken off them and recorded as placement ``count`` of
    ``placed`` (sellers, buyers, kW) where it is more than rounding; the placements
    then."""
    seller, buyer = path[0], path[n - 1]
    kw = min(supply[seller], demand[buyer])
    for i in range(n - 1):
        kw = min(kw, flow[arcs[i]])
    if kw <= NET_MIN_KW:
        return count
    for i in range(n - 1):
        _take(flow, arcs[i], kw)
    supply[seller] -= kw
    demand[buyer] -= kw
    placed[0][count], placed[1][count], placed[2][count] = seller, buyer, kw
    return count + 1


@njit(cache=True)
def _walk(s, tail, head, flow, by_tail, start, first, demand, at, path, arcs):
    """A path of arcs carrying flow from ``s`` to the first peer with demand left: its
    length (in ``path``, its arcs in ``arcs``) and whether it reached one (not where the
    flow runs out: rounding), cancelling the cycles it meets."""
    path[0] = s
    at[s] = 0
    n = 1
    while n == 1 or demand[path[n - 1]] <= NET_MIN_KW:
        u = path[n - 1]
        while first[u] < start[u + 1] and flow[by_tail[first[u]]] <= NET_MIN_KW:
            first[u] += 1
        if first[u] >= start[u + 1]:
            return n, False
        arc = by_tail[first[u]]
        v = head[arc]
        if at[v] >= 0:  # a circulation: cancel it and walk on from v
            j = at[v]
            arcs[n - 1] = arc
            kw = flow[arc]
            for i in range(j, n - 1):
                kw = min(kw, flow[arcs[i]])
            for i in range(j, n):
                _take(flow, arcs[i], kw)
            for i in range(j + 1, n):
                at[path[i]] = -1
            n = j + 1
        else:
            at[v] = n
            path[n] = v
            arcs[n - 1] = arc
            n += 1
    return n, True


@njit(cache=True)
def _take(flow, arc, kw):
    left = flow[arc] - kw
    flow[arc] = left if left > NET_MIN_KW else 0.0
