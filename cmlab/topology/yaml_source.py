"""Safe YAML loading that remembers where every value came from (topologies
and scenario files).

PyYAML's ``safe_load`` forgets positions, silently keeps the last of two
duplicate keys and expands aliases (the "billion laughs" blow-up). A topology
is small and hand-written, so we refuse aliases and duplicate keys outright,
cap the file size, and keep a map from each value's path (``nodes[1].az``) to
its line and column so that every error can point at the place to fix.

Documents come from other people (a bundle is replayed as root), so the
reader never ends in anything but a :class:`~cmlab.errors.DocumentError`:
nesting deeper than :data:`MAX_DEPTH` (PyYAML's composer recurses), integers
longer than :data:`MAX_DIGITS` digits (Python refuses 4300 and more, and
nothing cmlab reads needs more than a few), NUL and other characters YAML
forbids, and non-UTF-8 bytes are refused with their place. Timestamps stay
the strings they were written as (``2024-13-45`` is not a date; nothing cmlab
reads is one).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from cmlab.errors import DocumentError, Issue, TopologyError

#: Largest topology file accepted, in bytes. Real topologies are a few KiB.
MAX_BYTES = 256 * 1024
#: Deepest nesting of mappings and sequences accepted (a topology needs 4).
MAX_DEPTH = 32
#: Longest integer accepted, in characters (sign and base prefix included).
MAX_DIGITS = 40

Positions = dict[str, tuple[int, int]]


class _NoAliasLoader(yaml.SafeLoader):
    """SafeLoader that rejects anchors and aliases at parse time, nesting past
    :data:`MAX_DEPTH`, and integers past :data:`MAX_DIGITS`; timestamps stay strings."""

    what = "document"
    depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:  # type: ignore[override]
        if self.depth >= MAX_DEPTH:
            raise yaml.MarkedYAMLError(None, None, f"nesting deeper than {MAX_DEPTH} levels", self.peek_event().start_mark)
        self.depth += 1
        try:
            return self._compose_checked(parent, index)
        finally:
            self.depth -= 1

    def _compose_checked(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.MarkedYAMLError(
                None, None, f"YAML aliases (*name) are not allowed in a {self.what}", event.start_mark
            )
        event = self.peek_event()
        if getattr(event, "anchor", None):
            raise yaml.MarkedYAMLError(
                None, None, f"YAML anchors (&name) are not allowed in a {self.what}", event.start_mark
            )
        return super().compose_node(parent, index)

    def construct_yaml_int(self, node: ScalarNode) -> int:  # type: ignore[override]
        if len(str(node.value)) > MAX_DIGITS:
            raise yaml.MarkedYAMLError(None, None, f"an integer of more than {MAX_DIGITS} digits", node.start_mark)
        return super().construct_yaml_int(node)

    def construct_yaml_timestamp(self, node: ScalarNode) -> str:  # type: ignore[override]
        return str(node.value)


_NoAliasLoader.add_constructor("tag:yaml.org,2002:int", _NoAliasLoader.construct_yaml_int)
_NoAliasLoader.add_constructor("tag:yaml.org,2002:timestamp", _NoAliasLoader.construct_yaml_timestamp)


def join_path(parent: str, key: str | int) -> str:
    """Extend a document path: ``join_path("nodes", 1) == "nodes[1]"``."""
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return f"{parent}.{key}" if parent else str(key)


def _construct(node: Node, path: str, loader: _NoAliasLoader, pos: Positions, source: str,
               error: type[DocumentError]) -> Any:
    pos[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = _value(key_node, path, loader, pos, source, error)
            if not isinstance(key, str):
                raise error(
                    source,
                    [Issue(path or "<document>", f"mapping key {key!r} is not a string", "quote the key")],
                    {path or "<document>": (key_node.start_mark.line + 1, key_node.start_mark.column + 1)},
                )
            child = join_path(path, key)
            if key in out:
                line = key_node.start_mark.line + 1
                raise error(
                    source,
                    [Issue(child, f"key '{key}' appears twice", f"remove one of the two (second one on line {line})")],
                    {child: (line, key_node.start_mark.column + 1)},
                )
            out[key] = _construct(value_node, child, loader, pos, source, error)
        return out
    if isinstance(node, SequenceNode):
        return [_construct(item, join_path(path, i), loader, pos, source, error) for i, item in enumerate(node.value)]
    return _value(node, path, loader, pos, source, error)


def _value(node: Node, path: str, loader: _NoAliasLoader, pos: Positions, source: str, error: type[DocumentError]) -> Any:
    """A scalar (or a mapping key) as PyYAML's safe constructors make it."""
    try:
        return loader.construct_object(node, deep=True)
    except (ValueError, OverflowError, TypeError, IndexError, KeyError, AttributeError) as exc:
        # a tagged scalar its constructor refuses: !!float x, an empty !!int
        raise error(source, [Issue(path or "<document>", f"YAML: {_first_line(exc)}", "write a plain value")],
                    {**pos, path or "<document>": (node.start_mark.line + 1, node.start_mark.column + 1)}) from None


def load_yaml(text: str, source: str = "<string>", error: type[DocumentError] = TopologyError) -> tuple[Any, Positions]:
    """Parse one YAML document safely.

    :param text: the document.
    :param source: the file name used in error messages.
    :param error: the error to raise (:class:`TopologyError`, :class:`ScenarioError`).
    :returns: ``(data, positions)`` where positions maps a path such as
        ``nodes[1].az`` to its ``(line, column)``, both 1-based.
    :raises DocumentError: (``error``) on a syntax error, an alias or anchor, a
        duplicate key, more than one document, or a document over :data:`MAX_BYTES`.
    """
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise error(
            source, [Issue("<document>", f"file is larger than {MAX_BYTES} bytes", f"a {error.what} is a few KiB; check the file")]
        )
    try:
        loader = _NoAliasLoader(text)
    except yaml.YAMLError as exc:  # the reader refuses NUL and other special characters before parsing
        raise error(source, [Issue("<document>", f"YAML: {_first_line(exc)}", "remove the character (a document is text)")],
                    _mark_position(exc, text)) from None
    loader.what = error.what
    try:
        root = loader.get_single_node()
        if root is None:
            example = "topologies/quickstart.yaml" if error is TopologyError else "scenarios/kill-primary.yaml"
            raise error(source, [Issue("<document>", "the file is empty", f"see {example}")])
        positions: Positions = {}
        data = _construct(root, "", loader, positions, source, error)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = "<document>"
        pos = {where: (mark.line + 1, mark.column + 1)} if mark else {}
        raise error(source, [Issue(where, f"YAML: {exc.problem or exc.context}", "fix the YAML syntax")], pos) from None
    except yaml.YAMLError as exc:
        raise error(source, [Issue("<document>", f"YAML: {_first_line(exc)}", "fix the YAML syntax")],
                    _mark_position(exc, text)) from None
    finally:
        loader.dispose()
    return data, positions


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _mark_position(exc: yaml.YAMLError, text: str) -> Positions:
    """The document position of a reader error: it gives a character index, not a line and column."""
    at = getattr(exc, "position", None)
    if not isinstance(at, int):
        return {}
    before = text[:at]
    return {"<document>": (before.count("\n") + 1, at - (before.rfind("\n") + 1) + 1)}


def read_yaml_file(path: str | Path, error: type[DocumentError] = TopologyError) -> tuple[Any, Positions]:
    """Read and parse a topology (or scenario) file; see :func:`load_yaml`.

    :raises DocumentError: (``error``) the file is missing, unreadable, too large or not valid YAML.
    """
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_BYTES:
            raise error(p, [Issue("<document>", f"file is {size} bytes, over {MAX_BYTES}", f"a {error.what} is a few KiB; check the file")])
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(p, [Issue("<document>", f"cannot read the file: {exc.strerror}", error.missing_fix)]) from None
    except UnicodeDecodeError:
        raise error(p, [Issue("<document>", "the file is not UTF-8 text", "save it as UTF-8")]) from None
    return load_yaml(text, str(p), error)
