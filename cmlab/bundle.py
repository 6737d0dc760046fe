"""Run bundles: everything a colleague needs to see a run's bug again.

Every run directory gets a ``lab/`` folder when the run ends
(:func:`capture_run`):

* ``topology.yaml``: the resolved topology, every subnet, address and
  parameter written out (it resolves to the very plan that ran), and
  ``plan.json``;
* ``images.json``: the image of each container (tag, which is the recipe's
  content hash, and ID) and ``packages/<tag>.txt``, the image's package
  manifest;
* ``config/<node>/...``: every file and the environment the engine generated
  for each node;
* ``doctor.json``: what the host could do (``cmlab doctor``);
* the lab at the end: ``status``, the manager's own account, active faults,
  each node's nftables and qdiscs, the lab's event log and the containers'
  logs (:func:`capture_lab`, also the pytest plugin's forensics).

With ``scenario.yaml``, ``run.json`` (the seed) and the trials' histories,
step timelines and metrics beside it, the run directory is the bundle;
:func:`pack` makes it one ``.tar.zst`` file (optionally with the images,
``docker save``), and :func:`cmlab.archive.unpack` reads someone else's back,
trusting nothing in it. Secrets are scrubbed from every text the bundle
copies from the lab (:func:`scrub`).
"""

from __future__ import annotations

import json
import os
import re
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from docker.errors import DockerException

from cmlab import archive
from cmlab.archive import IMAGES_TAR
from cmlab.errors import CmlabError
from cmlab.events import EventLog
from cmlab.runtime.capabilities import capabilities
from cmlab.runtime import labels
from cmlab.runtime.netns import ContainerNetns
from cmlab.topology.plan import LabPlan

if TYPE_CHECKING:
    from cmlab.lab import Lab

#: The folder of a run directory that holds the lab's side of the bundle.
LAB_DIR = "lab"
MANIFEST = "/etc/cmlab/packages.txt"
SCRUBBED = "***"
_SECRETS = [
    # key: value, key=value, "key": "value" (YAML, ini, DSNs, JSON, environment)
    re.compile(r"(?i)((?:password|passwd|secret|token)[\w-]*[\"']?\s*[:=]\s*[\"']?)([^\s\"',}]+)"),
    # SQL: PASSWORD 'value'
    re.compile(r"(?i)(password\s+')([^']*)"),
]


def scrub(text: str) -> str:
    """``text`` with the values of password-, secret- and token-like keys replaced by ``***``."""
    for pattern in _SECRETS:
        text = pattern.sub(lambda m: m.group(1) + SCRUBBED, text)
    return text


def _write(path: Path, text: str, scrubbed: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(scrub(text) if scrubbed else text)


def capture_lab(lab: "Lab", dest: Path) -> Path:
    """Write the lab as it is now into ``dest``: status, the manager's own
    account (``cm_ctl query``/``show``, Patroni's /cluster), active faults,
    each node's nftables and qdiscs, the event log and the containers' logs.
    Every part that cannot be read says why in its file; nothing raises."""
    dest.mkdir(parents=True, exist_ok=True)
    try:
        st = lab.status()
        (dest / "status.json").write_text(json.dumps(st.to_json(), indent=2))
        lines = [f"{r.node:8} {r.az:6} {r.address:15} {r.role:14} lag={r.lag_bytes} healthy={r.healthy} {r.detail} vips={r.vips}"
                 for r in st.rows]
        (dest / "status.txt").write_text("\n".join(lines) + f"\nready: {st.ready} {st.not_ready}\n")
    except Exception as exc:  # noqa: BLE001 - a capture never hides what it was called for
        (dest / "status.txt").write_text(f"status unavailable: {exc}\n")
    try:
        (dest / "faults.json").write_text(json.dumps([{**r, "observed": seen} for r, seen in lab.nemesis().active()], indent=2))
    except Exception as exc:  # noqa: BLE001
        (dest / "faults.json").write_text(json.dumps({"error": str(exc)}))
    try:
        manager = lab.diagnostics()
        _write(dest / "manager.txt", "".join(f"# {title}\n{text.rstrip()}\n\n" for title, text in manager.items()))
    except Exception as exc:  # noqa: BLE001
        (dest / "manager.txt").write_text(f"manager's account unavailable: {exc}\n")
    events = EventLog.of_lab(lab.plan.name)
    if events.path.exists():
        (dest / "events.jsonl").write_text(events.path.read_text())
    for c in lab.runtime.containers(lab.plan.name):
        _write(dest / f"{c.name}.log", c.logs(tail=2000).decode(errors="replace"))
        if os.geteuid() == 0 and c.status == "running" and not lab.plan.hosts:  # a remote PID is not ours
            with suppress(CmlabError):
                ns = ContainerNetns(c)
                nft = ns.run(["nft", "list", "ruleset"], check=False).stdout
                tc = ns.run(["tc", "qdisc", "show"], check=False).stdout
                (dest / f"{c.name}.net.txt").write_text(f"# nft list ruleset\n{nft}\n# tc qdisc show\n{tc}")
    return dest


def image_manifest(lab: "Lab", image: str) -> str:
    """The package manifest (``/etc/cmlab/packages.txt``) of an image, read
    from a throw-away container labelled with the lab.

    :raises CmlabError: the image has no manifest or cannot run.
    """
    try:
        out = lab.client.containers.run(image, ["cat", MANIFEST], entrypoint=[], remove=True, network_mode="none",
                                        labels={labels.LAB: lab.plan.name, labels.KIND: "manifest"})
    except DockerException as exc:
        raise CmlabError(f"cannot read {MANIFEST} of image {image}: {exc}") from None
    return out.decode(errors="replace")


def images_of(lab: "Lab") -> list[dict[str, Any]]:
    """The image of each of the lab's containers: ``{"container", "tag", "id"}``."""
    out = []
    for c in lab.runtime.containers(lab.plan.name):
        tags = c.image.tags if c.image else []
        out.append({"container": c.name, "tag": tags[0] if tags else None, "id": c.image.id if c.image else None})
    return sorted(out, key=lambda i: i["container"])


def capture_run(lab: "Lab", run_dir: Path) -> Path:
    """Write the lab's side of a run's bundle into ``run_dir/lab`` (see the
    module doc). Parts that cannot be read say why; nothing raises."""
    dest = run_dir / LAB_DIR
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "plan.json").write_text(lab.plan.to_json())
    (dest / "topology.yaml").write_text(
        "# The resolved topology of the run: it brings up the same lab (cmlab replay).\n"
        + yaml.safe_dump(lab.plan.to_topology(), sort_keys=False))
    try:
        images = images_of(lab)
        (dest / "images.json").write_text(json.dumps(images, indent=2))
        for tag in sorted({i["tag"] for i in images if i["tag"]}):
            path = dest / "packages" / f"{tag.replace('/', '_').replace(':', '_')}.txt"
            try:  # package names and versions only (base-passwd=3.6.1 is no secret)
                _write(path, image_manifest(lab, tag), scrubbed=False)
            except CmlabError as exc:
                _write(path, f"# unavailable: {exc}\n")
    except DockerException as exc:
        (dest / "images.json").write_text(json.dumps({"error": str(exc)}))
    for node in lab.plan.nodes:
        spec = lab.engine.container(lab.plan, node)
        for path, f in spec.files.items():
            content = f.content if isinstance(f.content, str) else f.content.decode(errors="replace")
            _write(dest / "config" / node.name / path.lstrip("/"), content)
        _write(dest / "config" / node.name / "env.json", json.dumps(spec.env, indent=2, sort_keys=True))
    (dest / "doctor.json").write_text(json.dumps(
        {name: {"ok": c.ok, "detail": c.detail, "enables": c.enables} for name, c in capabilities().items()}, indent=2))
    capture_lab(lab, dest / "end")
    return dest


def plan_of(run_dir: Path) -> LabPlan:
    """The plan a bundled run ran with.

    :raises CmlabError: the run directory has no ``lab/plan.json`` (not a bundle).
    """
    path = run_dir / LAB_DIR / "plan.json"
    if not path.exists():
        raise CmlabError(f"{run_dir} is not a run bundle ({path} is missing)")
    return LabPlan.from_json(path.read_text())


def pack(run_dir: Path, out: Path, with_images: bool = False, client: Any = None) -> Path:
    """Pack a run directory into one ``.tar.zst`` file (the images too, with
    ``with_images``: ``docker save`` of each image in ``lab/images.json``).

    :raises CmlabError: ``run_dir`` is not a run bundle, or an image cannot be saved.
    """
    plan_of(run_dir)
    tmp_images = run_dir / IMAGES_TAR
    try:
        if with_images:
            _save_images(run_dir, tmp_images, client)
        archive.pack(run_dir, out)
    finally:
        tmp_images.unlink(missing_ok=True)
    return out


def _save_images(run_dir: Path, dest: Path, client: Any) -> None:
    from cmlab.runtime.client import connect

    client = client or connect()
    images = json.loads((run_dir / LAB_DIR / "images.json").read_text())
    tags = sorted({i["tag"] for i in images if i.get("tag")})
    try:
        with open(dest, "wb") as f:
            for chunk in client.api.get_image(tags) if len(tags) > 1 else client.images.get(tags[0]).save(named=True):
                f.write(chunk)
    except (DockerException, IndexError) as exc:
        raise CmlabError(f"cannot save the images {', '.join(tags) or '(none recorded)'}: {exc}") from None
