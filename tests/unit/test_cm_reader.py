"""CM's query stream: readings from one long-lived exec, the fallback, the lease."""

import queue
import threading
from pathlib import Path

from cmlab.engines.opengauss_cm.query import parse
from cmlab.engines.opengauss_cm.reader import MARK, QueryStream, loop_script

REAL = Path(__file__).parent / "data" / "opengauss-cm-real"
NORMAL = (REAL / "query-Cvidp-normal.txt").read_text()
STOPPED = (REAL / "query-Cvidp-dn-stopped.txt").read_text()
NOT_CONNECTED = "cm_ctl: can't connect to cm_server.\nMaybe cm_server is not running, or timeout expired. Please try again.\n"


class FakeNode:
    """A node-side loop: the test pushes outputs; ``None`` ends the stream."""

    def __init__(self):
        self.outputs: queue.Queue = queue.Queue()
        self.scripts: list[str] = []

    def lines(self, script):
        self.scripts.append(script)
        while (out := self.outputs.get(timeout=5)) is not None:
            yield from out.rstrip("\n").splitlines()
            yield f"{MARK} 0"


def make(nodes, fallback_answers):
    runs = []
    fallbacks = []

    def fallback():
        fallbacks.append(1)
        return fallback_answers.pop(0)

    qs = QueryStream(lambda node, script: nodes[node].lines(script),
                     lambda node, argv: runs.append((node, argv)) or (0, ""), fallback, 0.2, deadline_s=1.0)
    return qs, runs, fallbacks


def test_the_first_reading_falls_back_then_the_stream_serves():
    a = FakeNode()
    qs, runs, fallbacks = make({"og1": a}, [("og1", parse(NORMAL))])
    assert qs.read().cluster_state == "Normal" and qs.opened == 1 and fallbacks == [1]
    a.outputs.put(STOPPED)
    assert qs.read().cluster_state == "Degraded"
    a.outputs.put(NORMAL)
    assert qs.read().cluster_state == "Normal"
    assert (qs.streamed, qs.fell_back) == (2, 1)
    assert "cm_ctl query -Cvidp" in a.scripts[0] and "sleep 0.2" in a.scripts[0]


def test_an_older_reading_is_dropped_for_a_fresh_one():
    a = FakeNode()
    qs, _, _ = make({"og1": a}, [("og1", parse(NORMAL))])
    qs.read()
    a.outputs.put(STOPPED)  # produced before the next read() was called
    threading.Event().wait(0.2)  # let the pump queue it
    threading.Timer(0.1, lambda: a.outputs.put(NORMAL)).start()
    assert qs.read().cluster_state == "Normal"


def test_a_dead_stream_or_no_cms_falls_back_and_moves():
    a, b = FakeNode(), FakeNode()
    qs, runs, fallbacks = make({"og1": a, "og2": b}, [("og1", parse(NORMAL)), ("og2", parse(STOPPED)),
                                                        ("og2", parse(NORMAL))])
    qs.read()
    a.outputs.put(None)  # og1's container stopped: its exec ends
    assert qs.read().cluster_state == "Degraded" and qs.opened == 2
    assert runs[-1][0] == "og1" and runs[-1][1][:2] == ["rm", "-f"]  # the old lease removed
    b.outputs.put(NOT_CONNECTED)
    assert qs.read().cluster_state == "Normal" and len(fallbacks) == 3


def test_close_removes_the_lease_the_loop_watches():
    a = FakeNode()
    qs, runs, _ = make({"og1": a}, [("og1", parse(NORMAL))])
    qs.read()
    qs.close()
    assert runs[-1][1][0:2] == ["rm", "-f"] and runs[-1][1][2] in a.scripts[0]
    a.outputs.put(None)


def test_the_loop_script_ends_without_its_lease_or_after_its_lifetime():
    s = loop_script("/tmp/lease-x", 0.2)
    assert s.startswith("touch /tmp/lease-x;") and "[ -e /tmp/lease-x ]" in s and "$SECONDS -lt" in s
