"""Faults (the nemesis): exact, reversible, recorded.

* :mod:`.base`: the :class:`~.base.Fault` contract (apply / undo / observe).
* :mod:`.targets`: "primary", "az:az1", "minority"... resolved to node names.
* :mod:`.grudge`: pure partition planners (Jepsen's shapes).
* :mod:`.network`, :mod:`.process`, :mod:`.vip`, :mod:`.disk`: the faults.
* :mod:`.host`: what this host can do (``cmlab doctor``).
* :mod:`.nemesis`: applies, records, lists and heals them for one lab.
"""
