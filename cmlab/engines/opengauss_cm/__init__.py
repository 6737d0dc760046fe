"""Engine ``opengauss-cm``; see :mod:`.engine`."""

from cmlab.engines.opengauss_cm.engine import OpenGaussCm

__all__ = ["OpenGaussCm"]
