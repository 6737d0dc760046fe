"""Hostile topologies, scenarios and durations: a clean error with its
file:line:column, or a value; never another exception.

The corpus files of ``topologies/`` and ``scenarios/`` beside this file say
on their first line what the error must say (``# expect: ...``); the inputs
too large or too binary for a file are made here; Hypothesis feeds random
documents and expressions.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cmlab.cli import main
from cmlab.engines.registry import default_registry
from cmlab.errors import DocumentError, ScenarioError, TopologyError
from cmlab.scenarios import duration, loads as load_scenario
from cmlab.topology.resolve import loads as load_topology
from cmlab.topology.yaml_source import load_yaml

HERE = Path(__file__).parent
CORPUS = sorted((HERE / "topologies").glob("*.yaml")) + sorted((HERE / "scenarios").glob("*.yaml"))
PLACE = re.compile(r"\.yaml:\d+:\d+: ")


def _expected(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), f"{path} must say on its first line what its error says"
    return first.removeprefix("# expect: ")


def cli(*args: str):
    result = CliRunner().invoke(main, list(args))
    assert "Traceback" not in result.output and not isinstance(result.exception, (KeyError, ValueError, TypeError,
                                                                                  RecursionError, OverflowError))
    return result


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_each_hostile_document_is_one_clear_error_at_its_place(path):
    command = "validate" if path.parent.name == "topologies" else "check-scenario"
    result = cli(command, str(path))
    print(f"\n{path.name}: {result.output.strip()}")
    assert result.exit_code == 1
    assert _expected(path) in result.output and PLACE.search(result.output), result.output


GENERATED = {
    "5000-digit integer": "name: x\nazs: [{name: az1, priority: " + "9" * 5000 + "}]\nnodes: []\n",
    "impossible date": "name: 2024-13-45\n",
    "deep nesting": "name: x\nazs: " + "[" * 5000 + "]" * 5000 + "\n",
    "deep mapping": "".join("  " * i + f"k{i}:\n" for i in range(100)),
    "NUL byte": "name: x\x00y\n",
    "100000 unary minus signs": "summary: x\nschedule:\n  - sleep: '" + "-" * 100000 + "1'\n",
    "50000-term sum": "summary: x\nschedule:\n  - sleep: '" + "+".join(["1"] * 50000) + "'\n",
    "hex literal of 20000 digits": "summary: x\nschedule:\n  - sleep: 0x" + "f" * 20000 + "\n",
    "lone surrogate": "name: \ud800\n",
}


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_generated_hostile_documents_are_clean_errors(name, tmp_path):
    text = GENERATED[name]
    for parse, error in ((lambda t: load_topology(t, default_registry()), TopologyError),
                         (lambda t: load_scenario(t, "<test>", "t"), ScenarioError)):
        try:
            parse(text)
        except error as exc:
            assert str(exc).count("\n") < 20
    path = tmp_path / "doc.yaml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    for command in ("validate", "check-scenario"):
        result = cli(command, str(path))
        assert result.exit_code == 1, result.output


def test_a_file_that_is_not_utf8_is_one_error(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"name: caf\xe9\n")
    for command in ("validate", "check-scenario"):
        result = cli(command, str(path))
        assert result.exit_code == 1 and "not UTF-8" in result.output


# ---- property-based: random documents and expressions ----

#: Examples per property: 150 in the suite; CMLAB_HYPOTHESIS_EXAMPLES=5000 for a long hunt.
FAST = settings(max_examples=int(os.environ.get("CMLAB_HYPOTHESIS_EXAMPLES", "150")), deadline=None, suppress_health_check=[HealthCheck.too_slow])
yaml_text = st.one_of(
    st.text(max_size=300),
    st.lists(st.sampled_from(["name:", " ", "\n", "- ", "[", "]", "{", "}", ":", "&a", "*a", "!!int", "!!float", "!!binary",
                              "!!timestamp", "!!python/object", "0x", "9" * 50, "2024-13-45", ".nan", ".inf", "'", '"',
                              "\t", "\x00", "azs", "nodes", "az1", "?", "|", ">", "%YAML 1.1\n---\n", "#"]),
             max_size=60).map("".join),
)


@FAST
@given(yaml_text)
def test_the_yaml_reader_gives_a_value_or_a_document_error(text):
    try:
        load_yaml(text, "<random>")
    except DocumentError:
        pass


@FAST
@given(yaml_text)
def test_a_random_scenario_is_a_scenario_or_a_scenario_error(text):
    try:
        load_scenario("summary: x\nschedule:\n" + text, "<random>", "random")
    except ScenarioError:
        pass


names = st.sampled_from([*duration.NAMES, duration.RTO])
atoms = st.one_of(names, st.integers(-10**6, 10**6).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
                  st.sampled_from(["1e308", "0x" + "f" * 60, "0", "()", "max()", "min(1)", "-", "**", "//", "%", "x", "1j"]))
expressions = st.recursive(atoms, lambda inner: st.one_of(
    st.tuples(inner, st.sampled_from([" + ", " - ", " * ", " / ", " ** ", ""]), inner).map("".join),
    inner.map(lambda e: f"({e})"), inner.map(lambda e: f"-{e}"),
    st.lists(inner, min_size=0, max_size=3).map(lambda a: f"max({', '.join(a)})")), max_leaves=20)


@FAST
@given(st.one_of(expressions, st.text(max_size=250), st.floats(), st.integers()))
def test_a_duration_is_a_bounded_number_of_seconds_or_a_value_error(value):
    env = {name: 10.0 for name in [*duration.NAMES, duration.RTO]}
    try:
        seconds = duration.seconds(value, env)
    except ValueError:
        return
    assert math.isfinite(seconds) and 0 <= seconds <= duration.MAX_SECONDS


scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**40, 10**40), st.floats(), st.text(max_size=30))
keys = st.one_of(st.sampled_from(["name", "azs", "nodes", "vips", "disks", "parameters", "subnet", "az", "roles",
                                  "address", "priority", "engine", "network", "hosts", "postgresql", "ttl"]),
                 st.text(max_size=10))
documents = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                          st.dictionaries(keys, inner, max_size=5)), max_leaves=25)


@FAST
@given(st.dictionaries(keys, documents, max_size=8))
def test_a_random_topology_document_is_a_plan_or_a_topology_error(doc):
    import yaml

    try:
        text = yaml.safe_dump(doc)
    except yaml.YAMLError:
        return
    try:
        load_topology(text, default_registry())
    except TopologyError:
        pass
