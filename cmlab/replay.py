"""``cmlab replay BUNDLE``: bring a bundled run back and run it again.

1. Unpack the bundle (:mod:`cmlab.bundle`); load its images if it carries them.
2. Bring up the same lab from the bundle's resolved topology (same names,
   subnets, addresses, parameters), building images where needed.
3. Check the images: the same ID as the bundle's, or (a rebuild from the
   recipe) the package manifests compared and every difference listed; a
   different tag means a different recipe here.
4. Run the same scenario (the bundle's ``scenario.yaml``) with the same seed,
   trial count and probe cadence.
5. Compare, trial by trial: the verdicts exactly, the timings within
   :data:`TOLERANCE_S` seconds or :data:`TOLERANCE_RELATIVE` of the bundle's,
   whichever is larger. The replay matches when every verdict does; timings
   out of tolerance are shown, not failed (a cluster's timing varies from run
   to run; a verdict that flips is the bug coming back, or going away).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from docker.errors import DockerException

from cmlab.bundle import IMAGES_TAR, LAB_DIR, image_manifest, images_of, unpack
from cmlab.checkers.metrics import SUMMARISED
from cmlab.errors import CmlabError
from cmlab.probes.probeset import Cadence
from cmlab.scenarios import loads
from cmlab.state import results_dir
from cmlab.trials import Run, run_scenario

if TYPE_CHECKING:
    from cmlab.api import Lab

#: Timings match within this many seconds, or :data:`TOLERANCE_RELATIVE`, whichever is larger.
TOLERANCE_S = 2.0
TOLERANCE_RELATIVE = 0.5


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
    run: Run
    images: list[ImageCheck]
    rows: list[Row]

    @property
    def verdicts_match(self) -> bool:
        return all(r.ok for r in self.rows if r.kind == "verdict")


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
            rows.append(Row(t["trial"], name, t.get(name), r.get(name), within(t.get(name), r.get(name)), "timing"))
    return rows


def check_images(lab: "Lab", run_dir: Path) -> list[ImageCheck]:
    """The lab's images against the bundle's (see the module doc)."""
    recorded = json.loads((run_dir / LAB_DIR / "images.json").read_text())
    if not isinstance(recorded, list):
        return [ImageCheck("-", None, None, None, None, f"unreadable: the bundle has no image list ({recorded})")]
    here = {i["container"]: i for i in images_of(lab)}
    checks = []
    for before in recorded:
        now = here.get(before["container"], {"tag": None, "id": None})
        check = ImageCheck(before["container"], before["tag"], before["id"], now["tag"], now["id"], "same image")
        if now["id"] != before["id"]:
            check.how = "rebuilt: same packages" if now["tag"] == before["tag"] else "recipe differs"
            manifest = run_dir / LAB_DIR / "packages" / f"{str(before['tag']).replace('/', '_').replace(':', '_')}.txt"
            try:
                check.differences = manifest_differences(manifest.read_text(), image_manifest(lab, now["tag"]))
            except (OSError, CmlabError) as exc:
                check.how, check.differences = "unreadable", [str(exc)]
            if check.differences and check.how == "rebuilt: same packages":
                check.how = "rebuilt: packages differ"
        checks.append(check)
    return checks


def _load_images(lab: "Lab", run_dir: Path) -> None:
    tar = run_dir / IMAGES_TAR
    if not tar.exists():
        return
    try:
        with open(tar, "rb") as f:
            lab.client.images.load(f.read())
    except (DockerException, OSError) as exc:
        raise CmlabError(f"cannot load the bundle's images from {tar}: {exc}") from None


def unpack_bundle(bundle: Path) -> tuple[Path, Path]:
    """Unpack a bundle for replay: ``(run directory, its resolved topology file)``.

    :raises CmlabError: not a bundle.
    """
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    run_dir = unpack(bundle, results_dir("replay") / stamp)
    return run_dir, run_dir / LAB_DIR / "topology.yaml"


def replay_on(lab: "Lab", run_dir: Path, keep: bool = False) -> ReplayResult:
    """Replay an unpacked bundle on ``lab`` (made from its topology, see
    :func:`cmlab.api.replay`); the lab is removed afterwards unless ``keep``.

    :raises CmlabError: the lab cannot come up, or a step of the scenario failed.
    """
    meta = json.loads((run_dir / "run.json").read_text())
    before = json.loads((run_dir / "report.json").read_text())
    scenario = loads((run_dir / "scenario.yaml").read_text(), str(run_dir / "scenario.yaml"), meta["scenario"])
    try:
        _load_images(lab, run_dir)
        lab.up()
        checks = check_images(lab, run_dir)
        trials = int(meta.get("trials") or len(before["trials"]))
        cadence = Cadence(*meta["cadence_s"]) if meta.get("cadence_s") else None
        run = run_scenario(lab, scenario, trials, cadence=cadence, seed=int(meta["seed"]),
                           directory=run_dir.parent / f"replay-{run_dir.name}")
        after = json.loads((run.directory / "report.json").read_text())
        return ReplayResult(run_dir, run, checks, compare(before, after))
    finally:
        if not keep:
            lab.down()
