"""Engine ``opengauss-cm``; see :mod:`.engine`.

The engine is imported on first use, so that :mod:`.query` (the ``cm_ctl query``
parser) imports alone, without Docker or the rest of cmlab.
"""

__all__ = ["OpenGaussCm"]


def __getattr__(name: str):
    if name == "OpenGaussCm":
        from cmlab.engines.opengauss_cm.engine import OpenGaussCm

        return OpenGaussCm
    raise AttributeError(name)
