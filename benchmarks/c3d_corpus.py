"""How far other labs' C3D files get through gaitforce: read, stance phases, features for a marker model and for a
force-plate model.

Usage: python benchmarks/c3d_corpus.py [--corpus ../shared/data/c3d-corpus] [--json FILE]

For every ``*.c3d`` of the corpus (public files of many labs and vendors, see its README) one row: the read outcome
(a Trial, or the one-line error), markers, plates, frame rate, the stance phases found (accepted / rejected, with
the first rejection reason), and whether ``trial_frames`` gives per-frame features for a marker model (the 18-slot
marker map resolved: what ``gaitforce predict`` needs for paper-cnn) and for a force-plate model (GRF + CoP only);
else the one line that says why not. The totals ("forces for N of M files") are what a lab feeding us its files
would see. Times are wall-clock per file on this machine, reported with ``nproc`` and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "c3d-corpus"


def _try(fn):
    """(value, None) or (None, the error's one line); errors other than GaitforceError propagate (a defect)."""
    from gaitforce.errors import GaitforceError

    try:
        return fn(), None
    except GaitforceError as err:
        return None, str(err).splitlines()[0][:300]


def file_row(path: Path) -> dict:
    from gaitforce.data.ingest import IngestSettings, prepare, trial_frames
    from gaitforce.io import read
    from gaitforce.signal.stances import segment

    row: dict = {"file": path.name}
    tic = time.perf_counter()
    trial, err = _try(lambda: read(path))
    row["read_s"] = round(time.perf_counter() - tic, 3)
    if trial is None:
        row.update(outcome="error", error=err)
        return row
    settings = IngestSettings()
    row.update(outcome="trial", markers=len(trial.marker_names), plates=len(trial.plate_names),
               rate_hz=float(trial.rate), frames=int(trial.n_frames))
    stances, err = _try(lambda: segment(prepare(trial, settings), settings.stance_rules, key=path.name))
    if stances is None:
        row["stances_error"] = err
        stances = []
    row["stances"] = sum(s.accepted for s in stances)
    rejected = [s.describe() for s in stances if not s.accepted]
    row["rejected"] = len(rejected)
    if rejected:
        row["first_rejection"] = rejected[0][:200]
    for name, markers in (("marker_model", True), ("plate_model", False)):
        frames, err = _try(lambda: trial_frames(trial, settings=settings, key=path.name, markers=markers))
        row[name] = ({"stances": int(frames["stance_id"].nunique()), "frames": len(frames)} if frames is not None
                     else {"error": err})
    return row


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default=str(CORPUS))
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args(argv)
    files = sorted(p for p in Path(args.corpus).iterdir() if p.suffix.lower() == ".c3d")
    tic = time.perf_counter()
    rows = []
    for p in files:
        row = file_row(p)
        rows.append(row)
        print(json.dumps(row), flush=True)
    wall = time.perf_counter() - tic
    total = {
        "files": len(rows),
        "read": sum(r["outcome"] == "trial" for r in rows),
        "with_plates": sum(r.get("plates", 0) > 0 for r in rows),
        "with_stances": sum(r.get("stances", 0) > 0 for r in rows),
        "forces_marker_model": sum("stances" in r.get("marker_model", {}) for r in rows),
        "forces_plate_model": sum("stances" in r.get("plate_model", {}) for r in rows),
        "stances_marker_model": sum(r.get("marker_model", {}).get("stances", 0) for r in rows),
        "stances_plate_model": sum(r.get("plate_model", {}).get("stances", 0) for r in rows),
    }
    result = {"corpus": str(args.corpus), "totals": total, "wall_s": round(wall, 2), "nproc": os.cpu_count(),
              "load_average": [round(x, 2) for x in os.getloadavg()], "files": rows}
    print(json.dumps({k: v for k, v in result.items() if k != "files"}, indent=1))
    if args.json:
        out = Path(args.json)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(json.dumps(result, indent=1))
        tmp.replace(out)
    return result


if __name__ == "__main__":
    main()
