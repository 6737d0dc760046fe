"""The cmlab exception tree.

Every error cmlab raises on purpose derives from :class:`CmlabError`; the CLI
prints its message (no traceback) and exits with status 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class CmlabError(Exception):
    """Base of every error cmlab raises on purpose."""


@dataclass(frozen=True)
class Issue:
    """One problem found in a topology.

    :param where: a dotted path into the document, e.g. ``nodes[1].az``.
    :param message: what is wrong.
    :param fix: what to change so that it is right.
    """

    where: str
    message: str
    fix: str = ""


class DocumentError(CmlabError):
    """A YAML document (a topology, a scenario) cannot be used as written.
    Nothing was created.

    :param source: the file (or ``<string>``) the document came from.
    :param issues: every problem found, each with its place and fix.
    :param positions: ``where`` -> ``(line, column)``, 1-based, when known.
    """

    #: What the document is, for messages.
    what = "document"
    #: The fix when the file is not there.
    missing_fix = "check the path"

    def __init__(
        self,
        source: str | Path,
        issues: list[Issue],
        positions: dict[str, tuple[int, int]] | None = None,
    ) -> None:
        self.source = str(source)
        self.issues = issues
        self.positions = positions or {}
        super().__init__(self._render())

    def _position(self, where: str) -> tuple[int, int] | None:
        """The position of ``where``, or of the nearest enclosing place that has
        one (a key that is missing is reported where its mapping is)."""
        while where:
            if where in self.positions:
                return self.positions[where]
            cut = max(where.rfind("."), where.rfind("["))
            if cut <= 0:
                return None
            where = where[:cut]
        return None

    def _render(self) -> str:
        lines = [f"{self.source}: the {self.what} is not valid ({len(self.issues)} problem(s))"]
        for issue in self.issues:
            pos = self._position(issue.where)
            at = f"{self.source}:{pos[0]}:{pos[1]}" if pos else self.source
            lines.append(f"  {at}: {issue.where}: {issue.message}")
            if issue.fix:
                lines.append(f"      fix: {issue.fix}")
        return "\n".join(lines)


class TopologyError(DocumentError):
    """The topology file cannot be used as written. Nothing was created."""

    what = "topology"
    missing_fix = "check the path, or name an example topology (`cmlab examples`)"


class ScenarioError(DocumentError):
    """The scenario file cannot be used as written. Nothing was run."""

    what = "scenario"
    missing_fix = "check the path, or name a built-in scenario (`cmlab scenarios`)"


class DockerUnavailable(CmlabError):
    """The Docker Engine cannot be reached (not installed, not running, or no permission)."""


class ImageBuildError(CmlabError):
    """An image could not be built; the message carries the failing step's output."""


class UnknownName(CmlabError, KeyError):
    """A name that is not in the lab (a node, an AZ, a host, a disk); the
    message lists the names there are. A ``KeyError`` too, for lookups that fall back."""

    def __str__(self) -> str:  # KeyError's own would quote the message
        return str(self.args[0]) if self.args else ""


class LabError(CmlabError):
    """A lab operation cannot go on (unknown lab, conflicting lab, failed start)."""


class WaitTimeout(CmlabError):
    """A bounded wait reached its deadline before its condition held."""


class EngineError(CmlabError):
    """The cluster manager refused or failed an operation (switchover...)."""


class UnknownEngine(UnknownName):
    """The topology names an engine that is not registered."""


class FaultError(CmlabError):
    """A fault cannot be applied or undone (bad target, nonsense for the
    engine, or a step failed). Nothing of it stays applied."""


class Unsupported(FaultError):
    """This host cannot do the fault (a missing kernel feature, tool or
    privilege); the message says what is missing."""
