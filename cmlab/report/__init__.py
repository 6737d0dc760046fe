"""Reports of a run, written from the saved histories alone (so ``cmlab
report RUN_DIR`` renders them again with no lab running):

* ``report.json``: the stable, documented schema ``cmlab.run/1``
  (docs/report-schema.md);
* ``junit.xml``: one test case per trial, every metric a JUnit property;
* ``report.html``: the summary table, the promises and their verdicts, and
  a timeline per trial (inline SVG);
* ``trial-NN/timeline.png``: each timeline for a quick look.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from cmlab.checkers.metrics import BY_NAME, METRICS, SUMMARISED, TrialMetrics, compute
from cmlab.checkers.promises import PROMISES, promised, verdicts
from cmlab.checkers.stats import summary
from cmlab.engines.base import Timing
from cmlab.errors import CmlabError
from cmlab.history import History
from cmlab.scenarios import SCENARIOS, Scenario, loads

SCHEMA = "cmlab.run/1"


def discarded(scenario: Scenario, m: TrialMetrics) -> bool:
    """Whether the trial is left out of the summary, totals and verdict (``on-starved: discard``)."""
    return scenario.spec.on_starved == "discard" and bool(m.starved)


def build(scenario: Scenario, trials: list[tuple[int, History, TrialMetrics]], meta: dict[str, Any]) -> dict[str, Any]:
    """The ``cmlab.run/1`` document."""
    timing = Timing(**trials[0][1].meta["timing"]) if trials else None
    rows = []
    for index, h, m in trials:
        rows.append({"trial": index, **m.to_json(), "verdicts": verdicts(scenario, timing, m) if timing else {},
                     "discarded": discarded(scenario, m)})
    counted = [(i, h, m) for i, h, m in trials if not discarded(scenario, m)]
    doc = {
        "schema": SCHEMA,
        **meta,
        "scenario": {"name": scenario.name, "summary": scenario.summary, "notes": scenario.notes,
                     "promises": promised(scenario, timing)},
        "resolution_s": max((m.resolution_s for _, _, m in trials), default=None),
        "summary": {k: summary([getattr(m, k) for _, _, m in counted]) for k in SUMMARISED},
        "totals": {"trials": len(counted), **{
            metric.total: sum(metric.brief(getattr(m, metric.name)) or 0 for _, _, m in counted)
            for metric in METRICS if metric.total}},
        "on_starved": scenario.spec.on_starved,
        "discarded_trials": [i for i, _, m in trials if discarded(scenario, m)],
        "probe_cpu_percent": summary([m.probe_cpu_percent for _, _, m in trials]),
        "trials": rows,
    }
    doc["passed"] = all(v is not False for r in rows if not r["discarded"] for v in r["verdicts"].values())
    return doc


def junit(doc: dict[str, Any]) -> bytes:
    suite = ET.Element("testsuite", name=f"cmlab.{doc['scenario']['name']}", tests=str(len(doc["trials"])),
                       failures=str(sum(any(v is False for v in r["verdicts"].values()) for r in doc["trials"])))
    props = ET.SubElement(suite, "properties")
    for metric, stats in doc["summary"].items():
        for stat in ("p50", "p95", "max"):
            if stat in stats:
                ET.SubElement(props, "property", name=f"{metric}.{stat}", value=f"{stats[stat]:.3f}")
    for r in doc["trials"]:
        case = ET.SubElement(suite, "testcase", classname=f"cmlab.{doc['scenario']['name']}", name=f"trial-{r['trial']:02d}",
                             time=f"{(r['client_rto_s'] or 0):.3f}")
        cprops = ET.SubElement(case, "properties")
        for metric in METRICS:
            ET.SubElement(cprops, "property", name=metric.name, value=str(metric.brief(r.get(metric.name))))
        broken = [k for k, v in r["verdicts"].items() if v is False]
        if broken:
            ET.SubElement(case, "failure", message=", ".join(broken)).text = json.dumps(
                {k: r[k] for k in ("client_rto_s", "lost_writes", "split_brain", "failover")}, default=str)[:4000]
    return ET.tostring(suite, encoding="utf-8", xml_declaration=True)


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    return "" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


#: A verdict as the trial table shows it, with its meaning in the cell's title.
VERDICT_MARK = {True: ("✓", "kept", "#080"), False: ("✗", "BROKEN", "#c00"), None: ("–", "not promised", "#999")}

#: How to read a timeline; the plot's own legend names each colour.
TIMELINE_HELP = (
    "Each timeline runs in seconds from the fault in effect (the orange band: from the fault's call to its heal). "
    "A <b>writes</b> lane is one client: <i>vip:…</i> writes through a VIP, <i>node:…</i> straight to one node "
    "(those fail, grey ×, whenever the node is a standby: that is expected, not an outage). A tick is an "
    "acknowledged write, in the colour of the node that acknowledged it; a grey × a write that failed; a cyan "
    "diamond one whose outcome is unknown (the connection broke after the request). A <b>role</b> lane is what "
    "each node says it is (red: primary); <b>leader</b> is the node the manager names primary (light grey: it "
    "names none, hatched: it could not be read); a <b>VIP</b> lane is the node holding the VIP (black: two nodes "
    "at once). The dashed lines mark the measured moments.")


def html_report(doc: dict[str, Any], svgs: dict[int, str]) -> str:
    s = doc["scenario"]
    out = [f"<!doctype html><meta charset=utf-8><title>cmlab {html.escape(s['name'])}</title>",
           "<style>body{font:14px sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse}"
           "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f4f4f4}"
           "td.def{text-align:left;color:#444;font-size:12px;max-width:42em}svg{max-width:100%;height:auto}"
           "summary{cursor:pointer;font-weight:bold;margin:.6em 0}</style>",
           f"<h1>{html.escape(s['name'])}</h1><p>{html.escape(s['summary'])}</p>",
           f"<p>lab <b>{html.escape(str(doc.get('lab')))}</b>, engine <b>{html.escape(str(doc.get('engine')))}</b>, "
           f"{doc['totals']['trials']} trial(s), resolution {_fmt(doc['resolution_s'])} s, "
           f"probe CPU p50 {_fmt(doc['probe_cpu_percent'].get('p50'))} % of one core; "
           + ("<b style='color:#080'>every promise kept</b>" if doc["passed"] else "<b style='color:#c00'>a promise BROKEN</b>")
           + "</p>"]
    if s["notes"]:
        out.append(f"<p><i>{html.escape(s['notes'])}</i></p>")
    out.append("<h2>Summary (seconds from the fault)</h2><table><tr><th>metric</th><th>n</th><th>min</th><th>p50</th>"
               "<th>p95</th><th>max</th><th>stdev</th><th>missing</th><th>what it measures</th></tr>")
    for metric, st in doc["summary"].items():
        definition = BY_NAME[metric].definition if metric in BY_NAME else ""
        out.append(f"<tr><th>{metric}</th>" + "".join(f"<td>{_fmt(st.get(k))}</td>" for k in ("n", "min", "p50", "p95", "max", "stdev", "missing"))
                   + f"<td class=def>{html.escape(definition)}</td></tr>")
    out.append("</table><h2>Promises</h2><table><tr><th>promise</th><th>value</th><th>trials kept</th><th>broken</th>"
               "<th>what it says</th></tr>")
    made = [p for p in PROMISES if p.key in s["promises"]]
    for p in made:
        kept = sum(r["verdicts"].get(p.verdict) is True for r in doc["trials"])
        broken = sum(r["verdicts"].get(p.verdict) is False for r in doc["trials"])
        out.append(f"<tr><th>{p.key}</th><td>{_fmt(s['promises'][p.key])}</td><td>{kept}</td>"
                   f"<td{' style=color:#c00' if broken else ''}>{broken}</td><td class=def>{html.escape(p.says)}</td></tr>")
    verdict_keys = [p.verdict for p in PROMISES if any(p.verdict in r["verdicts"] for r in doc["trials"])]
    columns = [m for m in METRICS if m.column]
    out.append("</table><h2>Trials</h2><table><tr><th>trial</th><th>old → new</th>"
               + "".join(f"<th title='{html.escape(m.definition)}'>{html.escape(m.column or '')}</th>" for m in columns)
               + "".join(f"<th title='{html.escape(k)}' style='max-width:7em'>{html.escape(k.replace('_', ' '))}</th>"
                         for k in verdict_keys) + "</tr>")
    for r in doc["trials"]:
        marks = []
        for k in verdict_keys:
            mark, word, colour = VERDICT_MARK[r["verdicts"].get(k)]
            marks.append(f"<td title='{word}' style='color:{colour};text-align:center'>{mark}</td>")
        out.append(f"<tr><td>{r['trial']}</td><td>{r['old_primary']} → {r['new_primary']}</td>"
                   + "".join(f"<td>{_fmt(m.brief(r.get(m.name)))}</td>" for m in columns) + "".join(marks) + "</tr>")
    out.append("</table><p style='font-size:12px'>✓ kept, ✗ broken, – not promised; a column's title gives the "
               "metric's definition; the columns in seconds are measured from the fault.</p>")
    out.append(f"<h2>Timelines</h2><p style='font-size:13px;max-width:60em'>{TIMELINE_HELP}</p>")
    for r in doc["trials"]:
        broken = any(v is False for v in r["verdicts"].values())
        head = f"Trial {r['trial']}{' (discarded)' if r.get('discarded') else ''}: {r['old_primary']} → {r['new_primary']}"
        if broken:
            head += " — promise broken"
        out.append(f"<details{' open' if broken or len(doc['trials']) == 1 else ''}><summary>{html.escape(head)}</summary>")
        if r.get("starved"):
            out.append("<p style='color:#a60'><b>Starved</b>: the host distorted this trial beyond its resolution: "
                       + html.escape("; ".join(s["says"] for s in r["starved"])) + "</p>")
        out.append(svgs.get(r["trial"], ""))
        if r["lost_writes"]:
            out.append("<p>Lost acknowledged writes: " + html.escape(", ".join(
                f"{w['writer']}#{w['seq']} by {w['node']} at {w['acked_s']:+.3f} s" for w in r["lost_writes"][:200])) + "</p>")
        out.append("</details>")
    out.append("<h2>Metric definitions</h2><table>")
    for m in METRICS:
        out.append(f"<tr><th>{m.name}</th><td>{html.escape(m.unit)}</td><td class=def>{html.escape(m.definition)}</td></tr>")
    out.append("</table>")
    return "\n".join(out)


def render(directory: Path, scenario: Scenario, trials: list[tuple[int, History, TrialMetrics]], meta: dict[str, Any]) -> dict[str, Any]:
    doc = build(scenario, trials, meta)
    (directory / "report.json").write_text(json.dumps(doc, indent=2, default=str))
    (directory / "junit.xml").write_bytes(junit(doc))
    from cmlab.report.plot import draw  # matplotlib: a second of CPU to import, paid only when plotting

    svgs = {}
    for index, h, m in trials:
        (directory / f"trial-{index:02d}" / "timeline.png").write_bytes(draw(h, m, "png"))
        svg = draw(h, m, "svg").decode()
        svgs[index] = svg[svg.index("<svg"):]
    (directory / "report.html").write_text(html_report(doc, svgs))
    return doc


def write_reports(directory: Path, scenario: Scenario, trials: list[tuple[int, History, TrialMetrics]],
                  meta: dict[str, Any]) -> dict[str, Any]:
    """Write ``run.json`` (the scenario's name and ``meta``: lab, engine,
    parameters, seed) and every report of a run; returns ``report.json``'s document."""
    (directory / "run.json").write_text(json.dumps({"scenario": scenario.name, **meta}, indent=2))
    return render(directory, scenario, trials, meta)


def rerender(directory: Path) -> dict[str, Any]:
    """Render a saved run's reports again from its histories (no lab needed).

    A run directory may be someone else's (a bundle), so it must hold plain
    files and directories only: a link anywhere in it is refused before
    anything is read or written (a report written through a link lands
    outside), and a malformed file is named in one line.

    :raises CmlabError: not a run directory, a link in it, or a file that cannot be read as written.
    """
    if not (directory / "run.json").is_file():
        raise CmlabError(f"{directory} is not a run directory ({directory / 'run.json'} is missing)")
    refuse_links(directory)
    try:
        meta = json.loads((directory / "run.json").read_text(encoding="utf-8"))
        name = meta.pop("scenario")
    except (OSError, UnicodeDecodeError, ValueError, RecursionError, KeyError, TypeError, AttributeError) as exc:
        raise CmlabError(f"{directory / 'run.json'} is malformed ({type(exc).__name__}: {exc})") from None
    saved = directory / "scenario.yaml"
    scenario = _saved_scenario(saved, name) if saved.exists() else _builtin(name)
    trials = []
    for trial_dir in sorted(directory.glob("trial-*")):
        path = trial_dir / "history.jsonl"
        try:
            h = History.load(path)
            trials.append((int(trial_dir.name.split("-")[1]), h, compute(h)))
        except (OSError, UnicodeDecodeError, ValueError, RecursionError, KeyError, TypeError, AttributeError,
                IndexError) as exc:
            raise CmlabError(f"{path} is malformed ({type(exc).__name__}: {str(exc)[:200]})") from None
    if not trials:
        raise CmlabError(f"{directory} holds no trial (no trial-*/history.jsonl)")
    try:
        return render(directory, scenario, trials, meta)
    except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        raise CmlabError(f"{directory}: the saved run cannot be rendered ({type(exc).__name__}: {str(exc)[:200]})") from None


def refuse_links(directory: Path) -> None:
    """Refuse a directory that holds a link anywhere (walked without following links).

    :raises CmlabError: naming the first link and where it points.
    """
    for root, dirs, files in os.walk(directory):
        for name in dirs + files:
            path = Path(root) / name
            if path.is_symlink():
                raise CmlabError(f"{path} is a link (to {os.readlink(path)}): a run directory holds plain files only; "
                                 "refused, nothing was read or written")


def _saved_scenario(path: Path, name: Any) -> Scenario:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CmlabError(f"{path} cannot be read as text ({exc})") from None
    return loads(text, str(path), name if isinstance(name, str) else None)


def _builtin(name: Any) -> Scenario:
    if not isinstance(name, str) or name not in SCENARIOS:
        raise CmlabError(f"the run's scenario {name!r} has no scenario.yaml beside it and is no built-in scenario")
    return SCENARIOS[name]
