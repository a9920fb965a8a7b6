"""gaitforce: internal forces of the body from motion capture, in milliseconds.

The central type is :class:`gaitforce.Trial`; readers in :mod:`gaitforce.io` return it, preprocessing steps
in :mod:`gaitforce.signal` take and return it.
"""

from gaitforce.errors import GaitforceError
from gaitforce.trial import Event, Subject, Trial

__version__ = "0.1.0"

__all__ = ["Trial", "Subject", "Event", "GaitforceError", "__version__"]
