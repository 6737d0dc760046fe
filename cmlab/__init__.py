"""cmlab: a lab for database cluster managers.

Layers, in the order a lab is made: :mod:`cmlab.topology` (the file and its
resolution), :mod:`cmlab.images` (offline image builds), :mod:`cmlab.runtime`
(Docker objects), :mod:`cmlab.engines` (the cluster managers),
:mod:`cmlab.probes` (clients that measure); :mod:`cmlab.lab` is a lab made of
them, below the runs (:mod:`cmlab.trials`), sweeps, bundles and replays.
:mod:`cmlab.api` is the facade over all of it; :mod:`cmlab.cli` and the
pytest plugin are thin shells over the facade.
"""

__version__ = "0.1.0"
