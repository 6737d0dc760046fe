"""``cmlab`` on the command line: parse arguments, call :mod:`cmlab.api`, print.

Every error cmlab raises on purpose is printed as one message (no traceback)
with exit status 1.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from cmlab import api
from cmlab.engines.registry import default_registry
from cmlab.errors import CmlabError
from cmlab.progress import Progress
from cmlab.topology import resolve
from cmlab.topology.schema import Topology

out = Console()
err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def _friendly(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CmlabError as exc:
            err.print(f"[red]error:[/] {exc}", markup=True, highlight=False)
            sys.exit(1)
        except KeyboardInterrupt:
            err.print("interrupted")
            sys.exit(130)
    return wrapper  # type: ignore[return-value]


def _lab_name(arg: str | None) -> str:
    """A lab name from a name, a topology file, or the only lab running."""
    if arg and Path(arg).is_file():
        return resolve.load(arg, default_registry()).name
    if arg:
        return arg
    names = api.labs()
    if len(names) == 1:
        return names[0]
    raise click.UsageError(f"name the lab (running: {', '.join(names) or 'none'})")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Show what runs (commands, build output).")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """cmlab: build, run, break and measure cluster-manager labs in containers."""
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    ctx.obj = Progress(err, verbose=verbose)


@main.command()
@click.argument("topology", type=click.Path(dir_okay=False))
@_friendly
def validate(topology: str) -> None:
    """Check a topology file without touching Docker."""
    plan = resolve.load(topology, default_registry())
    out.print(f"{topology}: valid ({plan.engine}, {len(plan.nodes)} nodes, {len(plan.azs)} AZ, {len(plan.vips)} VIP)")


@main.command()
@click.option("--engine", help="Print the JSON Schema of this engine's `parameters:` instead.")
@_friendly
def schema(engine: str | None) -> None:
    """Print the JSON Schema of topology files (for editors)."""
    if engine:
        model = default_registry().get(engine).Parameters
        click.echo(json.dumps(model.model_json_schema(), indent=2))
    else:
        click.echo(json.dumps(Topology.model_json_schema(), indent=2))


@main.command()
def engines() -> None:
    """List the engines."""
    reg = default_registry()
    for name in reg.names():
        out.print(f"{name:20} {reg.get(name).summary}")


@main.command()
@click.argument("topology", type=click.Path(dir_okay=False))
@click.pass_obj
@_friendly
def build(progress: Progress, topology: str) -> None:
    """Build (or find) the images a topology needs."""
    lab = api.Lab.from_topology(topology, progress=progress)
    out.print(lab.build())


@main.command()
@click.argument("topology", type=click.Path(dir_okay=False))
@click.pass_obj
@_friendly
def up(progress: Progress, topology: str) -> None:
    """Bring a lab up from a topology file and wait until it is ready."""
    t0 = time.monotonic()
    lab = api.Lab.from_topology(topology, progress=progress)
    status = lab.up()
    _print_status(status)
    out.print(f"lab '{lab.plan.name}' is up in {time.monotonic() - t0:.1f} s; `cmlab down {lab.plan.name}` removes it")


@main.command()
@click.argument("lab", required=False)
@click.option("--all", "all_labs", is_flag=True, help="Remove every lab on this Docker engine.")
@_friendly
def down(lab: str | None, all_labs: bool) -> None:
    """Remove a lab (by name or topology file); safe to run twice."""
    names = api.labs() if all_labs else [_lab_name(lab)]
    for name in names:
        removed = api.down(name)
        out.print(f"lab '{name}': removed {removed.containers} containers, {removed.networks} networks, {removed.volumes} volumes")


@main.command()
@click.argument("lab", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_friendly
def status(lab: str | None, as_json: bool) -> None:
    """Show each node's role, lag, health and VIPs."""
    st = api.Lab.attach(_lab_name(lab)).status()
    if as_json:
        click.echo(api.status_json(st))
    else:
        _print_status(st)


def _print_status(st: api.LabStatus) -> None:
    table = Table(title=f"lab {st.lab} ({st.engine})")
    for col in ("node", "AZ", "IP", "role", "lag", "health", "VIP"):
        table.add_column(col)
    for r in st.rows:
        lag = "" if r.lag_bytes is None else f"{r.lag_bytes} B"
        health = ("[green]healthy[/]" if r.healthy else "[red]unhealthy[/]") + (f" ({r.detail})" if r.detail else "")
        table.add_row(r.node, r.az, r.address, r.role, lag, health, ", ".join(r.vips))
    out.print(table)
    out.print("ready" if st.ready else f"[yellow]not ready:[/] {st.not_ready}")


@main.command(name="ls")
@_friendly
def list_labs() -> None:
    """List the labs on this Docker engine."""
    for name in api.labs():
        out.print(name)


@main.command(name="exec", context_settings={"ignore_unknown_options": True})
@click.option("-l", "--lab", help="The lab (default: the only one running).")
@click.option("-u", "--user", default="root", show_default=True)
@click.argument("node")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@_friendly
def exec_(lab: str | None, user: str, node: str, command: tuple[str, ...]) -> None:
    """Run COMMAND in NODE's container: cmlab exec NODE -- CMD ARGS."""
    code, output = api.Lab.attach(_lab_name(lab)).exec(node, list(command), user)
    click.echo(output, nl=False)
    sys.exit(code)


@main.command()
@click.option("-l", "--lab", help="The lab (default: the only one running).")
@click.option("--tail", type=int, help="Only the last N lines.")
@click.argument("node")
@_friendly
def logs(lab: str | None, tail: int | None, node: str) -> None:
    """Print a node's container log."""
    click.echo(api.Lab.attach(_lab_name(lab)).logs(node, tail), nl=False)


if __name__ == "__main__":
    main()
