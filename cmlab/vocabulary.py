"""One vocabulary: the consensus group that arbitrates (etcd for Patroni,
the CMS for CM) is the **quorum** (the topology's role ``quorum``), and its
leader the **quorum leader**, in targets, process duties, node roles and
scenario names alike. The former words are still taken, each with a warning
(once a process), so that older scenario files, scripts and bundles run."""

from __future__ import annotations

from cmlab.progress import log

#: Former word -> the word now.
FORMER = {
    "arbiters": "quorum",                              # target: the quorum's members
    "arbiter-leader": "quorum-leader",                 # target: its leader
    "arbiter": "quorum",                               # process duty, node role
    "isolate-arbiter-leader": "isolate-quorum-leader",  # built-in scenarios
    "kill-arbiter-leader": "kill-quorum-leader",
}
_warned: set[str] = set()


def current(word: str) -> str:
    """``word`` in today's vocabulary (a former word is replaced, with a warning once)."""
    now = FORMER.get(word)
    if now is None:
        return word
    if word not in _warned:
        _warned.add(word)
        log.warning("'%s' is a former word: cmlab now says '%s' (the old one still works)", word, now)
    return now
