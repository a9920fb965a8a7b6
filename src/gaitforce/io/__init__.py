"""Readers and writers. Every reader returns :class:`gaitforce.Trial` (SI units, Y-up unless stated).

:func:`read` picks the reader by file extension; :func:`read_many` reads a batch, keeps going past files
that fail and returns the failures beside the trials.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from gaitforce.errors import GaitforceError, InputFileError
from gaitforce.trial import Trial

#: extension -> "module:function" of the reader, imported on first use.
READERS = {
    ".c3d": "gaitforce.io.c3d:read_c3d",
    ".trc": "gaitforce.io.opensim:read_trc",
    ".mot": "gaitforce.io.opensim:read_mot",
    ".sto": "gaitforce.io.opensim:read_mot",
    ".mat": "gaitforce.io.grand_challenge:read_gc_mat",
}


def _reader(path: Path):
    spec = READERS.get(path.suffix.lower())
    if spec is None:
        raise InputFileError(
            f"unknown file type {path.suffix!r} (readable: {', '.join(sorted(READERS))})", source=path
        )
    module, func = spec.split(":")
    return getattr(importlib.import_module(module), func)


def read(path: str | os.PathLike, **kwargs) -> Trial:
    """Read one file into a Trial. Raises :class:`GaitforceError` naming the file on bad input."""
    path = Path(path)
    if not path.exists():
        raise InputFileError("no such file", source=path)
    if path.is_dir():
        raise InputFileError("is a folder, not a file", source=path)
    try:
        return _reader(path)(path, **kwargs)
    except GaitforceError as err:
        raise err.with_source(path) from None


def read_many(paths, **kwargs) -> tuple[list[Trial], list[GaitforceError]]:
    """Read every file; a failing file is recorded and the rest are still read."""
    trials, failures = [], []
    for p in paths:
        try:
            trials.append(read(p, **kwargs))
        except GaitforceError as err:
            failures.append(err.with_source(p))
    return trials, failures
