"""``cmlab`` on the command line: parse arguments, call :mod:`cmlab.api`, print.

Every error cmlab raises on purpose is printed as one message (no traceback)
with exit status 1; an error from the operating system or Docker reads as one
sentence too; anything else is a bug of cmlab's, said as one line with exit
status 2 (``-v`` prints its traceback, for the report).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from cmlab.errors import CmlabError
from cmlab.progress import Progress

if TYPE_CHECKING:
    import rich.table
    from rich.console import Console


def _lazy_module(name: str) -> Any:
    """``name``, imported when one of its attributes is first read (importlib's
    LazyLoader): `cmlab --help` needs neither the API nor pydantic's models."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.loader is not None
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


api = _lazy_module("cmlab.api")  # the module itself, loaded on first use


#: Columns when the output is not a terminal (a CI log, a pipe): wide enough
#: that no table cell and no path is cut into pieces; ``COLUMNS`` overrides.
LOG_WIDTH = 400


class _LazyConsole:
    """A rich Console made when first used (rich costs a tenth of a second to
    import). Not at a terminal: no colour codes (rich's own rule) and no
    wrapping (:data:`LOG_WIDTH`), so that a log keeps one fact a line."""

    def __init__(self, **options: Any) -> None:
        self._options, self._console = options, None

    def __getattr__(self, name: str) -> Any:
        if self._console is None:
            import os

            from rich.console import Console

            console = Console(**self._options)
            if not console.is_terminal and "COLUMNS" not in os.environ:
                console = Console(width=LOG_WIDTH, **self._options)
            self._console = console
        return getattr(self._console, name)

    # Special methods are looked up on the type, not through __getattr__ (rich's Live enters the console).
    def __enter__(self) -> Any:
        return self.__getattr__("__enter__")()

    def __exit__(self, *exc: Any) -> Any:
        return self.__getattr__("__exit__")(*exc)


out: "Console" = _LazyConsole(soft_wrap=True)  # type: ignore[assignment]
err: "Console" = _LazyConsole(stderr=True, soft_wrap=True)  # type: ignore[assignment]
F = TypeVar("F", bound=Callable[..., Any])


def escape(text: str) -> str:
    from rich.markup import escape as _escape

    return _escape(text)


def Table(*args: Any, **kwargs: Any) -> "rich.table.Table":  # noqa: N802 - rich's Table, imported when a table is drawn
    from rich.table import Table as _Table

    return _Table(*args, **kwargs)


def _friendly(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort, SystemExit):
            raise
        except CmlabError as exc:
            _error(str(exc))
            sys.exit(1)
        except KeyboardInterrupt:
            err.print("interrupted")
            sys.exit(130)
        except OSError as exc:
            _error(f"{exc.strerror or exc}" + (f": {exc.filename}" if getattr(exc, "filename", None) else ""))
            sys.exit(1)
        except Exception as exc:  # noqa: BLE001 - a bug of cmlab's: one line, the traceback with -v
            from docker.errors import DockerException

            if isinstance(exc, DockerException):
                _error(f"Docker: {exc}")
                sys.exit(1)
            ctx = click.get_current_context(silent=True)
            verbose = bool(ctx and isinstance(ctx.find_root().obj, Progress) and ctx.find_root().obj.verbose)
            if verbose:
                import traceback

                err.print(traceback.format_exc(), markup=False, highlight=False)
            _error(f"cmlab failed unexpectedly ({type(exc).__name__}: {exc}); this is a bug: please report it "
                   f"with the output of `cmlab -v {' '.join(sys.argv[1:])}`")
            sys.exit(2)
    return wrapper  # type: ignore[return-value]


def _error(message: str) -> None:
    err.print(f"[red]error:[/] {escape(message)}", markup=True, highlight=False, soft_wrap=True)


def _lab_name(arg: str | None) -> str:
    """A lab name from a name, a topology file, or the only lab running."""
    if arg and Path(arg).is_file():
        return api.validate(arg).name
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


_SET = click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE",
                    help="A `parameters:` key, winning over the file's (e.g. --set package=/path/openGauss-All.tar.gz).")


def _parameters(assignments: tuple[str, ...]) -> dict[str, Any]:
    try:
        return api.parse_assignments(assignments)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--set") from None


@main.command()
@click.argument("topology", type=click.Path(dir_okay=False))
@_SET
@_friendly
def validate(topology: str, assignments: tuple[str, ...]) -> None:
    """Check a topology file (or an example by name: `cmlab examples`) without touching Docker."""
    plan = api.validate(topology, _parameters(assignments))
    out.print(f"{topology}: valid ({plan.engine}, {len(plan.nodes)} nodes, {len(plan.azs)} AZ, {len(plan.vips)} VIP)")


@main.command()
@click.option("--engine", help="Print the JSON Schema of this engine's `parameters:` instead.")
@click.option("--scenario", "of_scenario", is_flag=True, help="Print the JSON Schema of scenario files instead.")
@_friendly
def schema(engine: str | None, of_scenario: bool) -> None:
    """Print the JSON Schema of topology files (for editors)."""
    click.echo(json.dumps(api.json_schema("scenario" if of_scenario else "topology", engine), indent=2))


@main.command("parse-cm-query")
@click.argument("file", type=click.File("r", encoding="utf-8"))
@_friendly
def parse_cm_query(file) -> None:
    """Parse a pasted `cm_ctl query` / `gs_om -t status` output (FILE or -) and print it as JSON."""
    try:
        click.echo(api.parse_cm_query(file.read()))
    except ValueError as exc:
        raise click.ClickException(f"{file.name}: {exc}") from None


@main.command()
@_friendly
def examples() -> None:
    """List the example topologies, which validate, build and up take by name."""
    for name, summary in api.examples().items():
        out.print(f"{name:28} {summary}", markup=False, highlight=False)


@main.command()
@_friendly
def engines() -> None:
    """List the engines."""
    for name, summary in api.engines().items():
        out.print(f"{name:20} {summary}")


@main.command()
@click.argument("topology", type=click.Path(dir_okay=False))
@_SET
@click.pass_obj
@_friendly
def build(progress: Progress, topology: str, assignments: tuple[str, ...]) -> None:
    """Build (or find) the images a topology (a file, or an example by name) needs."""
    lab = api.Lab.from_topology(topology, progress=progress, parameters=_parameters(assignments))
    out.print(lab.build())


@main.command()
@click.option("--no-wait", is_flag=True, help="Return once the containers run, without waiting for a ready cluster.")
@click.option("--init-swarm", is_flag=True,
              help="A lab across hosts: make the first host a swarm manager and join the others (where in no swarm).")
@click.option("--fresh", is_flag=True,
              help="Initialise the cluster: neither restore a snapshot of this topology nor save one (`cmlab snapshots`).")
@click.argument("topology", type=click.Path(dir_okay=False))
@_SET
@click.pass_obj
@_friendly
def up(progress: Progress, no_wait: bool, init_swarm: bool, fresh: bool, topology: str, assignments: tuple[str, ...]) -> None:
    """Bring a lab up from a topology file (or an example by name: `cmlab up quickstart`) and wait until it is ready."""
    t0 = time.monotonic()
    lab = api.Lab.from_topology(topology, progress=progress, parameters=_parameters(assignments))
    status = lab.up(wait=not no_wait, init_swarm=init_swarm, fresh=fresh)
    if status is not None:
        _print_status(status)
    out.print(f"lab '{lab.plan.name}' is up in {time.monotonic() - t0:.1f} s; `cmlab down {lab.plan.name}` removes it")


@main.command()
@click.argument("lab", required=False)
@click.option("--all", "all_labs", is_flag=True, help="Remove every lab on this Docker engine.")
@click.option("--forget", is_flag=True,
              help="A lab across hosts: forget it even if a host cannot be reached (the host is gone for good).")
@_friendly
def down(lab: str | None, all_labs: bool, forget: bool) -> None:
    """Remove a lab (by name or topology file); safe to run twice."""
    names = api.labs() if all_labs else [_lab_name(lab)]
    if all_labs and not names:
        out.print("no lab to remove")
    for name in names:
        removed = api.down(name, forget=forget)
        if not removed.total and not removed.unreachable and not removed.left:
            out.print(f"no lab '{name}' here: nothing to remove (labs: {', '.join(api.labs()) or 'none'})")
            continue
        out.print(f"lab '{name}': removed {_count(removed.containers, 'container')}, {_count(removed.networks, 'network')}, "
                  f"{_count(removed.volumes, 'volume')}, {_count(removed.loop_devices, 'loop device')}")
        for host, why in removed.unreachable.items():
            out.print(f"[yellow]host {host} was not reached: the lab's objects there remain ({why}); "
                      f"run `cmlab down {name}` again once it answers"
                      + (" (the lab is forgotten)" if forget else f", or `cmlab down --forget {name}` if it is gone") + "[/]")
        for what in removed.left:
            out.print(f"[yellow]left: {what}[/]")
        if removed.unreachable and not forget:
            raise SystemExit(1)


def _count(n: int, what: str) -> str:
    """``1 network``, ``2 networks``."""
    return f"{n} {what}" + ("" if n == 1 else "s")


@main.command()
@click.argument("lab", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--manager", is_flag=True, help="Also print the manager's own account (cm_ctl query and show; Patroni's /cluster).")
@_friendly
def status(lab: str | None, as_json: bool, manager: bool) -> None:
    """Show each node's role, lag, health and VIPs."""
    the_lab = api.Lab.attach(_lab_name(lab))
    st = the_lab.status()
    if as_json:
        doc = json.loads(api.status_json(st))
        if manager:
            doc["manager"] = the_lab.diagnostics()
        click.echo(json.dumps(doc, indent=2))
        return
    _print_status(st)
    if manager:
        for title, text in the_lab.diagnostics().items():
            out.rule(title)
            out.print(text, markup=False, highlight=False)


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


@main.command()
@click.option("--dry-run", is_flag=True, help="Only say which labs would be removed.")
@_friendly
def reap(dry_run: bool) -> None:
    """Remove the labs whose owner (a test run) is gone; labs made with `cmlab up` stay."""
    for name in api.reap(dry_run=dry_run):
        out.print(f"{'would remove' if dry_run else 'removed'} lab '{name}' (its owner process is gone)")


@main.command(name="ls")
@_friendly
def list_labs() -> None:
    """List the labs on this Docker engine."""
    for name in api.labs():
        out.print(name)


@main.command(name="snapshots")
@click.option("--prune", is_flag=True, help="Remove them all: the next `up` of each topology initialises its cluster again.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: {\"snapshots\": [...], \"incomplete\": [keys]}.")
@_friendly
def list_snapshots(prune: bool, as_json: bool) -> None:
    """List the snapshots of ready clusters that a warm `up` restores."""
    complete, incomplete = api.snapshots()
    if as_json and not prune:
        click.echo(json.dumps({"snapshots": [s.__dict__ for s in complete], "incomplete": incomplete}, indent=2))
        return
    if prune:
        removed = api.prune_snapshots()
        out.print(f"removed {_count(len(complete) + len(incomplete), 'snapshot')} ({_count(removed, 'volume')})")
        return
    if not complete and not incomplete:
        out.print("no snapshot: the first `up` of a topology saves one (`cmlab up --fresh` does not)")
        return
    table = Table(title="snapshots (a warm `up` restores one when the engine, image, parameters and nodes match)")
    for col in ("key", "engine", "made by lab", "created (UTC)", "saved"):
        table.add_column(col)
    for snap in complete:
        table.add_row(snap.key, snap.engine, snap.lab, snap.created, ", ".join(snap.names))
    for key in incomplete:
        table.add_row(key, "", "", "", "[yellow]incomplete (being saved, or cut short)[/]")
    out.print(table)


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


# ---- faults ---------------------------------------------------------------------------------

LAB_OPTION = click.option("-l", "--lab", help="The lab (default: the only one running).")
SEED_OPTION = click.option("--seed", type=int, help="Seed of random choices (one, minority, shapes).")


@main.group()
def hosts() -> None:
    """Docker hosts simulated on this machine (containers running Debian's
    Docker Engine), to try a lab across hosts (topologies/*-across-hosts.yaml)."""


@hosts.command(name="up")
@click.option("--name", default="sim", show_default=True, help="The set's name (sockets under /run/cmlab-hosts/NAME).")
@click.option("-n", "--count", default=3, show_default=True, help="How many hosts (h1 .. hN).")
@click.pass_obj
@_friendly
def hosts_up(progress: Progress, name: str, count: int) -> None:
    """Start the simulated hosts and print them as a topology's `hosts:`."""
    made = api.SimulatedHosts(api.connect(), name, count, progress).up()
    out.print("hosts:")
    for h in made:
        out.print(f'  - {{name: {h.name}, endpoint: "{h.endpoint}", address: {h.address}}}', highlight=False)
    out.print(f"`cmlab up --init-swarm FILE` joins them into one swarm; `cmlab hosts down --name {name}` removes them")


@hosts.command(name="down")
@click.option("--name", default="sim", show_default=True)
@_friendly
def hosts_down(name: str) -> None:
    """Remove the simulated hosts (and every lab object on them)."""
    removed = api.SimulatedHosts(api.connect(), name).down()
    out.print(f"hosts '{name}': removed {removed['containers']} containers, {removed['volumes']} volumes, "
              f"{removed['networks']} networks")


class _FaultGroup(click.Group):
    """``cmlab fault``: one command per fault kind of the registry
    (:data:`cmlab.faults.kinds.KINDS`, the words scenarios use), made when
    asked for; the API is read only then (``cmlab --help`` lists the group by
    its short help)."""

    def format_help_text(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self.help = f"Apply a fault. Targets: {api.TARGETS_HELP}. `cmlab faults` lists them, `cmlab heal` undoes."
        super().format_help_text(ctx, formatter)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | {k.name for k in api.FAULT_KINDS})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        if command is not None:
            return command
        kind = next((k for k in api.FAULT_KINDS if k.name == name), None)
        return _fault_command(kind) if kind is not None else None


@main.group(cls=_FaultGroup, short_help="Apply a fault (`cmlab fault --help` lists them and their targets).")
def fault() -> None:
    pass


#: Former options, still taken with a warning: fault -> option -> (argument, value).
_FORMER_OPTIONS = {"isolate-host": {"--keep-clients": ("clients", False)}}


def _fault_command(kind: Any) -> click.Command:
    """The ``cmlab fault NAME`` command of a fault kind: its arguments as
    click parameters (positional ones as arguments, booleans as
    ``--x/--no-x``, lists repeated), its summary as help."""
    params: list[click.Parameter] = [click.Option(["-l", "--lab"], help="The lab (default: the only one running).")]
    if kind.seeded:
        params.append(click.Option(["--seed"], type=int, help="Seed of random choices (one, minority, shapes)."))
    lines = [kind.summary[:1].upper() + kind.summary[1:] + "."]
    for a in kind.args:
        choice = click.Choice(a.choices) if a.choices else None
        if a.positional:
            params.append(click.Argument([a.name], nargs=-1 if a.kind == "list" else 1, required=a.required, type=choice))
            lines.append(f"{a.name.upper()}: {a.help}.")
        elif a.kind == "bool":
            params.append(click.Option([f"--{a.key}/--no-{a.key}"], default=a.default, show_default=True, help=a.help + "."))
        else:
            decls = [f"--{a.key}"] + ([a.short] if a.short else [])
            params.append(click.Option(decls, type=float if a.kind == "float" else choice, multiple=a.kind == "list",
                                       required=a.required, default=a.default, show_default=a.default is not None,
                                       help=a.help + "."))
    former = _FORMER_OPTIONS.get(kind.name, {})
    for flag in former:
        params.append(click.Option([flag], is_flag=True, hidden=True))

    @_friendly
    def callback(lab: str | None = None, seed: int | None = None, **values: Any) -> None:
        for flag, (name, value) in former.items():
            if values.pop(flag.lstrip("-").replace("-", "_"), False):
                err.print(f"[yellow]{flag} is deprecated: use --{'' if value else 'no-'}{name.replace('_', '-')}[/]")
                values[name] = value
        arguments = {a.name: list(v) if a.kind == "list" else v for a in kind.args
                     if (v := values.get(a.name)) not in (None, ())}
        _apply(lab, seed, lambda n: n.build(kind.name, **arguments))

    return click.Command(kind.name, params=params, callback=callback, help="\n\n".join(lines))


def _apply(lab: str | None, seed: int | None, build: Callable[[Any], Any]) -> None:
    nemesis = api.Lab.attach(_lab_name(lab)).nemesis(seed)
    applied = nemesis.apply(build(nemesis))
    f = applied.fault
    out.print(f"{f.key}: {f.describe()} (in effect {1000 * (applied.t_effect - applied.t_call):.0f} ms after the call)")


@fault.command(hidden=True, deprecated=True)
@LAB_OPTION
@SEED_OPTION
@click.argument("shape", type=click.Choice(["halves", "bridge", "majorities-ring"]))
@_friendly
def partition(lab: str | None, seed: int | None, shape: str) -> None:
    """Former name of `cmlab fault shape`."""
    _apply(lab, seed, lambda n: n.build("shape", name=shape))


@fault.command(name="split-az", hidden=True, deprecated=True)
@LAB_OPTION
@click.option("--one-way", is_flag=True, help="Only traffic from AZ to the others is dropped.")
@click.argument("az", nargs=-1, required=True)
@_friendly
def split_az(lab: str | None, one_way: bool, az: tuple[str, ...]) -> None:
    """Former name of `cmlab fault split-azs`."""
    _apply(lab, None, lambda n: n.build("split-azs", a=list(az), one_way=one_way))


@fault.command(name="container", hidden=True, deprecated=True)
@LAB_OPTION
@SEED_OPTION
@click.argument("action", type=click.Choice(["crash", "pause", "stop", "restart"]))
@click.argument("target")
@_friendly
def container_(lab: str | None, seed: int | None, action: str, target: str) -> None:
    """Former form of `cmlab fault crash|pause|stop|restart TARGET`."""
    _apply(lab, seed, lambda n: n.build(action, target=target))


@fault.command(name="vip-flap")
@LAB_OPTION
@click.option("--vip", help="The VIP (default: the only one).")
@click.option("--period", type=float, default=1.0, show_default=True, help="Seconds between toggles.")
@click.option("--duration", type=float, default=10.0, show_default=True, help="Seconds to flap for.")
@click.argument("node")
@_friendly
def vip_flap(lab: str | None, vip: str | None, period: float, duration: float, node: str) -> None:
    """Toggle the VIP on NODE on a schedule (blocks for --duration seconds)."""
    n = api.Lab.attach(_lab_name(lab)).nemesis().flap_vip(vip, node, period, duration)
    out.print(f"{n} toggles")


@fault.command(name="disk", hidden=True, deprecated=True)
@LAB_OPTION
@click.option("--fill", type=float, help="With action fill: the percentage to fill to.")
@click.argument("action", type=click.Choice(["readonly", "detach", "fill"]))
@click.argument("disk")
@_friendly
def disk_(lab: str | None, fill: float | None, action: str, disk: str) -> None:
    """Former form of `cmlab fault disk-readonly|disk-detach|disk-fill DISK`."""
    if action == "fill" and fill is None:
        raise click.UsageError("fill needs --fill PERCENT")
    _apply(lab, None, lambda n: n.build(f"disk-{action}", disk=disk, **({"percent": fill} if action == "fill" else {})))


@main.command()
@LAB_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_friendly
def faults(lab: str | None, as_json: bool) -> None:
    """List the active faults and whether each is observed in effect."""
    active = api.Lab.attach(_lab_name(lab)).nemesis().active()
    if as_json:
        click.echo(json.dumps([{**r, "observed": seen} for r, seen in active], indent=2))
        return
    if not active:
        out.print("no faults active")
        return
    table = Table(title="active faults")
    for col in ("key", "fault", "observed"):
        table.add_column(col)
    for r, seen in active:
        table.add_row(r["key"], r["describe"], {True: "yes", False: "[red]no[/]", None: "?"}[seen])
    out.print(table)


@main.command()
@LAB_OPTION
@click.argument("key", required=False)
@_friendly
def heal(lab: str | None, key: str | None) -> None:
    """Undo one fault (KEY) or all of them."""
    nemesis = api.Lab.attach(_lab_name(lab)).nemesis()
    t0 = time.monotonic()
    undone = [nemesis.undo(key)] if key else nemesis.heal()
    for f in undone:
        out.print(f"healed {f.key}: {f.describe()}")
    out.print(f"healed {len(undone)} fault(s) in {1000 * (time.monotonic() - t0):.0f} ms")


@main.command()
@click.option("--for", "for_lab", metavar="LAB|TOPOLOGY",
              help="Mark which scenarios fit this lab (a running lab, a topology file or an example) and why the others do not.")
@_friendly
def scenarios(for_lab: str | None) -> None:
    """List the built-in failover scenarios (the files of scenarios/)."""
    fits = api.scenarios_for(for_lab) if for_lab else {}
    for s in api.scenarios().values():
        if not for_lab:
            out.print(f"{s.name:28} {s.summary}", markup=False, highlight=False)
        elif not fits[s.name]:
            out.print(f"{s.name:28} fits       {s.summary}", markup=False, highlight=False)
        else:
            out.print(f"{s.name:28} does not   {fits[s.name]}", markup=False, highlight=False)


@main.command(name="check-scenario")
@click.argument("scenario")
@_friendly
def check_scenario(scenario: str) -> None:
    """Check a scenario file (or a built-in name) without touching Docker."""
    sc = api.scenario(scenario)
    out.print(f"{sc.source}: valid ({sc.name}: {len(sc.spec.setup)} setup step(s), {len(sc.spec.schedule)} step(s))")


@main.command()
@LAB_OPTION
@click.option("-n", "--trials", type=click.IntRange(1, 1000), default=1, show_default=True, help="How many trials.")
@click.option("--fresh", is_flag=True,
              help="A fresh lab for each trial: down, then `up --fresh` (the cluster initialised, not from a snapshot).")
@click.option("--seed", type=int, help="Seed of every random choice (targets, shapes, staggers); default: a random one, recorded.")
@click.option("--write-ms", type=float, help="Writers' cadence, milliseconds [default: the scenario's workload, or 20].")
@click.option("--fast-ms", type=float, help="Leader and VIP observers' cadence, milliseconds [default: the scenario's, or 20].")
@click.option("--role-ms", type=float, help="Role observers' cadence, milliseconds [default: the scenario's, or 200].")
@click.option("--json", "as_json", is_flag=True, help="Print the run's report (report.json) as one JSON document, nothing else.")
@click.argument("scenario")
@click.pass_obj
@_friendly
def run(progress: Progress, lab: str | None, trials: int, fresh: bool, seed: int | None, write_ms: float | None,
        fast_ms: float | None, role_ms: float | None, as_json: bool, scenario: str) -> None:
    """Run a failover SCENARIO (a built-in name or a scenario file) on a lab, N
    times; print each trial's row as it ends, the summary and where the
    reports are. Slower cadences cost the probes less CPU and lower the
    resolution (reported). Exit 0: every promise kept; 1: a promise broken;
    2: the run could not be made (bad input, a lab not ready, a trial that failed)."""
    sc = api.scenario(scenario)
    cadence = api.cadence(sc, write_ms, fast_ms, role_ms)
    if sc.spec.sweep:
        swept = api.sweep(api.Lab.attach(_lab_name(lab), progress=progress), sc, trials, cadence, seed)
        table = Table(title=f"{sc.name}: sweep of {', '.join(sc.spec.sweep)}, {trials} trial(s) each, seed {swept.seed}")
        for col in ("setting", "bound (s)", "client RTO p50 (s)", "max (s)", "failovers", "lost", "promises"):
            table.add_column(col)
        for st in swept.settings:
            rto, bound = st.report["summary"]["client_rto_s"], st.report["scenario"]["promises"]["rto_bound_s"]
            table.add_row(st.label, "-" if bound is None else f"{bound:.1f}", f"{rto.get('p50', float('nan')):.3f}",
                          f"{rto.get('max', float('nan')):.3f}", str(st.report["totals"]["failovers"]),
                          str(st.report["totals"]["lost_writes"]), "kept" if st.report["passed"] else "[red]BROKEN[/]")
        out.print(table)
        out.print(f"sweep: {swept.directory}/sweep.json, sweep.png; each setting's run under it")
        if not swept.passed:
            raise SystemExit(1)
        return
    def trial_ended(trial: Any, n: int) -> None:
        row = api.trial_row(trial.metrics)
        cells = ", ".join(f"{k} {_cell(v)}" for k, v in row.items() if v is not None)
        out.print(f"trial {trial.index}/{n}: {escape(cells)}", highlight=False)

    try:
        # At a terminal the run draws one live line (trial i of n, the step and its deadline, the writes so far).
        result = api.run(api.Lab.attach(_lab_name(lab), progress=progress), sc, trials, fresh, cadence, seed=seed,
                         on_trial=None if as_json else trial_ended)
    except CmlabError as exc:  # could not run: 2, apart from a broken promise's 1
        _error(str(exc))
        raise SystemExit(2) from None
    doc = result.report
    if as_json:
        click.echo(json.dumps(doc, indent=2))
    else:
        _print_run(doc)
        out.print(f"seed {result.seed}; reports: {result.directory}/report.html (and report.json, junit.xml, trial-*/timeline.png)")
    if not doc["passed"]:
        raise SystemExit(1)


@main.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="The bundle file [default: RUN_DIR.tar.zst].")
@click.option("--with-images", is_flag=True, help="Add the images (docker save), for a colleague without the same Debian mirror.")
@_friendly
def bundle(run_dir: str, output: str | None, with_images: bool) -> None:
    """Pack a run directory (scenario, seed, resolved topology, image IDs and
    package manifests, generated configs, doctor, events, histories, metrics,
    logs; secrets scrubbed) into one .tar.zst file."""
    src = Path(run_dir).resolve()
    made = api.bundle(src, Path(output) if output else src.with_name(src.name + ".tar.zst"), with_images)
    out.print(f"bundle: {made} ({made.stat().st_size / 1e6:.1f} MB)")


@main.command()
@click.argument("bundle_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--keep", is_flag=True, help="Leave the lab up afterwards, to poke at.")
@click.option("--name", help="The replay's lab name [default: the bundle's, or NAME-rN when a lab of that name exists here].")
@click.option("-y", "--yes", is_flag=True, help="Run without asking, once the review is printed.")
@_SET
@click.option("--allow-hosts", is_flag=True, help="Let a lab across hosts contact the Docker hosts the bundle names.")
@click.option("--trust-commands", is_flag=True,
              help="Let parameters the cluster runs as commands through (archive_command, CM's event trigger scripts...).")
@click.option("--max-size", type=click.IntRange(1, 1024 * 1024), metavar="MIB",
              help="Cap on the bundle's unpacked size, MiB [default: 200, and 2048 more for its images].")
@click.pass_obj
@_friendly
def replay(progress: Progress, bundle_file: str, keep: bool, name: str | None, yes: bool, assignments: tuple[str, ...],
           allow_hosts: bool, trust_commands: bool, max_size: int | None) -> None:
    """Bring a bundled run back: print what it will create and use, then (with
    --yes, or a yes at a terminal) bring up a lab of its own with the same
    images (checked), run the same scenario and seed, and print the verdicts
    and timings beside the bundle's. A bundle is someone else's file: paths on
    this host must be given again (--set), hosts and commands allowed by name.
    Exit status 0 only when every verdict matches."""
    review = api.review_replay(Path(bundle_file), name, _parameters(assignments), allow_hosts, trust_commands,
                               max_size * 1024**2 if max_size else None, progress)
    out.print(f"replay of {bundle_file}: what it will create and use", highlight=False)
    for line in review.lines():
        out.print(f"  {line}", markup=False, highlight=False)
    if review.refusals:
        review.discard()
        raise CmlabError("the replay is refused, nothing was created:\n"
                             + "\n".join(f"  {r}" for r in review.refusals))
    if not yes and not (sys.stdin.isatty() and click.confirm("create this lab and run the scenario?", default=False)):
        review.discard()
        raise CmlabError("nothing was created: give --yes (or answer yes at a terminal) to run the replay")
    result = api.run_replay(review, keep)
    for c in result.images:
        out.print(f"image of {c.container}: {c.how} (bundle {c.bundle_tag} {str(c.bundle_id)[7:19]}, "
                  f"here {c.tag} {str(c.id)[7:19]})", markup=False, highlight=False)
        for line in c.differences:
            out.print(f"    {line}", markup=False, highlight=False)
    table = Table(title=f"{result.run.scenario.name}, seed {result.run.seed}: bundle vs replay")
    for col in ("trial", "", "bundle", "replay", ""):
        table.add_column(col)
    fmt = lambda v: "-" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))  # noqa: E731
    for r in result.rows:
        mark = "[green]same[/]" if r.ok else ("[red]DIFFERS[/]" if r.kind == "verdict" else "[yellow]out of tolerance[/]")
        table.add_row(str(r.trial), escape(r.name) + (" (s)" if r.kind == "timing" else ""), escape(fmt(r.bundle)),
                      escape(fmt(r.replay)), mark)
    out.print(table)
    out.print(f"replay: {result.run.directory}" + (f"; the lab '{result.run.lab}' is still up" if keep else ""),
              markup=False, highlight=False)
    if not result.verdicts_match:
        out.print("[red]the verdicts differ from the bundle's[/]")
        raise SystemExit(1)
    out.print("[green]the verdicts match the bundle's[/]")


@main.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@_friendly
def report(run_dir: str) -> None:
    """Render a run's reports again from its saved histories (no lab needed)."""
    doc = api.rerender(Path(run_dir))
    _print_run(doc)
    out.print(f"reports: {run_dir}/report.html")


def _cell(value: Any) -> str:
    """A trial's value as one line shows it: seconds to the millisecond."""
    return f"{value:.3f} s" if isinstance(value, float) else str(value)


def _print_run(doc: dict[str, Any]) -> None:
    table = Table(title=f"{doc['scenario']['name']}: {doc['totals']['trials']} trial(s), resolution {doc['resolution_s']} s")
    for col in ("metric (s)", "n", "min", "p50", "p95", "max"):
        table.add_column(col)
    for metric, st in doc["summary"].items():
        table.add_row(metric, str(st["n"]), *(f"{st[k]:.3f}" if k in st else "" for k in ("min", "p50", "p95", "max")))
    out.print(table)
    for r in doc["trials"]:
        if r.get("starved"):
            out.print(f"[yellow]trial {r['trial']} starved[/] ({'discarded' if r.get('discarded') else doc.get('on_starved', 'report')}): "
                      + escape("; ".join(s["says"] for s in r["starved"])))
    t = doc["totals"]
    out.print(f"failovers {t['failovers']}, lost acknowledged writes {t['lost_writes']}, split-brain intervals "
              f"{t['split_brain_intervals']}, duplicate-VIP intervals {t['duplicate_vip_intervals']}; "
              f"promises {'kept' if doc['passed'] else '[red]BROKEN[/]'}")


@main.command()
@click.argument("lab", required=False)
@_friendly
def doctor(lab: str | None) -> None:
    """What this host can do, and so which faults are available; with LAB (a
    lab across hosts, by name or topology file), each of its hosts too."""
    tables = {"cmlab doctor": list(api.host_capabilities().values())}
    if lab:
        tables.update({f"host {host}": caps for host, caps in api.hosts_report(lab).items()})
    for title, caps in tables.items():
        table = Table(title=title)
        for col in ("capability", "", "detail", "enables"):
            table.add_column(col)
        for c in caps:
            table.add_row(c.name, "[green]yes[/]" if c.ok else "[red]no[/]", c.detail, c.enables)
        out.print(table)


if __name__ == "__main__":
    main()
