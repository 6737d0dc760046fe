"""``cm_ctl query`` read through one long-lived ``docker exec`` instead of one a reading.

A ``docker exec`` costs the Docker daemon, containerd and runc a new process in
the container's namespaces each time: at the probes' 200 ms that was most of a
CM lab's probe cost (``ci/bench_probes.py``). Here one exec runs a loop in the
node, ``cm_ctl query -Cvidp`` every ``interval_s`` seconds, each output followed
by a marker line; a thread splits the stream into readings. The loop ends by
itself when its lease file is removed (:meth:`QueryStream.close`), after
``LIFETIME_S`` seconds, or with its container.

When the stream's node stops, dies or its cm_ctl reaches no CMS, the reading is
taken the old way (``fallback``: an exec on each running node in turn, as
:meth:`OpenGaussCm.query` does) and the stream restarts on a node that answered.
"""

from __future__ import annotations

import itertools
import os
import queue
import threading
from typing import Callable, Iterator

from cmlab.engines.opengauss_cm.query import NOT_CONNECTED, CmQuery, parse

MARK = "@@cmlab-query-end"
#: Seconds a reading loop lives at most if nobody closes it (a crashed probe run).
LIFETIME_S = 3600
_ids = itertools.count()


def loop_script(lease: str, interval_s: float) -> str:
    """The node-side loop (bash; ``$SECONDS`` so that a round forks only cm_ctl)."""
    return (f"touch {lease}; while [ -e {lease} ] && [ $SECONDS -lt {LIFETIME_S} ]; do "
            f"cm_ctl query -Cvidp 2>&1; echo \"{MARK} $?\"; sleep {interval_s:g}; done")


class QueryStream:
    """Readings of ``cm_ctl query -Cvidp`` from a loop in one node.

    :param open_stream: ``(node, script) -> iterator of output lines``: runs
        ``script`` as omm in the node (``NodeAccess.stream``).
    :param run: ``(node, argv) -> (exit code, output)`` as omm (to remove the lease).
    :param fallback: one reading the old way (raises when no node answers).
    :param interval_s: seconds between the loop's readings.
    :param deadline_s: seconds :meth:`read` waits for the stream's next reading
        before it takes one by ``fallback``.
    """

    def __init__(self, open_stream: Callable[[str, str], Iterator[str]],
                 run: Callable[[str, list[str]], tuple[int, str]],
                 fallback: Callable[[], tuple[str, CmQuery]], interval_s: float, deadline_s: float) -> None:
        self._open, self._run, self._fallback = open_stream, run, fallback
        self.interval_s, self.deadline_s = interval_s, deadline_s
        self._readings: queue.Queue[tuple[str, object]] = queue.Queue()
        self._node: str | None = None
        self._lease = ""
        self._closed = False
        #: Counts, for the benchmark and the tests: readings from the stream, by fallback, streams opened.
        self.streamed = self.fell_back = self.opened = 0

    def _start(self, node: str) -> None:
        self._stop_stream()
        self._lease = f"/tmp/cmlab-query-{os.getpid()}-{next(_ids)}"
        self._node = node
        self._readings = queue.Queue()
        lines = self._open(node, loop_script(self._lease, self.interval_s))
        threading.Thread(target=self._pump, args=(lines, self._readings), daemon=True, name=f"cm-query-{node}").start()
        self.opened += 1

    def _pump(self, lines: Iterator[str], out: queue.Queue) -> None:
        block: list[str] = []
        try:
            for line in lines:
                if line.startswith(MARK):
                    out.put(("text", "\n".join(block)))
                    block = []
                else:
                    block.append(line)
        except Exception as exc:  # noqa: BLE001 - a broken stream is a fallback, not a crash
            out.put(("end", f"{type(exc).__name__}: {exc}"))
            return
        out.put(("end", "the reading loop ended"))

    def _stop_stream(self) -> None:
        if self._node is not None and self._lease:
            try:
                self._run(self._node, ["rm", "-f", self._lease])
            except Exception:  # noqa: BLE001 - its container may be gone; the loop then is too
                pass
        self._node = None

    def read(self) -> CmQuery:
        """The next reading.

        :raises EngineError: (from ``fallback``) no node's cm_ctl reached a CMS.
        """
        if self._closed:
            raise RuntimeError("the query stream is closed")
        if self._node is not None:  # a stopped container ends the stream: "end" below
            # A reading finished after this call, as an exec's would be: older ones are dropped.
            kind, value = "", ""
            while kind != "end":
                try:
                    kind, value = self._readings.get_nowait()
                except queue.Empty:
                    break
            try:
                if kind != "end":
                    kind, value = self._readings.get(timeout=self.deadline_s)
            except queue.Empty:
                kind, value = "end", "no reading in time"
            if kind == "text" and NOT_CONNECTED not in str(value):
                self.streamed += 1
                return parse(str(value))
        node, q = self._fallback()
        self.fell_back += 1
        self._start(node)
        return q

    def close(self) -> None:
        """End the node-side loop (its lease removed) and stop reading."""
        self._closed = True
        self._stop_stream()
