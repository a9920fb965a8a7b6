"""Safe outputs: every dataset, bundle, report and label file is written whole or not at all.

Three rules, one home:

- :func:`check_output` runs **before any work** (``train`` fails before training): an output that exists and is
  not empty needs ``overwrite=True`` (the CLI's ``--overwrite``); a path under a file, a read-only folder or a
  file name that cannot be encoded is one line, not a traceback after an hour.
- :func:`atomic_dir` writes a folder output into a temporary sibling (``.NAME.tmp-*``) and renames it into place
  when complete; the previous output is moved aside (``.NAME.old-*``) for the instant of the swap and removed
  after it. A kill or a full disk at any moment leaves the previous output intact (or, killed within the swap,
  beside it as ``.NAME.old-*``, put back by the next write, :func:`recover`) and never a half output that loads.
- :func:`atomic_file` does the same for one file (``os.replace`` of a temporary sibling).

Every :class:`OSError` on the way becomes one :class:`OutputError` line naming the path and the cause
(:func:`os_error`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import uuid
from pathlib import Path

from gaitforce.errors import GaitforceError

_CAUSES = {
    errno.EEXIST: "already exists",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "is a folder, not a file",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied (read-only?)",
    errno.EPERM: "permission denied (read-only?)",
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.ENAMETOOLONG: "file name too long",
    errno.ENOENT: "no such file or folder",
    errno.EILSEQ: "file name has bytes the file system does not accept",
}


class OutputError(GaitforceError):
    """An output that cannot be written (exists, not a folder, read-only, no space, bad name)."""


def os_error(err: BaseException, path=None) -> OutputError:
    """An :class:`OSError` (or a name-encoding error) as one line naming the path and the cause."""
    if isinstance(err, UnicodeError):
        return OutputError("file name has bytes that are not valid UTF-8", source=_show(path))
    where = path if path is not None else (getattr(err, "filename", None) or None)
    cause = _CAUSES.get(getattr(err, "errno", None)) or (getattr(err, "strerror", None) or str(err) or
                                                         type(err).__name__)
    return OutputError(cause, source=_show(where))


def _show(path) -> str | None:
    """A path printable on any terminal (undecodable bytes as \\x escapes)."""
    if path is None:
        return None
    s = os.fsdecode(path) if isinstance(path, bytes) else str(path)
    return s.encode("utf-8", "backslashreplace").decode("utf-8")


def check_name(path) -> Path:
    """A path whose name can be written by every library we hand it to (pyarrow, pandas need UTF-8)."""
    s = os.fspath(path)
    try:
        (s.encode("utf-8") if isinstance(s, str) else s.decode("utf-8"))
    except UnicodeError as err:
        raise os_error(err, path) from None
    return Path(os.fsdecode(s))


def is_empty_dir(path: Path) -> bool:
    try:
        with os.scandir(path) as it:
            return next(it, None) is None
    except OSError:
        return False


def check_output(path, *, overwrite: bool = False, kind: str = "folder", option: str = "--out",
                 allow_existing: bool = False) -> Path:
    """Check an output path before any work; returns it as a Path. Raises :class:`OutputError`.

    ``kind``: "folder" or "file". An existing non-empty output needs ``overwrite`` (``allow_existing``: the
    command adds to an existing folder by its own rule, e.g. ``label``'s resumable cache); its parent must be
    (or become) a writable folder."""
    path = check_name(path)
    try:
        recover(path)
        exists = path.exists() or path.is_symlink()
        if exists and kind == "folder" and not path.is_dir():
            raise OutputError(f"{option} exists and is a file, not a folder", source=_show(path))
        if exists and kind == "file" and path.is_dir():
            raise OutputError(f"{option} exists and is a folder, not a file", source=_show(path))
        if exists and not overwrite and not allow_existing and not (kind == "folder" and is_empty_dir(path)):
            raise OutputError(f"{option} exists and is not empty: give --overwrite to replace it",
                              source=_show(path))
        # the nearest existing ancestor must be a writable folder
        probe = path if exists and kind == "folder" else path.parent
        probe = Path(os.path.abspath(probe))
        while not probe.exists():
            if probe.is_symlink():  # a dangling link
                raise OutputError("a part of the path is a broken link", source=_show(path))
            probe = probe.parent
        if not probe.is_dir():
            raise OutputError(f"{_CAUSES[errno.ENOTDIR]} ({_show(probe)})", source=_show(path))
        if not os.access(probe, os.W_OK | os.X_OK):
            raise OutputError(f"cannot write in {_show(probe)}: read-only or no permission", source=_show(path))
    except OSError as err:
        raise os_error(err, path) from None
    return path


def _sibling(path: Path, tag: str) -> Path:
    return path.parent / f".{path.name}.{tag}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


def recover(path) -> None:
    """Tidy what a killed writer (SIGKILL, power loss) left beside ``path``: its temporary folder is removed; a
    previous output it had moved aside (``.NAME.old-*``) is put back if ``path`` is missing, else removed. Only
    siblings of writers that are no longer running are touched."""
    path = Path(path)
    try:
        siblings = [p for p in path.parent.iterdir() if p.name.startswith(f".{path.name}.")]
    except OSError:
        return
    dead = []
    for p in siblings:
        kind, _, rest = p.name[len(path.name) + 2:].partition("-")
        pid = rest.split("-", 1)[0]
        if kind in ("tmp", "old") and pid.isdigit() and not _alive(int(pid)):
            dead.append((kind, p))
    olds = sorted((p for k, p in dead if k == "old"), key=lambda p: p.stat().st_mtime)
    if olds and not path.exists() and not path.is_symlink():
        os.rename(olds.pop(), path)
    for kind, p in dead:
        if kind == "tmp" or p in olds:
            shutil.rmtree(p, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(path, *, overwrite: bool = False, keep: tuple[str, ...] = ()):
    """``with atomic_dir(DIR) as tmp:`` write the output's files into ``tmp``; on a clean exit ``tmp`` becomes
    ``DIR`` in one rename. On any exception (a full disk, Ctrl-C) ``tmp`` is removed and ``DIR`` is untouched.

    An existing non-empty ``DIR`` needs ``overwrite``; ``keep``: names in the old ``DIR`` moved into the new
    one (e.g. ``label``'s ``cache``)."""
    path = check_name(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        recover(path)
        if path.exists() and not path.is_dir():
            raise OutputError("exists and is a file, not a folder", source=_show(path))
        tmp = _sibling(path, "tmp")
        tmp.mkdir()
    except OSError as err:
        raise os_error(err, path) from None
    try:
        yield tmp
        _commit_dir(tmp, path, overwrite=overwrite, keep=keep)
    except OSError as err:
        raise os_error(err, path) from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _commit_dir(tmp: Path, path: Path, *, overwrite: bool, keep: tuple[str, ...]) -> None:
    if not path.exists():
        os.rename(tmp, path)
        return
    if not overwrite and not is_empty_dir(path):
        raise OutputError("exists and is not empty: give --overwrite to replace it", source=_show(path))
    for name in keep:
        if (path / name).exists() and not (tmp / name).exists():
            os.rename(path / name, tmp / name)
    old = _sibling(path, "old")
    os.rename(path, old)
    try:
        os.rename(tmp, path)
    except BaseException:
        os.rename(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_file(path, *, overwrite: bool = True):
    """``with atomic_file(FILE) as tmp:`` write ``tmp`` (a Path in the same folder); on a clean exit it replaces
    ``FILE`` in one rename, else it is removed and ``FILE`` is untouched."""
    path = check_name(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not overwrite and path.exists():
            raise OutputError("exists: give --overwrite to replace it", source=_show(path))
    except OSError as err:
        raise os_error(err, path) from None
    tmp = path.parent / f".{path.stem}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}{path.suffix}"
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as err:
        raise os_error(err, path) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def write_text(path, text: str, **kw) -> Path:
    """Write a text file atomically."""
    with atomic_file(path, **kw) as tmp:
        tmp.write_text(text)
    return Path(path)


__all__ = ["recover", "OutputError", "os_error", "check_name", "check_output", "atomic_dir", "atomic_file", "write_text",
           "is_empty_dir"]
