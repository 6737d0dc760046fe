"""Engines: the cluster managers a lab can run (see :mod:`cmlab.engines.base`)."""
