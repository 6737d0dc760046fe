"""Progress of long steps (image builds, waits) for people at a terminal.

The API takes a :class:`Progress`; the CLI passes one that draws on the
terminal, tests and libraries get :class:`Quiet`, which only logs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

log = logging.getLogger("cmlab")


class Progress:
    """Shows each step with a spinner and its duration; ``verbose`` also
    shows what runs (commands, build output)."""

    def __init__(self, console: "Console | None" = None, verbose: bool = False) -> None:
        if console is None:
            from rich.console import Console

            console = Console(stderr=True)
        self.console = console
        self.verbose = verbose

    @contextmanager
    def step(self, what: str) -> Iterator[None]:
        t0 = time.monotonic()
        log.info("%s ...", what)
        with self.console.status(what):
            try:
                yield
            except BaseException:
                self.console.print(f"[red]✗[/] {what} ({time.monotonic() - t0:.1f} s)")
                raise
        self.console.print(f"[green]✓[/] {what} ({time.monotonic() - t0:.1f} s)")

    def detail(self, line: str) -> None:
        log.debug("%s", line)
        if self.verbose:
            self.console.print(line, style="dim", markup=False, highlight=False)


class Quiet(Progress):
    """Progress that only logs (to the ``cmlab`` logger)."""

    def __init__(self) -> None:
        from rich.console import Console

        super().__init__(Console(quiet=True), verbose=False)

    @contextmanager
    def step(self, what: str) -> Iterator[None]:
        t0 = time.monotonic()
        log.info("%s ...", what)
        yield
        log.info("%s done in %.1f s", what, time.monotonic() - t0)
