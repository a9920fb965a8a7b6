"""gaitforce: internal forces of the body from motion capture, in milliseconds.

The central type is :class:`gaitforce.Trial`; readers in :mod:`gaitforce.io` return it, preprocessing steps
in :mod:`gaitforce.signal` take and return it.
"""

from gaitforce.errors import GaitforceError

__version__ = "0.1.0"


def __getattr__(name):  # Trial and friends on first use: `import gaitforce.cli` stays light (and interruptible)
    if name in ("Trial", "Subject", "Event"):
        from gaitforce import trial

        return getattr(trial, name)
    raise AttributeError(f"module 'gaitforce' has no attribute {name!r}")

__all__ = ["Trial", "Subject", "Event", "GaitforceError", "__version__"]
