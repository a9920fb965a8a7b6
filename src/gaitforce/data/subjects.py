"""Who each file's subject is, and their mass and height, for formats that do not say (TRC, MOT, CSV).

C3D files (SUBJECTS/PROCESSING parameters) and the Grand Challenge files carry their subject; a TRC or MOT
file carries none. Two ways to say it, read by ``ingest``, ``label`` and ``predict``:

- options: ``--subject ID --mass KG --height M`` apply to every file of the command;
- a sidecar ``subjects.csv`` (found in each folder given, and beside each file given, or named with
  ``--subjects FILE``) with the header ``file_or_glob,subject,mass_kg,height_m``: each row names a file, a
  path relative to the CSV's folder, or a glob (``s1/*.trc``); the first row that matches a file applies;
  ``mass_kg`` and ``height_m`` may be empty.

Precedence: options, then the sidecar, then the file's own metadata. What was applied is written in the
trial's history.
"""

from __future__ import annotations

import csv
import dataclasses
import fnmatch
import math
import os
from dataclasses import dataclass
from pathlib import Path

from gaitforce.errors import GaitforceError, InputFileError
from gaitforce.trial import Subject, Trial

SIDECAR = "subjects.csv"
COLUMNS = ("file_or_glob", "subject", "mass_kg", "height_m")


@dataclass(frozen=True)
class SubjectRow:
    pattern: str
    subject: str
    mass: float | None = None
    height: float | None = None


@dataclass(frozen=True)
class SubjectTable:
    """The rows of one ``subjects.csv`` and the folder its patterns are relative to."""

    rows: tuple[SubjectRow, ...]
    folder: Path
    source: str = ""

    def match(self, path: str | os.PathLike) -> SubjectRow | None:
        p = Path(path).resolve()
        try:
            rel = p.relative_to(self.folder.resolve()).as_posix()
        except ValueError:
            rel = None
        for row in self.rows:
            if row.pattern == p.name or (rel is not None and fnmatch.fnmatchcase(rel, row.pattern)) \
                    or fnmatch.fnmatchcase(p.name, row.pattern):
                return row
        return None


def _number(text: str, what: str, line: int, path) -> float | None:
    text = (text or "").strip()
    if not text:
        return None
    try:
        v = float(text)
    except ValueError:
        raise InputFileError(f"line {line}: {what} {text!r} is not a number", source=path) from None
    if not math.isfinite(v):
        raise InputFileError(f"line {line}: {what} {text!r} is not finite", source=path)
    return v


def read_subjects(path: str | os.PathLike) -> SubjectTable:
    """A ``subjects.csv`` sidecar; one line naming the file and the row for anything malformed."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames is None or [c.strip() for c in reader.fieldnames][:2] != list(COLUMNS[:2]):
                raise InputFileError(f"a subjects file needs the header {','.join(COLUMNS)} "
                                     f"(got {','.join(reader.fieldnames or [])!r})", source=path)
            rows = []
            for i, raw in enumerate(reader, start=2):
                r = {(k or "").strip(): (v or "").strip() for k, v in raw.items() if k is not None}
                if not r.get("file_or_glob") or not r.get("subject"):
                    raise InputFileError(f"line {i}: file_or_glob and subject are required", source=path)
                row = SubjectRow(r["file_or_glob"], r["subject"], _number(r.get("mass_kg", ""), "mass_kg", i, path),
                                 _number(r.get("height_m", ""), "height_m", i, path))
                try:
                    Subject(row.subject, row.mass, row.height)  # the plausibility checks of Subject
                except GaitforceError as err:
                    raise InputFileError(f"line {i}: {err.message}", source=path) from None
                rows.append(row)
    except UnicodeDecodeError:
        raise InputFileError("a subjects file must be UTF-8 text", source=path) from None
    except OSError as err:
        raise InputFileError(f"cannot read the subjects file: {err.strerror or err}", source=path) from None
    return SubjectTable(tuple(rows), path.parent, str(path))


def find_sidecars(paths) -> list[SubjectTable]:
    """The ``subjects.csv`` of each folder given and beside each file given (each read once)."""
    seen, out = set(), []
    for p in map(Path, paths):
        folder = p if p.is_dir() else p.parent
        f = (folder / SIDECAR).resolve()
        if f.is_file() and f not in seen:
            seen.add(f)
            out.append(read_subjects(f))
    return out


@dataclass(frozen=True)
class SubjectInfo:
    """What the user said about subjects: options for every file, and sidecar tables."""

    subject: str | None = None
    mass: float | None = None
    height: float | None = None
    tables: tuple[SubjectTable, ...] = ()

    def __post_init__(self):
        if self.subject is not None or self.mass is not None or self.height is not None:
            Subject(self.subject or "unknown", self.mass, self.height)  # plausibility: one line

    def apply(self, trial: Trial, path: str | os.PathLike | None = None) -> Trial:
        """``trial`` with the subject, mass and height this information gives it (see the module doc)."""
        s = trial.subject
        changes, said = {}, []
        row = next((r for t in self.tables if (r := t.match(path or trial.source or "")) is not None), None)
        if row is not None:
            changes.update(id=row.subject)
            if row.mass is not None:
                changes["mass"] = row.mass
            if row.height is not None:
                changes["height"] = row.height
            said.append(f"subjects file row {row.pattern!r}")
        for name, value in (("id", self.subject), ("mass", self.mass), ("height", self.height)):
            if value is not None:
                changes[name] = value
        if self.subject is not None or self.mass is not None or self.height is not None:
            said.append("command-line options")
        if not changes:
            return trial
        new = dataclasses.replace(s, **changes)
        return trial.replace(subject=new, note=f"subject {new.id!r}, mass {new.mass} kg, height {new.height} m "
                                              f"from {' and '.join(said)}")
