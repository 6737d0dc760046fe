"""Snapshots of ready clusters, for a warm ``up``.

The first ``up`` of a (topology shape, parameters, image) saves what its
engine's :class:`~cmlab.engines.base.WarmStart` names once the cluster is
ready; a later ``up`` of the same key restores it into the new lab's volumes
before the nodes start, instead of initialising the cluster and building its
standbys. ``cmlab up --fresh`` does neither.

A snapshot is Docker volumes on the local engine, one per saved directory
(``cmlab-snapshot-<key>-<name>``), and a last, empty *marker* volume
(``cmlab-snapshot-<key>``) whose labels describe it: made last, so a snapshot
being saved, or cut short, is never restored. Every one carries the label
``cmlab.snapshot=<key>`` and no lab's label: a snapshot outlives the labs,
as images do, and ``cmlab snapshots --prune`` removes it.

The key hashes what the saved data depends on: the engine and its warm-start
format, the image's ID (not its tag), every parameter, and the names, roles
and AZs of the nodes; not the lab's name, subnets or addresses, which the
engine rewrites (parallel test workers share a snapshot).

Copies are made by a short-lived container of the engine's image, with no
network, labelled with the lab (``down`` removes it if ``up`` is cut short).
"""

from __future__ import annotations

import hashlib
import json
import shlex
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import docker
from docker.errors import APIError, ContainerError, NotFound
from docker.types import Mount
from filelock import FileLock

from cmlab.engines.base import SavedDir, WarmStart
from cmlab.errors import LabError
from cmlab.runtime import labels as L
from cmlab.topology.plan import PREFIX, LabPlan

#: Label: the snapshot's key, on each of its volumes.
KEY = "cmlab.snapshot"
#: Label on a saved directory's volume: its name.
NAME = "cmlab.snapshot.name"
#: Label on the marker volume: the snapshot's description (JSON).
ABOUT = "cmlab.snapshot.about"
#: Raise when the layout of snapshots changes: older ones no longer match.
FORMAT = 1
#: Seconds a copy may take (a few hundred MiB on a slow disk).
COPY_TIMEOUT_S = 600


@dataclass(frozen=True)
class StoredSnapshot:
    """A complete snapshot: its key, the engine and lab that made it, when
    (UTC, ISO 8601), the image it was made with, and its saved names."""

    key: str
    engine: str
    lab: str
    created: str
    image: str
    names: tuple[str, ...]


def marker_volume(key: str) -> str:
    return f"{PREFIX}-snapshot-{key}"


def data_volume(key: str, name: str) -> str:
    return f"{PREFIX}-snapshot-{key}-{name}"


def shape(plan: LabPlan) -> dict[str, Any]:
    """What of a plan a snapshot depends on: every parameter, the AZs, and
    each node's name, AZ and roles; not the lab's name, subnets or addresses."""
    return {
        "engine": plan.engine, "parameters": plan.parameters, "network": plan.network_driver,
        "azs": [[a.name, a.priority] for a in plan.azs],
        "nodes": [[n.name, n.az, [r.value for r in n.roles]] for n in plan.nodes],
        "vips": [[v.name, v.az] for v in plan.vips],
        "disks": [[d.name, d.size_mb, d.kind, list(d.nodes), d.path] for d in plan.disks],
    }


def snapshot_key(plan: LabPlan, warm: WarmStart, image_id: str) -> str:
    """The key of a snapshot of ``plan``'s cluster on the image ``image_id``
    (``sha256:...``): 16 hex digits."""
    data = {"format": FORMAT, "warm_start": [type(warm).__name__, warm.format], "image": image_id, "shape": shape(plan)}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def save_lock(key: str) -> FileLock:
    """Held while a snapshot is saved, so that two labs of one key (parallel
    workers) save it once."""
    return FileLock(str(Path(tempfile.gettempdir()) / f"cmlab-snapshot-{key}.lock"), timeout=COPY_TIMEOUT_S)


def _about(volume: Any) -> StoredSnapshot | None:
    labels = volume.attrs.get("Labels") or {}
    try:
        about = json.loads(labels[ABOUT])
        return StoredSnapshot(labels[KEY], str(about["engine"]), str(about["lab"]), str(about["created"]),
                              str(about["image"]), tuple(str(n) for n in about["names"]))
    except (KeyError, TypeError, ValueError):
        return None


def find(client: docker.DockerClient, key: str) -> StoredSnapshot | None:
    """The complete snapshot of ``key``, or None."""
    try:
        return _about(client.volumes.get(marker_volume(key)))
    except NotFound:
        return None


def stored(client: docker.DockerClient) -> tuple[list[StoredSnapshot], list[str]]:
    """Every complete snapshot (oldest first), and the keys of incomplete
    ones (a save cut short, or one under way)."""
    complete: dict[str, StoredSnapshot] = {}
    keys: set[str] = set()
    for vol in client.volumes.list(filters={"label": [KEY]}):
        keys.add((vol.attrs.get("Labels") or {}).get(KEY, ""))
        about = _about(vol)
        if about is not None:
            complete[about.key] = about
    return sorted(complete.values(), key=lambda s: s.created), sorted(keys - set(complete) - {""})


def remove(client: docker.DockerClient, keys: Iterable[str] | None = None) -> int:
    """Remove the volumes of the snapshots ``keys`` (None: of every
    snapshot), the marker first so that none is restored half-removed.

    :returns: how many volumes were removed.
    :raises LabError: a volume is in use (a restore under way).
    """
    wanted = None if keys is None else set(keys)
    volumes = [v for v in client.volumes.list(filters={"label": [KEY]})
               if wanted is None or (v.attrs.get("Labels") or {}).get(KEY) in wanted]
    volumes.sort(key=lambda v: ABOUT not in (v.attrs.get("Labels") or {}))
    removed = 0
    for vol in volumes:
        try:
            vol.remove()
            removed += 1
        except NotFound:
            pass
        except APIError as exc:
            raise LabError(f"snapshot volume {vol.name} is in use ({exc.explanation}); "
                           "run `cmlab snapshots --prune` again once the `up` using it is done") from None
    return removed


def _copy(client: docker.DockerClient, plan: LabPlan, image: str, mounts: list[Mount], pairs: list[tuple[str, str]],
          what: str) -> None:
    """Copy each ``(from, to)`` folder's content, owners and modes kept, all
    at once (a disk is faster with several copies under way), in a container
    of ``image`` with ``mounts`` and no network.

    :raises LabError: a copy failed (the copier's output in the message).
    """
    started = " ".join(f"cp -a {shlex.quote(src)}/. {shlex.quote(dst)}/ & p{i}=$!;" for i, (src, dst) in enumerate(pairs))
    script = started + " " + " && ".join(f"wait $p{i}" for i in range(len(pairs)))
    try:
        client.containers.run(image, [script], entrypoint=["/bin/sh", "-c"], mounts=mounts, network_mode="none",
                              user="0", remove=True, stdout=True, stderr=True,
                              labels={L.LAB: plan.name, L.KIND: "snapshot-copy"},
                              name=f"{PREFIX}-{plan.name}-snapshot-copy")
    except ContainerError as exc:
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else str(exc.stderr)
        raise LabError(f"{what} failed (exit {exc.exit_status}): {err.strip()[-500:]}") from None


def save(client: docker.DockerClient, plan: LabPlan, key: str, image: str, image_id: str,
         saved: dict[str, SavedDir]) -> StoredSnapshot:
    """Copy each saved directory out of the lab's volumes into the snapshot's,
    then make the marker. Call under :func:`save_lock`.

    :param image: the image whose ``cp`` copies (the nodes' image).
    :raises LabError: the copy failed (the snapshot's volumes are removed).
    """
    labels = {KEY: key}
    mounts, pairs = [], []
    try:
        for name, where in saved.items():
            volume = data_volume(key, name)
            client.volumes.create(volume, labels={**labels, NAME: name})
            source = f"{plan.node(where.node).container}-{where.volume}"
            try:
                client.volumes.get(source)  # a mount would make a missing one, with no lab's label
            except NotFound:
                raise LabError(f"saving the snapshot {key}: lab '{plan.name}' has no volume {source}") from None
            mounts += [Mount(f"/from/{name}", source, type="volume", read_only=True),
                       Mount(f"/to/{name}", volume, type="volume")]
            pairs.append((f"/from/{name}/{where.path}".rstrip("/"), f"/to/{name}"))
        _copy(client, plan, image, mounts, pairs, f"saving the snapshot {key} of lab '{plan.name}'")
        about = {"engine": plan.engine, "lab": plan.name, "image": image_id, "names": sorted(saved),
                 "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        client.volumes.create(marker_volume(key), labels={**labels, ABOUT: json.dumps(about, sort_keys=True)})
    except BaseException:
        remove(client, [key])
        raise
    found = find(client, key)
    assert found is not None
    return found


def restore(client: docker.DockerClient, plan: LabPlan, image: str, snapshot: StoredSnapshot,
            fill: dict[tuple[str, str], str]) -> None:
    """Fill the lab's volumes (made, not yet used by a started container)
    from the snapshot: ``(node, volume suffix) -> saved name``.

    :raises LabError: a name is not in the snapshot, or the copy failed.
    """
    missing = sorted(set(fill.values()) - set(snapshot.names))
    if missing:
        raise LabError(f"snapshot {snapshot.key} has no {', '.join(missing)}; `cmlab snapshots --prune` removes it")
    mounts = [Mount(f"/snap/{name}", data_volume(snapshot.key, name), type="volume", read_only=True)
              for name in sorted(set(fill.values()))]
    pairs = []
    for (node, suffix), name in sorted(fill.items()):
        target = f"/to/{node}-{suffix}"
        mounts.append(Mount(target, f"{plan.node(node).container}-{suffix}", type="volume"))
        pairs.append((f"/snap/{name}", target))
    _copy(client, plan, image, mounts, pairs, f"restoring the snapshot {snapshot.key} into lab '{plan.name}'")
