"""``cmlab replay BUNDLE``: bring a bundled run back and run it again.

A bundle is someone else's file, replayed as root, so a replay happens in
two stages, and the first creates nothing but the unpacked bundle:

1. **Review** (:func:`review`): unpack the bundle safely
   (:func:`cmlab.archive.unpack`), read its files as hostile input (sizes,
   types, ranges: :class:`RunMeta`, :class:`BundleReport`), check that its
   ``plan.json`` is what its topology resolves to, and decide what the replay
   will create and use: a lab of its own (the bundle's name, or a new one when
   a lab of that name exists here), subnets (the bundle's, or fresh ones when
   they are taken here), the images (loaded from the bundle under a tag of the
   replay's own, or built here from cmlab's recipes), the parameters that
   differ from the engine's defaults, the scenario and its seed.
   What would reach outside the lab is refused (:attr:`Review.refusals`) unless
   the user says so: parameters naming the host's files or images
   (:attr:`~cmlab.engines.base.Engine.host_inputs`: the user gives them again,
   ``--set``), ``hosts:`` endpoints (``allow_hosts``), parameters whose value
   the cluster runs as a command (``trust_commands``).
2. **Run** (:func:`run`): load the images (tags stripped: a bundle never
   re-points a tag of this host), bring up the lab, check the images (the same
   ID as the bundle's, or a rebuild from the recipe with the package manifests
   compared and every difference listed, or another recipe), run the same
   scenario with the same seed, trial count and probe cadence, and compare
   trial by trial: the verdicts exactly, the timings within
   :data:`TOLERANCE_S` seconds or :data:`TOLERANCE_RELATIVE` of the bundle's,
   whichever is larger. The lab is the replay's own, so removing it afterwards
   touches nothing else.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
import tempfile
from dataclasses import dataclass, field
from ipaddress import IPv4Network
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from docker.errors import DockerException
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cmlab.images.tags import remove_replay_tags, replay_tag
from cmlab.archive import IMAGES_TAR, BundleRefused, unpack
from cmlab.bundle import LAB_DIR, image_manifest, images_of
from cmlab.checkers.metrics import SUMMARISED
from cmlab.errors import CmlabError, DocumentError
from cmlab.probes.probeset import Cadence
from cmlab.scenarios import Scenario, loads
from cmlab.topology.plan import LabPlan
from cmlab.topology.yaml_source import MAX_BYTES as MAX_DOCUMENT_BYTES

if TYPE_CHECKING:
    from cmlab.lab import Lab
    from cmlab.trials import Run

#: Timings match within this many seconds, or :data:`TOLERANCE_RELATIVE`, whichever is larger.
TOLERANCE_S = 2.0
TOLERANCE_RELATIVE = 0.5
#: Largest JSON file of a bundle read whole (report.json of many trials), bytes.
MAX_JSON_BYTES = 32 * 1024**2
#: Lab names are at most this long (topology names: 20 characters).
_NAME_MAX = 20


class RunMeta(BaseModel):
    """A bundle's ``run.json``, as far as a replay uses it."""

    model_config = ConfigDict(extra="ignore")
    scenario: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    seed: int = Field(ge=0, lt=2**64)
    trials: int | None = Field(None, ge=1, le=1000)
    #: The probes' intervals (writes, fast observers, role observers), seconds: each over 0, at most 60.
    cadence_s: tuple[Annotated[float, Field(gt=0, le=60)], Annotated[float, Field(gt=0, le=60)],
                     Annotated[float, Field(gt=0, le=60)]] | None = None

    def cadence(self) -> Cadence | None:
        return None if self.cadence_s is None else Cadence(*self.cadence_s)


class _ReportTrial(BaseModel):
    model_config = ConfigDict(extra="allow")
    trial: int = Field(ge=1, le=1000)
    verdicts: dict[str, bool | None]


class BundleReport(BaseModel):
    """A bundle's ``report.json``, as far as a replay compares it."""

    model_config = ConfigDict(extra="ignore")
    trials: list[_ReportTrial] = Field(min_length=1, max_length=1000)


@dataclass
class ImageCheck:
    """One image of the bundle against the one here.

    :param how: ``same image``, ``rebuilt: same packages``, ``rebuilt: packages differ``,
        ``recipe differs`` (another tag here) or ``unreadable``.
    """

    container: str
    bundle_tag: str | None
    bundle_id: str | None
    tag: str | None
    id: str | None
    how: str
    differences: list[str] = field(default_factory=list)


@dataclass
class Row:
    trial: int
    name: str
    bundle: Any
    replay: Any
    ok: bool
    #: ``verdict`` (must be equal) or ``timing`` (seconds, within tolerance).
    kind: str


@dataclass
class ReplayResult:
    run_dir: Path
    run: "Run"
    images: list[ImageCheck]
    rows: list[Row]

    @property
    def verdicts_match(self) -> bool:
        return all(r.ok for r in self.rows if r.kind == "verdict")


@dataclass
class Review:
    """What a replay will create and use, decided before anything is created.

    :param run_dir: the unpacked bundle's run directory (the replay's own copy).
    :param plan: the lab the replay will bring up (resolved, not created).
    :param lab: that lab's handle; None while a refusal keeps cmlab from resolving
        it against Docker (a lab across hosts not allowed: its hosts are not contacted).
    :param bundle_lab: the lab as the bundle ran it (its ``plan.json``).
    :param images: images the bundle carries: ``{"id", "tags", "bytes"}`` each,
        to be loaded without their tags; empty: built here from cmlab's recipes.
    :param node_image: the bundle's image ID the nodes will run (with ``images``).
    :param changed: the parameters that differ from the engine's defaults: key -> value.
    :param given: host inputs the user gave again (``--set``): key -> value.
    :param refusals: what keeps the replay from running, each with the option that allows it.
    :param notes: what differs from the bundle's lab, and why (a new name, new subnets).
    """

    run_dir: Path
    plan: LabPlan
    lab: "Lab | None"
    bundle_lab: LabPlan
    scenario: Scenario
    meta: RunMeta
    report: BundleReport
    images: list[dict[str, Any]] = field(default_factory=list)
    node_image: str | None = None
    changed: dict[str, Any] = field(default_factory=dict)
    given: dict[str, Any] = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)
    #: The nodes' image when the bundle carries none: its tag and whether it is here or to be built.
    build: str = ""
    refusals: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def trials(self) -> int:
        return self.meta.trials or len(self.report.trials)

    def discard(self) -> None:
        """Remove the unpacked bundle (a replay refused or declined leaves nothing)."""
        shutil.rmtree(self.run_dir.parent, ignore_errors=True)

    def lines(self) -> list[str]:
        """The review as a person reads it: one fact a line."""
        plan = self.plan
        out = [f"bundle: {self.run_dir.name} (unpacked at {self.run_dir})",
               f"lab to create: '{plan.name}' ({plan.engine}, {len(plan.nodes)} nodes: "
               f"{', '.join(n.name for n in plan.nodes)})"]
        out += [f"  {note}" for note in self.notes]
        out += [f"network: AZ {a.name} {a.subnet} ({plan.network_driver})" for a in plan.azs]
        out += [f"VIP: {v.name} {v.address}" for v in plan.vips]
        out += [f"disk: {d.name}, {d.size_mb} MiB sparse file and loop device on this host, seen by "
                f"{', '.join(d.nodes)} at {d.path}" for d in plan.disks]
        out += [f"remote Docker host: {h.name} at {h.endpoint} (address {h.address})" for h in plan.hosts]
        if self.images:
            out += [f"image to load from the bundle: {i['id']} ({i['bytes'] / 1e6:.0f} MB; its tags "
                    f"{', '.join(i['tags']) or 'none'} are dropped; loaded as {replay_tag(plan.name, i['id'])})"
                    for i in self.images]
            out.append(f"the nodes run the bundle's image {self.node_image}")
        else:
            out.append(f"the nodes' image: {self.build or 'built here from cmlab' + chr(39) + 's recipe'}")
        out += [f"host input given again: {k} = {v}" for k, v in self.given.items()]
        out += [f"parameter differing from {plan.engine}'s defaults: {k} = {json.dumps(v)}" for k, v in self.changed.items()]
        out += [f"runs commands: {c} = {json.dumps(_dotted(plan.parameters, c))}" for c in self.commands]
        cadence = self.meta.cadence_s
        out.append(f"scenario: {self.scenario.name} ({self.scenario.summary.strip()}), seed {self.meta.seed}, "
                   f"{self.trials} trial(s)" + (f", probe cadence {', '.join(f'{c:g}' for c in cadence)} s" if cadence else ""))
        return out


def _dotted(params: dict[str, Any], path: str) -> Any:
    value: Any = params
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def read_json(path: Path, what: str) -> Any:
    """A JSON file of a bundle, read as hostile input.

    :raises BundleRefused: missing, too large, not UTF-8, not JSON, or nested past the parser.
    """
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            raise BundleRefused(f"{what} ({path.name}) is larger than {MAX_JSON_BYTES // 1024**2} MiB")
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BundleRefused(f"{what} ({path}) cannot be read: {exc.strerror}") from None
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BundleRefused(f"{what} ({path.name}) is not a JSON document: {str(exc)[:200]}") from None


def read_model(path: Path, model: type[BaseModel], what: str) -> Any:
    try:
        return model.model_validate(read_json(path, what))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "the document"
        raise BundleRefused(f"{what} ({path.name}): {where}: {first['msg']}") from None


def read_text(path: Path, what: str) -> str:
    try:
        if path.stat().st_size > MAX_DOCUMENT_BYTES:
            raise BundleRefused(f"{what} ({path.name}) is larger than {MAX_DOCUMENT_BYTES} bytes")
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BundleRefused(f"{what} ({path}) cannot be read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise BundleRefused(f"{what} ({path.name}) is not UTF-8 text") from None


def unpack_bundle(bundle: Path, parent: Path, max_bytes: int | None = None) -> tuple[Path, RunMeta, BundleReport, Scenario, LabPlan]:
    """Unpack a bundle and read what a replay needs, as hostile input.

    :returns: ``(run directory, run.json, report.json, the scenario, plan.json)``.
    :raises BundleRefused: see :func:`cmlab.archive.unpack` and the readers; the
        unpacked directory is removed.
    """
    run_dir = unpack(bundle, parent, max_bytes)
    try:
        meta = read_model(run_dir / "run.json", RunMeta, "the run's record")
        report = read_model(run_dir / "report.json", BundleReport, "the run's report")
        text = read_text(run_dir / "scenario.yaml", "the scenario")
        scenario = loads(text, f"{bundle}:{run_dir.name}/scenario.yaml", meta.scenario)
        plan_text = read_text(run_dir / LAB_DIR / "plan.json", "the lab's plan")
        try:
            plan = LabPlan.from_json(plan_text)
        except ValidationError as exc:
            raise BundleRefused(f"the lab's plan (lab/plan.json) is not a cmlab plan: {str(exc).splitlines()[0]}") from None
        return run_dir, meta, report, scenario, plan
    except (BundleRefused, DocumentError, ValueError) as exc:
        shutil.rmtree(run_dir.parent, ignore_errors=True)
        if isinstance(exc, BundleRefused):
            raise
        raise BundleRefused(f"{bundle} is refused as a cmlab bundle: {exc}") from None


def free_name(name: str, taken: set[str]) -> str:
    """``name`` if free, else ``<name>-rN`` (shortened to fit a lab name) for the smallest free N."""
    if name not in taken:
        return name
    for n in range(1, 1000):
        suffix = f"-r{n}"
        candidate = name[:_NAME_MAX - len(suffix)].rstrip("-") + suffix
        if candidate not in taken:
            return candidate
    raise CmlabError(f"no free lab name like '{name}-rN' here; give one with --name")


def overlapping(subnets: list[IPv4Network], used: list[IPv4Network]) -> list[str]:
    """``"<subnet> overlaps <used>"`` for each AZ subnet that overlaps a subnet in use here."""
    return [f"{s} overlaps {u}, in use here" for s in subnets for u in used if s.overlaps(u)]


def image_archive(run_dir: Path) -> Path | None:
    tar = run_dir / IMAGES_TAR
    return tar if tar.is_file() else None


def archive_images(tar_path: Path) -> list[dict[str, Any]]:
    """The images a ``docker save`` archive holds: ``{"id", "tags", "bytes"}``
    each, read from its ``manifest.json`` (no Docker needed).

    :raises BundleRefused: not a ``docker save`` archive.
    """
    try:
        with tarfile.open(tar_path, "r:") as tar:
            member = tar.getmember("manifest.json")
            if member.size > MAX_JSON_BYTES:
                raise BundleRefused("images.tar's manifest.json is too large")
            f = tar.extractfile(member)
            assert f is not None
            manifest = json.loads(f.read())
    except (KeyError, OSError, tarfile.TarError, ValueError, RecursionError) as exc:
        raise BundleRefused(f"images.tar is not a `docker save` archive ({exc})") from None
    size = tar_path.stat().st_size
    out = []
    for entry in manifest if isinstance(manifest, list) else []:
        config = str(entry.get("Config", "")) if isinstance(entry, dict) else ""
        digest = config.rsplit("/", 1)[-1].removesuffix(".json")
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise BundleRefused(f"images.tar: an image whose configuration is not named by its digest ({config[:80]!r})")
        tags = entry.get("RepoTags") or []
        out.append({"id": f"sha256:{digest}", "tags": [str(t) for t in tags] if isinstance(tags, list) else [],
                    "bytes": size})
    if not out:
        raise BundleRefused("images.tar lists no image")
    return out


#: Annotations of an OCI image index that name a tag (Docker 25 and later load them as tags).
_NAME_ANNOTATIONS = ("io.containerd.image.name", "org.opencontainers.image.ref.name")


def untagged_archive(tar_path: Path, out: Path) -> None:
    """Copy a ``docker save`` archive with every tag taken out (``manifest.json``'s
    ``RepoTags``, the legacy ``repositories`` file, the OCI index's name
    annotations), so that ``docker load`` of it can re-point no tag here."""
    with tarfile.open(tar_path, "r:") as src, tarfile.open(out, "w:") as dst:
        for member in src:
            if member.name == "repositories":
                continue
            if member.name in ("manifest.json", "index.json") and member.isfile():
                f = src.extractfile(member)
                assert f is not None
                doc = json.loads(f.read())
                if member.name == "manifest.json":
                    for entry in doc:
                        entry["RepoTags"] = None
                else:
                    for m in doc.get("manifests", []):
                        for key in _NAME_ANNOTATIONS:
                            (m.get("annotations") or {}).pop(key, None)
                data = json.dumps(doc).encode()
                info = tarfile.TarInfo(member.name)
                info.size, info.mode, info.mtime = len(data), 0o644, member.mtime
                dst.addfile(info, io.BytesIO(data))
                continue
            if member.issym() or member.islnk():
                dst.addfile(member)  # layer links inside the archive; Docker resolves them within it
            else:
                dst.addfile(member, src.extractfile(member) if member.isfile() else None)


def load_images(lab: "Lab", review: Review) -> dict[str, str]:
    """Load the bundle's images without their tags and tag each under the
    replay's own name (:func:`replay_tag`).

    :returns: image ID -> the replay's tag.
    :raises CmlabError: the archive cannot be loaded, or an image is not there afterwards.
    """
    tar = image_archive(review.run_dir)
    if tar is None:
        return {}
    tags = {}
    with tempfile.TemporaryDirectory(prefix="untagged-", dir=review.run_dir.parent) as tmp:
        clean = Path(tmp) / IMAGES_TAR
        try:
            untagged_archive(tar, clean)
            with open(clean, "rb") as f:
                for chunk in lab.client.api.load_image(f):
                    if "error" in chunk:
                        raise CmlabError(f"cannot load the bundle's images: {chunk['error']}")
        except (DockerException, OSError, tarfile.TarError, ValueError) as exc:
            raise CmlabError(f"cannot load the bundle's images from {tar}: {exc}") from None
    for image in review.images:
        tag = replay_tag(lab.plan.name, image["id"])
        try:
            lab.client.images.get(image["id"]).tag(*tag.split(":"))
        except DockerException as exc:
            raise CmlabError(f"the bundle's image {image['id']} is not here after loading it: {exc}") from None
        tags[image["id"]] = tag
    return tags


def manifest_differences(before: str, after: str) -> list[str]:
    """Package differences between two ``packages.txt`` manifests (lines
    ``name=version``, or ``name version``): ``name: 1.0 -> 1.1``, ``name:
    added``, ``name: removed``."""
    def parse(text: str) -> dict[str, str]:
        out = {}
        for line in text.splitlines():
            if not line.strip() or line.startswith("#"):
                continue
            name, _, version = line.partition("=") if "=" in line else line.partition(" ")
            out[name.strip()] = version.strip()
        return out

    a, b = parse(before), parse(after)
    diffs = [f"{p}: {a[p]} -> {b[p]}" for p in sorted(a.keys() & b.keys()) if a[p] != b[p]]
    diffs += [f"{p}: removed" for p in sorted(a.keys() - b.keys())]
    diffs += [f"{p}: added" for p in sorted(b.keys() - a.keys())]
    return diffs


def within(before: float | None, after: float | None) -> bool:
    """Two timings (seconds) agree within the tolerance; both absent agree too."""
    if before is None or after is None:
        return before is None and after is None
    return abs(after - before) <= max(TOLERANCE_S, TOLERANCE_RELATIVE * abs(before))


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def compare(before: dict[str, Any], after: dict[str, Any]) -> list[Row]:
    """Rows of two ``report.json`` documents, trial by trial: every verdict, then every summarised timing."""
    rows = []
    replayed = {t["trial"]: t for t in after["trials"]}
    for t in before["trials"]:
        r = replayed.get(t["trial"], {"verdicts": {}})
        for name, verdict in t["verdicts"].items():
            got = r["verdicts"].get(name)
            rows.append(Row(t["trial"], name, verdict, got, got == verdict, "verdict"))
        for name in SUMMARISED:
            was, now = _number(t.get(name)), _number(r.get(name))
            rows.append(Row(t["trial"], name, was, now, within(was, now), "timing"))
    return rows


def check_images(lab: "Lab", run_dir: Path, bundle_lab: str) -> list[ImageCheck]:
    """The lab's images against the bundle's (see the module doc); containers
    are matched by what follows their lab's name (``cmlab-<lab>-pg1``: ``pg1``),
    so a replay under another name compares the same nodes."""
    try:
        recorded = read_json(run_dir / LAB_DIR / "images.json", "the images' list")
    except BundleRefused as exc:
        recorded = str(exc)
    if not isinstance(recorded, list) or not all(isinstance(i, dict) for i in recorded):
        return [ImageCheck("-", None, None, None, None, f"unreadable: the bundle has no image list ({str(recorded)[:200]})")]
    here = {i["container"].removeprefix(f"cmlab-{lab.plan.name}-"): i for i in images_of(lab)}
    checks = []
    for before in recorded:
        container, tag, image_id = (str(before.get(k)) if before.get(k) is not None else None
                                    for k in ("container", "tag", "id"))
        now = here.get(str(container).removeprefix(f"cmlab-{bundle_lab}-"), {"tag": None, "id": None})
        check = ImageCheck(str(container), tag, image_id, now["tag"], now["id"], "same image")
        if now["id"] != image_id:
            check.how = "rebuilt: same packages" if now["tag"] == tag else "recipe differs"
            manifest = run_dir / LAB_DIR / "packages" / f"{str(tag).replace('/', '_').replace(':', '_')}.txt"
            try:
                if now["tag"] is None:
                    raise CmlabError(f"no container of the replay matches {container}")
                check.differences = manifest_differences(read_text(manifest, "a package manifest"),
                                                         image_manifest(lab, now["tag"]))
            except CmlabError as exc:
                check.how, check.differences = "unreadable", [str(exc)]
            if check.differences and check.how == "rebuilt: same packages":
                check.how = "rebuilt: packages differ"
        checks.append(check)
    return checks


def run(review: Review, keep: bool = False) -> ReplayResult:
    """Run a reviewed replay (:func:`cmlab.api.review_replay`): its lab is
    created here, and it and the tags its images were loaded under are removed
    afterwards unless ``keep``. Nothing else is touched: the lab's name was free
    when the review was made.

    :raises CmlabError: the review has refusals, the lab cannot come up, or a step of the scenario failed.
    """
    from cmlab.trials import run_scenario

    if review.refusals or review.lab is None:
        raise CmlabError("the replay is refused:\n" + "\n".join(f"  {r}" for r in review.refusals))
    lab = review.lab
    before = read_json(review.run_dir / "report.json", "the run's report")
    try:
        if review.images:
            load_images(lab, review)
            lab.node_image = replay_tag(lab.plan.name, str(review.node_image))
        lab.up()
        checks = check_images(lab, review.run_dir, review.bundle_lab.name)
        run_result = run_scenario(lab, review.scenario, review.trials, cadence=review.meta.cadence(), seed=review.meta.seed,
                                  directory=review.run_dir.parent / f"replay-{review.run_dir.name}")
        after = json.loads((run_result.directory / "report.json").read_text())
        return ReplayResult(review.run_dir, run_result, checks, compare(before, after))
    finally:
        if not keep:
            lab.down()
            remove_replay_tags(lab.client, lab.plan.name)
