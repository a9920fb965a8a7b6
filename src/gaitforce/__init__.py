"""gaitforce: internal forces of the body from motion capture, in milliseconds.

The central type is :class:`gaitforce.Trial`; readers in :mod:`gaitforce.io` return it, preprocessing steps
in :mod:`gaitforce.signal` take and return it.
"""

from gaitforce.errors import GaitforceError

__version__ = "0.1.0"

__all__ = ["Trial", "Subject", "Event", "GaitforceError", "__version__"]


def __getattr__(name: str):
    # Trial, Subject and Event on first use: `import gaitforce` (and so `gaitforce --help`) stays free of numpy
    # and interruptible during start-up
    if name in ("Trial", "Subject", "Event"):
        from gaitforce import trial

        return getattr(trial, name)
    raise AttributeError(f"module 'gaitforce' has no attribute {name!r}")
