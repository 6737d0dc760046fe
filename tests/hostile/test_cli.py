"""Every command with bad arguments: one clear line and a non-zero exit,
never a traceback; and the scripts cmlab generates keep hostile values as data."""

from __future__ import annotations

import shlex
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from cmlab.cli import main
from cmlab.engines.opengauss_cm import config
from cmlab.engines.opengauss_cm.engine import _set_script
from cmlab.engines.opengauss_cm.parameters import CmParameters
from cmlab.engines.registry import default_registry
from cmlab.topology import load
from cmlab.topology.schema import Role

ROOT = Path(__file__).resolve().parents[2]
NO_LAB = "cmlab-no-such-lab"
MISSING = "/nonexistent/cmlab/file.yaml"

#: Bad invocations, by command; every command of the CLI has at least one.
BAD: dict[str, list[list[str]]] = {
    "validate": [[MISSING], [str(ROOT / "README.md")], [str(ROOT / "topologies/quickstart.yaml"), "--set", "novalue"],
                 [str(ROOT / "topologies/quickstart.yaml"), "--set", "ttl=-1"]],
    "schema": [["--engine", "nosuch"]],
    "parse-cm-query": [[MISSING], ["/etc/hostname"]],
    "engines": [["extra"]],
    "examples": [["extra"]],
    "build": [[MISSING]],
    "up": [[MISSING]],
    "down": [[MISSING + "x", "extra"]],
    "status": [[NO_LAB]],
    "reap": [["extra"]],
    "ls": [["extra"]],
    "snapshots": [["extra"], ["--prune", "extra"]],
    "exec": [["-l", NO_LAB, "pg9", "--", "true"], []],
    "logs": [["-l", NO_LAB, "pg9"], ["--tail", "x", "pg1"]],
    "hosts up": [["-n", "x"]],
    "hosts down": [["extra"]],
    "fault isolate": [["-l", NO_LAB, "pg9"]],
    "fault cut": [["-l", NO_LAB, "a"]],
    "fault partition": [["-l", NO_LAB, "nosuchshape"]],
    "fault isolate-host": [["-l", NO_LAB, "h9"]],
    "fault split-az": [["-l", NO_LAB]],
    "fault loss": [["-l", NO_LAB, "pg1", "--percent", "x"]],
    "fault bandwidth": [["-l", NO_LAB, "pg1"]],
    "fault delay": [["-l", NO_LAB, "pg1", "--ms", "1"]],
    "fault gateway-loss": [["-l", NO_LAB, "pg1"]],
    "fault link-down": [["-l", NO_LAB, "pg1"]],
    "fault kill": [["-l", NO_LAB, "pg1", "-p", "database"]],
    "fault freeze": [["-l", NO_LAB, "pg1"]],
    "fault container": [["-l", NO_LAB, "explode", "pg1"]],
    "fault vip-remove": [["-l", NO_LAB]],
    "fault crash": [["-l", NO_LAB, "pg1"], ["-l", NO_LAB]],
    "fault pause": [["-l", NO_LAB, "pg1"]],
    "fault stop": [["-l", NO_LAB, "pg1"]],
    "fault restart": [["-l", NO_LAB, "pg1"]],
    "fault shape": [["-l", NO_LAB, "nosuchshape"], ["-l", NO_LAB, "halves"]],
    "fault split-azs": [["-l", NO_LAB], ["-l", NO_LAB, "az1", "--one-way"]],
    "fault disk-readonly": [["-l", NO_LAB, "nodisk"]],
    "fault disk-detach": [["-l", NO_LAB, "nodisk"]],
    "fault disk-fill": [["-l", NO_LAB, "data"], ["-l", NO_LAB, "data", "--percent", "x"]],
    "fault vip-duplicate": [["-l", NO_LAB, "pg1"]],
    "fault vip-garp": [["-l", NO_LAB, "pg1"]],
    "fault vip-flap": [["-l", NO_LAB, "pg1", "--period", "x"]],
    "fault disk": [["-l", NO_LAB, "fill", "data"], ["-l", NO_LAB, "readonly", "nodisk"]],
    "faults": [["-l", NO_LAB]],
    "heal": [["-l", NO_LAB, "key"]],
    "scenarios": [["extra"], ["--for", MISSING]],
    "check-scenario": [["nosuch"], [MISSING]],
    "run": [["-l", NO_LAB, "kill-primary"], ["kill-primary", "-n", "0"], ["kill-primary", "-n", "x"],
            ["-l", NO_LAB, MISSING]],
    "bundle": [[MISSING], ["/tmp"]],
    "replay": [[MISSING], ["/etc/hostname"], ["/etc/hostname", "--max-size", "0"]],
    "report": [[MISSING], ["/tmp"]],
    "doctor": [[NO_LAB], [MISSING]],
}


def commands(group: click.Group = main, prefix: str = "") -> list[str]:
    """Every command, the ones a group makes when asked (the fault kinds) and the hidden ones too."""
    ctx = click.Context(group)
    out = []
    for name in sorted(set(group.list_commands(ctx)) | set(group.commands)):
        command = group.get_command(ctx, name)
        if isinstance(command, click.Group):
            out += commands(command, f"{prefix}{name} ")
        else:
            out.append(prefix + name)
    return out


def test_every_command_is_in_the_table():
    assert sorted(commands()) == sorted(BAD), "add the new command's bad invocations to BAD"


@pytest.mark.parametrize("argv", [c.split() + a for c in sorted(BAD) for a in BAD[c]], ids=" ".join)
def test_a_bad_invocation_is_one_clear_line_and_a_non_zero_exit(argv):
    result = CliRunner().invoke(main, argv)
    print(f"\ncmlab {' '.join(argv)} -> {result.exit_code}: {result.output.strip()[-300:]}")
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    # Only SystemExit (our exits and click's usage errors) leaves a command.
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    if result.exit_code == 2 and "Usage:" not in result.output:
        assert "this is a bug" not in result.output, result.output


# ---- generated scripts keep hostile values as data ----

HOSTILE_VALUES = ["$(touch /tmp/cmlab-p)", "`touch /tmp/cmlab-p`", "a'b", 'a"b', "x; touch /tmp/cmlab-p", "a && b",
                  "a | b", "$HOME", "\\", "a b c", "'", "/dev/cmlab-x", "-k", "{a}", "*"]


def _words(script: str) -> list[list[tuple[str, bool]]]:
    """Each line of a shell script as (token, is_operator) pairs, as sh reads it."""
    lines = []
    for line in script.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lines.append([(tok, all(c in "();<>|&" for c in tok)) for tok in lexer])
    return lines


#: The shapes of cm-set.sh's lines, by their shell operators (a key cm_ctl refuses, or
#: a value it refuses bare, is written into the file: ``sed ... && echo ... >> conf``).
LINE_SHAPES = ([], ["||", ">>"], ["&&", ">>"])


@pytest.mark.parametrize("value", HOSTILE_VALUES)
def test_cm_set_script_keeps_a_hostile_value_as_one_word(value):
    plan = load(ROOT / "topologies" / "opengauss-1az.yaml", default_registry())
    p = CmParameters.model_validate({**plan.parameters, "cm_agent": {"log_min_messages": value},
                                     "cm_server": {"log_min_messages": value}})
    for node in plan.nodes:
        script = str(_set_script(config.set_commands(plan, p, node.name)).content)
        holding = 0
        for line in _words(script):
            ops = [t for t, op in line if op]
            assert ops in LINE_SHAPES, (ops, line)
            words = [t for t, op in line if not op]
            holding += sum(value in w for w in words)
            assert not any(w in ("touch", "b", "c") for w in words), line  # no piece of the value stands alone
        expected = 2 if node.has(Role.quorum) else 1
        assert holding >= expected, script


@pytest.mark.parametrize("value", HOSTILE_VALUES)
def test_patroni_yml_keeps_a_hostile_postgresql_value_as_the_value(value):
    import yaml

    from cmlab.engines.postgres_patroni.config import patroni_yml
    from cmlab.engines.postgres_patroni.parameters import PatroniParameters

    plan = load(ROOT / "topologies" / "quickstart.yaml", default_registry())
    p = PatroniParameters.model_validate({**plan.parameters, "postgresql": {"application_name": value}})
    doc = yaml.safe_load(patroni_yml(plan, plan.nodes[0], p))
    assert doc["bootstrap"]["dcs"]["postgresql"]["parameters"]["application_name"] == value
