"""Label Grand Challenge trials with the physics pipeline and compare with the measured in vivo force.

Usage: python benchmarks/physics_gc.py [--trials og1 og3 ...] [--out /tmp/gf-physics]

DM (GC6): markers + GRF from gc6-dm-trc/ (OpenSim formats), in vivo medial/lateral force from
competitions/DM__GC6__DM_ngait_<trial>.mat, aligned in time by cross-correlating the vertical GRF of the
stance phase in the .mat with the plate of the TRC/GRF trial.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import scipy.io

from gaitforce.trial import Subject, Trial

ROOT = Path(__file__).resolve().parents[1]
GC = ROOT.parent / "shared" / "data" / "grand-challenge"


def _trc(path: Path):
    import opensim as osim

    table = osim.TimeSeriesTableVec3(str(path))
    units = table.getTableMetaDataAsString("Units") if table.hasTableMetaDataKey("Units") else "mm"
    k = 0.001 if units.lower().startswith("mm") else 1.0
    names = list(table.getColumnLabels())
    t = np.array(table.getIndependentColumn())
    flat = table.flatten()
    mat = flat.getMatrix()
    arr = np.array([[mat.getElt(i, j) for j in range(mat.ncol())] for i in range(mat.nrow())])
    arr = arr.reshape(len(t), len(names), 3) * k
    arr[(arr == 0).all(axis=2)] = np.nan  # TRC writes gaps as zeros
    return t, names, arr


def load_static_c3d(path: Path, mass: float) -> Trial:
    """A static trial from C3D (Z-up lab, mm) as a Y-up Trial; samples with a negative residual are gaps."""
    import ezc3d

    c = ezc3d.c3d(str(path))
    labels = c["parameters"]["POINT"]["LABELS"]["value"]
    pts = c["data"]["points"]
    xyz = np.transpose(pts[:3], (2, 1, 0)) / 1000.0
    xyz[np.transpose(pts[3] < 0)] = np.nan
    rate = float(c["parameters"]["POINT"]["RATE"]["value"][0])
    t = np.arange(xyz.shape[0]) / rate
    return Trial(time=t, markers=xyz, marker_names=labels, subject=Subject(id="DM", mass=mass), up_axis="z",
                 source=str(path)).to_y_up()


def load_dm(trial: str) -> tuple[Trial, dict]:
    from gaitforce.physics.pipeline import read_sto

    t, names, markers = _trc(GC / "gc6-dm-trc" / f"DM_ngait_{trial}_new.trc")
    grf = read_sto(GC / "gc6-dm-trc" / f"DM_ngait_{trial}_grf.sto")
    mat = scipy.io.loadmat(GC / "competitions" / f"DM__GC6__DM_ngait_{trial}.mat", squeeze_me=True,
                           struct_as_record=False)
    mass = float(mat["mass"] if "mass" in mat else mat["weight"])
    plates = sorted({c.split("_")[2] for c in grf.columns if c.startswith("ground_force_")})
    forces, cop, moment = [], [], []
    for p in plates:
        get = lambda pre, ax: np.interp(t, grf["time"], grf.get(f"{pre}_{p}_{ax}", 0 * grf["time"]))  # noqa
        forces.append(np.stack([get("ground_force", "v" + a) for a in "xyz"], 1))
        cop.append(np.stack([get("ground_force", "p" + a) for a in "xyz"], 1))
        moment.append(np.stack([get("ground_torque", a) for a in "xyz"], 1))
    tr = Trial(time=t, markers=markers, marker_names=names, forces=np.stack(forces, 1), cop=np.stack(cop, 1),
               free_moment=np.stack(moment, 1), plate_names=plates,
               subject=Subject(id="DM", mass=mass), source=f"DM_ngait_{trial}")
    invivo = {"medial": np.asarray(mat["Force"].KneeMedial, float), "lateral": np.asarray(mat["Force"].KneeLateral, float),
              "pelvis": np.transpose(np.asarray(mat["Segment"][4].rM, float), (1, 0, 2)), "rate": float(mat["f"]), "mass": mass}
    return tr, invivo


def align(trial: Trial, invivo: dict) -> int:
    """Frame of ``trial`` where the .mat stance phase starts: best match of the pelvis markers (RASIS, LASIS,
    sacrum), which the .mat holds in the same lab frame."""
    ref = invivo["pelvis"]  # (3 markers, 3, n)
    mine = np.stack([trial.marker(n) for n in ("R_Asis", "L_Asis", "Sacral")], 0)  # (3, T, 3)
    n = ref.shape[2]
    errs = [np.nanmean((np.transpose(mine[:, k:k + n, :], (0, 2, 1)) - ref) ** 2)
            for k in range(trial.n_frames - n + 1)]
    return int(np.nanargmin(errs))


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", nargs="+", default=["og1", "og3", "og4", "og5", "og6"])
    ap.add_argument("--out", default="/tmp/gf-physics")
    ap.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE",
                    help="LabelSettings fields (JSON values), e.g. centre_lumped_heads=false, for ablations")
    args = ap.parse_args(argv)
    from gaitforce.physics import LabelSettings, label_trial

    rows = []
    for name in args.trials:
        tr, iv = load_dm(name)
        k = align(tr, iv)
        n = len(iv["medial"])
        stance = tr.slice_frames(max(k - 0, 0), k + n).replace(meta={"side": "right"})
        tic = time.perf_counter()
        static = load_static_c3d(GC / "jw-c3d" / "DM_staticfor1.c3d", iv["mass"])
        settings = LabelSettings(**{k: json.loads(v) for k, v in (kv.split("=", 1) for kv in args.set)})
        out = label_trial(stance, settings=settings, static=static, work_dir=Path(args.out) / f"DM_{name}")
        wall = time.perf_counter() - tic
        bw = iv["mass"] * 9.81
        row = {"trial": f"DM_{name}", "frames": n, "seconds": round(wall, 1),
               "stages": {k2: round(v, 2) for k2, v in out.meta["physics_seconds"].items()}}
        iv["total"] = iv["medial"] + iv["lateral"]
        for tgt in ("medial", "lateral", "total"):
            pred, meas = np.asarray(out.signal(f"knee_{tgt}")), iv[tgt]
            rmse = float(np.sqrt(np.mean((pred - meas) ** 2)))
            row[tgt] = {"rmse_N": round(rmse, 1), "rmse_BW": round(rmse / bw, 3),
                        "r": round(float(np.corrcoef(pred, meas)[0, 1]), 3),
                        "peak_pred": round(float(pred.max()), 0), "peak_meas": round(float(meas.max()), 0)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "summary.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
