"""User-facing errors.

Every problem caused by the user's input (a corrupt file, a missing marker, a unit mismatch) is raised as a
:class:`GaitforceError`. The CLI prints it as one line, ``gaitforce: error: <source>: <message>``, and exits
non-zero; programming errors keep their traceback.
"""

from __future__ import annotations

import os


class GaitforceError(Exception):
    """An error in the user's input, reported as one line naming its source."""

    def __init__(self, message: str, *, source: str | os.PathLike | None = None):
        self.message = str(message)
        self.source = None if source is None else str(source)
        super().__init__(self.line())

    def line(self) -> str:
        return f"{self.source}: {self.message}" if self.source else self.message

    def with_source(self, source: str | os.PathLike) -> "GaitforceError":
        """The same error, naming ``source`` if it named none."""
        if self.source is None:
            return type(self)(self.message, source=source)
        return self


class InputFileError(GaitforceError):
    """A file that cannot be read, is corrupt, or holds impossible values."""


class MissingChannelError(GaitforceError):
    """A channel (marker, force plate, target) the operation needs is absent."""


class UnitError(GaitforceError):
    """Values whose magnitude contradicts their declared unit (e.g. mm labelled m)."""
