"""Progress of long steps (image builds, waits) for people at a terminal.

The API takes a :class:`Progress`; the CLI passes one that draws on the
terminal, tests and libraries get :class:`Quiet`, which only logs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
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
        #: The run being watched (:meth:`watching`): its live line stands in for the steps' spinners.
        self._watch: RunWatch | None = None

    @contextmanager
    def step(self, what: str) -> Iterator[None]:
        t0 = time.monotonic()
        log.info("%s ...", what)
        if self._watch is not None:
            # A run's live line is up (rich draws one live display at a time): the step goes in it.
            self._watch.start_step(what)
            status = nullcontext()
        else:
            status = self.console.status(what)
        with status:
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

    @contextmanager
    def watching(self) -> Iterator["RunWatch"]:
        """A :class:`RunWatch` for a run; at a terminal its line is drawn live
        (twice a second: the display's own CPU is part of what a trial measures)."""
        watch = RunWatch()
        if not self.console.is_terminal:
            yield watch
            return
        from rich.live import Live
        from rich.text import Text

        class Line:
            def __rich__(self) -> Text:
                return Text(watch.line(), style="dim")

        with Live(Line(), console=self.console, refresh_per_second=2, transient=True, redirect_stdout=True):
            self._watch = watch
            try:
                yield watch
            finally:
                self._watch = None


class Quiet(Progress):
    """Progress that only logs (to the ``cmlab`` logger); a run's watch draws nothing."""

    def __init__(self) -> None:
        from rich.console import Console

        super().__init__(Console(quiet=True), verbose=False)

    @contextmanager
    def step(self, what: str) -> Iterator[None]:
        t0 = time.monotonic()
        log.info("%s ...", what)
        yield
        log.info("%s done in %.1f s", what, time.monotonic() - t0)

    @contextmanager
    def watching(self) -> Iterator[RunWatch]:
        yield RunWatch()


class RunWatch:
    """A run's progress, told by the run as it goes (trial, step, writes) and
    read by whoever shows it: :meth:`Progress.watching` draws it as one live
    line at a terminal; otherwise nothing is drawn (a log gets each trial's
    row when it ends, from the caller)."""

    def __init__(self) -> None:
        self.trial, self.trials = 0, 0
        self.step, self.step_started, self.step_deadline_s = "", 0.0, None
        self._counts: "Callable[[], tuple[int, int]] | None" = None

    def start_trial(self, index: int, of: int) -> None:
        self.trial, self.trials, self.step = index, of, "starting the probes"
        self.step_started, self.step_deadline_s = time.monotonic(), None

    def start_step(self, text: str, deadline_s: float | None = None) -> None:
        """A step began: ``text`` says what it is; ``deadline_s``: its length or deadline, seconds."""
        self.step, self.step_started, self.step_deadline_s = text, time.monotonic(), deadline_s

    def count_writes(self, counts: "Callable[[], tuple[int, int]] | None") -> None:
        """Where to read the clients' writes so far, ``(acknowledged, failed)``; None: no probes."""
        self._counts = counts

    def line(self) -> str:
        """The progress as one line: ``trial 2/5 · wait primary-changed · 3.2 s of 30 s · writes 812 acknowledged, 37 failed``."""
        if not self.trial:
            return "starting"
        parts = [f"trial {self.trial}/{self.trials}", self.step]
        elapsed = time.monotonic() - self.step_started
        parts.append(f"{elapsed:.1f} s" + (f" of {self.step_deadline_s:g} s" if self.step_deadline_s else ""))
        if self._counts is not None:
            try:
                acked, failed = self._counts()
                parts.append(f"writes {acked} acknowledged, {failed} failed")
            except Exception:  # noqa: BLE001 - a display never breaks the run it shows
                pass
        return " · ".join(p for p in parts if p)
