"""Partition planners, pure: each returns a *grudge*, a map from a node to the
nodes whose packets it drops (Jepsen's ``jepsen.nemesis`` grudges).

Applying a grudge is separate (:class:`cmlab.faults.network.Partition`):
every node drops, on input, the packets from the nodes it holds a grudge
against. A symmetric cut is a grudge both ways; a one-way cut from A to B is
B's grudge against A alone.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

Grudge = dict[str, frozenset[str]]


def _merge(*grudges: Grudge) -> Grudge:
    out: dict[str, set[str]] = {}
    for g in grudges:
        for node, drops in g.items():
            out.setdefault(node, set()).update(drops)
    return {n: frozenset(d) for n, d in out.items() if d}


def cut(a: Iterable[str], b: Iterable[str], one_way: bool = False) -> Grudge:
    """Cut group ``a`` from group ``b``. One-way: packets from ``a`` to ``b``
    are dropped, ``b`` still reaches ``a``."""
    a, b = frozenset(a), frozenset(b)
    if a & b:
        raise ValueError(f"a node cannot be cut from itself: {sorted(a & b)} on both sides")
    forward = {node: a for node in b}
    return _merge(forward) if one_way else _merge(forward, {node: b for node in a})


def complete(components: Sequence[Iterable[str]]) -> Grudge:
    """Each node drops every node outside its own component."""
    comps = [frozenset(c) for c in components]
    everyone = frozenset().union(*comps)
    return _merge({node: everyone - comp for comp in comps for node in comp})


def isolate(targets: Iterable[str], nodes: Sequence[str]) -> Grudge:
    """The targets, each alone, cut from every other node and from each other."""
    targets = list(targets)
    rest = [n for n in nodes if n not in targets]
    return complete([[t] for t in targets] + ([rest] if rest else []))


def halves(nodes: Sequence[str], rng: random.Random) -> Grudge:
    """A random minority against the majority (Jepsen's ``partition-random-halves``)."""
    shuffled = list(nodes)
    rng.shuffle(shuffled)
    k = len(shuffled) // 2
    return complete([shuffled[:k], shuffled[k:]])


def bridge(nodes: Sequence[str], rng: random.Random) -> Grudge:
    """Two halves and one node that sees both (Jepsen's ``bridge``)."""
    shuffled = list(nodes)
    rng.shuffle(shuffled)
    if len(shuffled) < 3:
        raise ValueError("a bridge needs at least 3 nodes")
    k = len(shuffled) // 2
    left, middle, right = shuffled[:k], shuffled[k], shuffled[k + 1:]
    g = complete([left, right])
    g = {n: d for n, d in g.items()}
    return _merge({n: d for n, d in g.items() if n != middle})


def majorities_ring(nodes: Sequence[str], rng: random.Random) -> Grudge:
    """Every node sees a majority, and no two nodes see the same one (Jepsen's
    ``majorities-ring``): on a random ring each node sees its nearest
    neighbours up to a majority."""
    ring = list(nodes)
    rng.shuffle(ring)
    n = len(ring)
    if n < 3:
        raise ValueError("a majorities ring needs at least 3 nodes")
    m = n // 2 + 1
    grudge: dict[str, frozenset[str]] = {}
    for i, node in enumerate(ring):
        # The majority around node i: itself and (m - 1) neighbours, split left/right.
        left = (m - 1) // 2
        right = m - 1 - left
        sees = {ring[(i + k) % n] for k in range(-left, right + 1)}
        grudge[node] = frozenset(set(ring) - sees)
    # A node must drop a peer only if the peer drops it too, or links are one-way.
    sym = {a: frozenset(b for b in drops if a in grudge[b]) for a, drops in grudge.items()}
    return _merge(sym)


SHAPES = {"halves": halves, "bridge": bridge, "majorities-ring": majorities_ring}
