"""Every fault kind is one entry (cmlab/faults/kinds.py) that the CLI, the
scenario schema, the nemesis and the docs read, with the same words."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from click.testing import CliRunner

from cmlab.cli import main
from cmlab.faults import kinds
from cmlab.faults.base import Fault
from cmlab.faults.nemesis import Nemesis
from cmlab.scenarios.schema import FaultStep

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = {"str": "pg1", "float": 10.0, "bool": True, "list": ["az1"]}


def minimal(kind: kinds.FaultKind) -> dict:
    """A scenario step's keys with every required argument (a valid choice where there are choices)."""
    return {a.key: (a.choices[0] if a.choices else SAMPLE[a.kind]) for a in kind.args if a.required}


@pytest.mark.parametrize("kind", kinds.KINDS, ids=lambda k: k.name)
def test_the_builder_takes_the_kinds_arguments_and_builds_its_fault_class(kind: kinds.FaultKind):
    builder = getattr(Nemesis, kind.builder)
    params = [p for p in inspect.signature(builder).parameters.values() if p.name != "self"]
    assert [p.name for p in params] == [a.name for a in kind.args]
    for p, a in zip(params, kind.args):
        assert (p.default is inspect.Parameter.empty) == a.required, f"{kind.name}.{a.name}: required in one place only"
    cls = _fault_class(kind)
    assert issubclass(cls, Fault) and inspect.signature(builder).return_annotation == cls.__name__


def _fault_class(kind: kinds.FaultKind) -> type:
    import importlib

    module, _, cls = kind.fault.partition(":")
    return getattr(importlib.import_module(f"cmlab.faults.{module}"), cls)


@pytest.mark.parametrize("kind", kinds.KINDS, ids=lambda k: k.name)
def test_a_scenario_step_takes_the_kind_with_its_words(kind: kinds.FaultKind):
    step = FaultStep.model_validate({"fault": kind.name, **minimal(kind)})
    assert set(step.arguments()) == {a.name for a in kind.args if a.required}
    with pytest.raises(ValueError, match=f"fault '{kind.name}' takes"):
        FaultStep.model_validate({"fault": kind.name, **minimal(kind), "no-such-argument": 1})


@pytest.mark.parametrize("kind", kinds.KINDS, ids=lambda k: k.name)
def test_the_cli_has_the_kind_as_a_command_with_the_same_words(kind: kinds.FaultKind):
    result = CliRunner().invoke(main, ["fault", kind.name, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for a in kind.args:
        assert (a.name.upper() if a.positional else f"--{a.key}") in result.output, f"{kind.name}: {a.key} missing"


def test_a_wrong_type_or_choice_is_refused_with_the_kind_and_argument():
    with pytest.raises(ValueError, match="fault 'loss', percent: a number"):
        kinds.get("loss").check({"target": "pg1", "percent": "lots"})
    with pytest.raises(ValueError, match="fault 'shape', name: one of halves, bridge, majorities-ring"):
        kinds.get("shape").check({"name": "circle"})
    assert kinds.get("split-azs").check({"a": "az1", "one-way": True}) == {"a": ["az1"], "one_way": True}


def test_the_docs_table_is_the_registrys():
    text = (ROOT / "docs" / "scenarios.md").read_text()
    table = text.split("<!-- fault-kinds:start -->\n", 1)[1].split("\n<!-- fault-kinds:end -->", 1)[0]
    assert table == kinds.markdown_table(), "regenerate it: python -m cmlab.faults.kinds"
