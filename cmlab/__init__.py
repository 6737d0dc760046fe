"""cmlab: a lab for database cluster managers.

Layers, in the order a lab is made: :mod:`cmlab.topology` (the file and its
resolution), :mod:`cmlab.images` (offline image builds), :mod:`cmlab.runtime`
(Docker objects), :mod:`cmlab.engines` (the cluster managers),
:mod:`cmlab.probes` (clients that measure). :mod:`cmlab.api` ties them
together; :mod:`cmlab.cli` is a thin shell over it.
"""

__version__ = "0.1.0"
