"""Fault targets, in the field's words, resolved to node names.

A target is a comma-separated union of:

* a node name (``pg1``);
* ``az:<name>``: every node of that AZ;
* a role, read from the live cluster: ``primary``, ``standbys`` (every
  standby, sync or not), ``sync-standby``, ``quorum-leader`` (the leader of
  the quorum group: the etcd leader, the CMS primary), ``cascade-upstream``
  (the node each cascade standby streams from now);
* a role from the topology: ``databases``, ``quorum`` (nodes with role
  quorum), ``all``;
* a shape (Jepsen's): ``one`` (one node at random), ``minority``,
  ``majority`` (a random minority / majority of all nodes).

Resolution is pure: it takes the plan, the observed cluster and a random
generator, so tests need no Docker.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING

from cmlab.errors import FaultError
from cmlab.vocabulary import FORMER, current

if TYPE_CHECKING:  # the CLI reads HELP at start-up: pydantic's models wait until a target is resolved
    from cmlab.engines.base import ClusterState
    from cmlab.topology.plan import LabPlan

HELP = ("node names, az:<name>, primary, standbys, sync-standby, quorum-leader, cascade-upstream, "
        "databases, quorum, all, one, minority, majority (comma-separated)")
#: Words that need the live cluster's roles.
LIVE = {"primary", "standbys", "sync-standby", "quorum-leader", "cascade-upstream"}
#: Live roles only some engines can name: the word -> the engine's ability (:meth:`Engine.abilities`).
NEEDS = {"quorum-leader": "quorum-leader", "cascade-upstream": "cascade"}


def needs(spec: str) -> set[str]:
    """The engine abilities a target spec needs."""
    return {NEEDS[w] for w in (current(p.strip()) for p in spec.split(",")) if w in NEEDS}


def needs_live_state(spec: str) -> bool:
    return any(FORMER.get(part.strip(), part.strip()) in LIVE for part in spec.split(","))


def resolve(
    spec: str,
    plan: LabPlan,
    state: ClusterState | None = None,
    rng: random.Random | None = None,
    quorum_leader: Callable[[], str | None] | None = None,
    upstream: Callable[[str], str | None] | None = None,
) -> list[str]:
    """The node names ``spec`` designates, in topology order.

    :param state: the observed cluster, needed for live roles.
    :param quorum_leader: returns the quorum leader's node name (for ``quorum-leader``).
    :param upstream: returns the node a standby streams from (for ``cascade-upstream``).
    :raises FaultError: an unknown word, or a role no node has now.
    """
    rng = rng or random.Random()
    names = [n.name for n in plan.nodes]
    chosen: set[str] = set()
    for word in (current(w.strip()) for w in spec.split(",")):
        if not word:
            continue
        chosen |= set(_one(word, plan, names, state, rng, quorum_leader, upstream))
    if not chosen:
        raise FaultError(f"target '{spec}' designates no node (use {HELP})")
    return [n for n in names if n in chosen]


def check(spec: str, plan: LabPlan) -> None:
    """Check ``spec``'s words against the lab before anything runs: node names,
    AZs and shapes must exist in ``plan``; live roles are checked when resolved.

    :raises FaultError: an unknown word, naming it and the words there are.
    """
    names = [n.name for n in plan.nodes]
    words = [current(w.strip()) for w in spec.split(",") if w.strip()]
    if not words:
        raise FaultError(f"target '{spec}' designates no node (use {HELP})")
    for word in words:
        if word not in LIVE:
            _one(word, plan, names, None, random.Random(0), None, None)


def _one(word: str, plan: LabPlan, names: list[str], state: ClusterState | None, rng: random.Random,
         quorum_leader: Callable[[], str | None] | None,
         upstream: Callable[[str], str | None] | None) -> list[str]:
    from cmlab.engines.base import NodeRole
    from cmlab.topology.schema import Role

    if word in names:
        return [word]
    if word.startswith("az:"):
        az = word[3:]
        if az not in {a.name for a in plan.azs}:
            raise FaultError(f"unknown AZ '{az}' in target (AZs: {', '.join(a.name for a in plan.azs)})")
        return [n.name for n in plan.nodes if n.az == az]
    if word == "all":
        return names
    if word == "databases":
        return [n.name for n in plan.nodes_with(Role.database)]
    if word == "quorum":
        return [n.name for n in plan.nodes_with(Role.quorum)]
    if word in ("one", "minority", "majority"):
        size = {"one": 1, "minority": (len(names) - 1) // 2, "majority": len(names) // 2 + 1}[word]
        if size == 0:
            raise FaultError(f"a lab of {len(names)} node(s) has no {word}")
        return rng.sample(names, size)
    if word in LIVE:
        if word == "quorum-leader":
            leader = quorum_leader() if quorum_leader else None
            if leader is None:
                raise FaultError("no quorum leader can be seen now (is the quorum up?)")
            return [leader]
        if state is None:
            raise FaultError(f"target '{word}' needs the live cluster's roles")
        if word == "cascade-upstream":
            return _cascade_upstreams(state, upstream)
        roles = {"primary": {NodeRole.primary}, "standbys": {NodeRole.standby, NodeRole.sync_standby, NodeRole.cascade_standby},
                 "sync-standby": {NodeRole.sync_standby}}[word]
        found = [n.name for n in state.nodes if n.role in roles]
        if not found:
            raise FaultError(f"no node is {word.replace('-', ' ')} now (roles: {_roles(state)})")
        return found
    raise FaultError(f"unknown target '{word}' (use {HELP})")


def _cascade_upstreams(state: ClusterState, upstream: Callable[[str], str | None] | None) -> list[str]:
    from cmlab.engines.base import NodeRole

    cascades = [n.name for n in state.nodes if n.role is NodeRole.cascade_standby]
    if not cascades:
        raise FaultError(f"no node is a cascade standby now (roles: {_roles(state)})")
    found = [u for u in (upstream(c) if upstream else None for c in cascades) if u]
    if not found:
        raise FaultError(f"the upstream of cascade standby {', '.join(cascades)} cannot be seen now "
                         "(not streaming, or the engine cannot tell)")
    return found


def _roles(state: ClusterState) -> str:
    return ", ".join(f"{n.name}={n.role.value}" for n in state.nodes)
