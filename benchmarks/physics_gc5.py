"""The independent OpenSim reference of GC5 (subject PS, Rajagopal 2015 model with 80 muscles, static
optimisation + joint reaction, from modenaxe/femoral-anteversion-paper) against the force PS's instrumented
tibia measured: how close a full-size SO/JR pipeline gets, with the same moment-balance split gaitforce uses.

Usage: python benchmarks/physics_gc5.py [--distance 0.04] [--json OUT] [--ours WORKDIR]

``--ours WORKDIR`` also runs gaitforce's own ID/SO/JR (gait14dof22musc) on the same trials from the given
Rajagopal IK (``_kinematics.mot``, coordinates matched by name, knee sign flipped; mass-only scaling: see
:mod:`gaitforce.physics.given`) and the ``_kinetics.mot`` ground reactions, and compares it with both the
in vivo force and the reference's SO muscle-group sums and knee reaction.

PS's instrumented knee is the LEFT one (its knee reaction carries the load while the plate under the left
heel is loaded; the competitions/ .mat files mirror PS to a right leg: their RASIS is the TRC's LAsis with z
negated). ``eTibia_data.mat`` holds 101 points over the whole ~1.1 s trial (a left gait cycle: stance from
the start to ~0.70 s, where the plate nearest the left heel unloads, then swing), columns F_medial,
F_lateral, F_total_magnitude; the knee reaction (``walker_knee_l`` on ``tibia_l`` in ``tibia_l``) is
resampled to the same 101 points. Figures are given over the whole cycle and over the stance points.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import scipy.io

from gaitforce.io.sto import read_sto_table
from gaitforce.io.trc import read_trc
from gaitforce.physics.split import medial_lateral_split

GC5 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "grand-challenge" / "gc5-ps-opensim"


def stance(stem: str, side: str = "l") -> tuple[float, float]:
    """(start, stop) s of the stance of foot ``side`` in the trial's time base."""
    kin, _ = read_sto_table(GC5 / f"{stem}_kinetics.mot")
    trc = read_trc(GC5 / f"{stem}.trc", grf=None)
    heel = trc.to_y_up().marker(f"{side.upper()}Heel")
    best = None
    for p in sorted({c.split("_")[0] for c in kin.columns if c.endswith("_ground_force_vy")}):
        on = kin[f"{p}_ground_force_vy"].to_numpy() > 20.0
        if not on.any():
            continue
        t = kin["time"].to_numpy()[on]
        cop = kin.loc[on, [f"{p}_ground_force_px", f"{p}_ground_force_pz"]].to_numpy()
        h = np.column_stack([np.interp(t, trc.time, heel[:, k]) for k in (0, 2)])
        d = float(np.nanmedian(np.linalg.norm(cop - h, axis=1)))
        if best is None or d < best[0]:
            best = (d, float(t.min()), float(t.max()))
    return best[1], best[2]


def reference(stem: str, *, distance: float) -> dict[str, np.ndarray]:
    jr, _ = read_sto_table(GC5 / f"{stem}_JR.sto")
    grid = np.linspace(float(jr["time"].iloc[0]), float(jr["time"].iloc[-1]), 101)
    p = "walker_knee_l_on_tibia_l_in_tibia_l_"
    f = {ax: np.interp(grid, jr["time"], jr[p + "f" + ax]) for ax in "xyz"}
    compressive = -f["y"]
    moment = np.interp(grid, jr["time"], jr[p + "mx"])  # medial-loading on the left tibia (z points medially)
    medial, lateral = medial_lateral_split(compressive, moment, distance=distance)
    return {"medial": medial, "lateral": lateral, "total": np.sqrt(f["x"] ** 2 + f["y"] ** 2 + f["z"] ** 2),
            "stance": grid <= stance(stem, "l")[1]}


#: Rajagopal 2015 muscles summed into gaitforce's groups (gait14dof22musc's abd lumps gluteus medius+minimus)
REF_GROUPS = {
    "quadriceps": ("recfem", "vasint", "vaslat", "vasmed"),
    "hamstrings": ("bflh", "bfsh", "semimem", "semiten"),
    "glut_max": ("glmax1", "glmax2", "glmax3"),
    "glut_med": ("glmed1", "glmed2", "glmed3", "glmin1", "glmin2", "glmin3"),
    "gastrocnemius": ("gaslat", "gasmed"),
    "soleus": ("soleus",),
}
OUR_GROUPS = {"quadriceps": "quadriceps", "hamstrings": "hamstrings", "glut_max": "glut_max", "glut_med": "glut_med",
              "gastrocnemius": "muscle_gastroc", "soleus": "muscle_soleus"}
#: the same with our rajagopal2015 model (gluteus medius + minimus, as the reference row sums them)
OUR_GROUPS_RAJAGOPAL = {"quadriceps": ("quadriceps",), "hamstrings": ("hamstrings",), "glut_max": ("glut_max",),
                        "glut_med": ("glut_med", "muscle_glmin1", "muscle_glmin2", "muscle_glmin3"),
                        "gastrocnemius": ("muscle_gaslat", "muscle_gasmed"), "soleus": ("muscle_soleus",)}


def ours(stem: str, *, mass: float, work: Path, distance: float, model: str = "gait14dof22musc",
         extra: dict | None = None, height: float | None = None) -> dict[str, np.ndarray]:
    """gaitforce's ID/SO/JR from the given kinematics; the left (instrumented) knee on the 101-point grid, the
    muscle groups on the SO time base, and the knee reaction resultant."""
    import dataclasses

    from gaitforce.physics import LabelSettings
    from gaitforce.physics.given import convention_signs, run_given_kinematics
    from gaitforce.physics.label import targets_from_tables
    from gaitforce.physics.landmarks import find_landmarks
    from gaitforce.physics.model import spec
    from gaitforce.physics.pipeline import assign_plates

    loads = read_trc(GC5 / f"{stem}.trc", grf=GC5 / f"{stem}_kinetics.mot").to_y_up()
    loads = loads.replace(subject=dataclasses.replace(loads.subject, mass=mass, height=height),
                          note="PS mass and height from the .mat")
    plates = assign_plates(loads, find_landmarks(loads.marker_names))
    kin, header = read_sto_table(GC5 / f"{stem}_kinematics.mot")
    settings = LabelSettings(intercondylar_ratio=None, intercondylar_distance=distance, model=model, **(extra or {}))
    tables, seconds = run_given_kinematics(kin, loads, plates, work / stem, settings,
                                           in_degrees=bool(header.get("inDegrees", True)),
                                           signs=convention_signs("rajagopal2015", model))
    tg = targets_from_tables(tables, "l", settings)
    jr = tables["jr"]
    grid = np.linspace(float(jr["time"].iloc[0]), float(jr["time"].iloc[-1]), 101)
    p = f"{spec(model).knee('l')}_on_tibia_l_in_tibia_l_"
    res = np.sqrt(sum(jr[p + "f" + ax].to_numpy() ** 2 for ax in "xyz"))
    out = {k: np.interp(grid, tg["time"], tg[f"knee_{k}"]) for k in ("medial", "lateral")}
    out["total"] = np.interp(grid, jr["time"], res)
    out["time"] = tg["time"].to_numpy()
    if model == "rajagopal2015":
        out["groups"] = {g: sum(tg[c].to_numpy() for c in cols) for g, cols in OUR_GROUPS_RAJAGOPAL.items()}
    else:
        out["groups"] = {g: tg[c].to_numpy() for g, c in OUR_GROUPS.items()}
    out["jr_time"], out["jr_resultant"] = jr["time"].to_numpy(), res
    out["seconds"] = seconds
    return out


def _fit(a, b) -> dict:
    return {"rmse_N": round(float(np.sqrt(np.mean((a - b) ** 2))), 1), "r": round(float(np.corrcoef(a, b)[0, 1]), 3),
            "peak_ours": round(float(a.max())), "peak_other": round(float(b.max()))}


def compare_with_reference(stem: str, mine: dict, stop: float) -> dict:
    """Our SO group sums and knee reaction resultant against the reference's, over the left stance (t <= stop)."""
    so, _ = read_sto_table(GC5 / f"{stem}_SO_force.sto")
    jr, _ = read_sto_table(GC5 / f"{stem}_JR.sto")
    t = mine["time"]
    sel = t <= stop
    row = {}
    for g, members in REF_GROUPS.items():
        ref = np.interp(t, so["time"], sum(so[f"{m}_l"].to_numpy() for m in members))
        row[g] = _fit(mine["groups"][g][sel], ref[sel])
    p = "walker_knee_l_on_tibia_l_in_tibia_l_"
    ref_res = np.sqrt(sum(jr[p + "f" + ax].to_numpy() ** 2 for ax in "xyz"))
    tj = mine["jr_time"]
    row["knee_reaction"] = _fit(mine["jr_resultant"][tj <= stop], np.interp(tj, jr["time"], ref_res)[tj <= stop])
    return row


def _vs_measured(pred: dict, meas: dict, stance: np.ndarray, bw: float, prefix: str, peak: str) -> dict:
    """``{prefix}{medial|lateral|total}_{cycle|stance}``: RMSE (N, BW), r and peaks of ``pred`` against ``meas``."""
    out = {}
    for part, sel in (("cycle", slice(None)), ("stance", stance)):
        for key in ("medial", "lateral", "total"):
            a, b = pred[key][sel], meas[key][sel]
            rmse = float(np.sqrt(np.mean((a - b) ** 2)))
            out[f"{prefix}{key}_{part}"] = {"rmse_N": round(rmse, 1), "rmse_BW": round(rmse / bw, 3),
                                            "r": round(float(np.corrcoef(a, b)[0, 1]), 3),
                                            peak: round(float(a.max())), "peak_meas": round(float(b.max()))}
    return out


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser()
    ap.add_argument("--distance", type=float, default=0.04, help="m between the contact points of the split")
    ap.add_argument("--json", metavar="OUT")
    ap.add_argument("--ours", metavar="WORKDIR", help="also run gaitforce's ID/SO/JR from the given kinematics here")
    ap.add_argument("--model", default="gait14dof22musc", help="gaitforce model for --ours")
    ap.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE",
                    help="LabelSettings fields (JSON values) for --ours, e.g. muscle_physiology=false")
    ap.add_argument("--trials", nargs="*", help="trial stems to run (default: all of eTibia_data.mat)")
    args = ap.parse_args(argv)
    et = scipy.io.loadmat(GC5 / "eTibia_data.mat", squeeze_me=True, struct_as_record=False)["eTibia_data"].GC5.ngait_og
    mat = scipy.io.loadmat(GC5.parent / "competitions" / "PS__GC5__PS_ngait_og_ss1.mat", squeeze_me=True)
    bw = float(mat["mass"] if "mass" in mat else mat["weight"]) * 9.81
    height = float(mat["height"]) / 100  # cm in the .mat
    rows = []
    for k, name in enumerate(et.trial_names):
        stem = Path(str(name)).stem
        if args.trials and stem not in args.trials:
            continue
        meas = {"medial": et.data[:, 0, k], "lateral": et.data[:, 1, k], "total": et.data[:, 2, k]}
        ref = reference(stem, distance=args.distance)
        row = {"trial": stem, "stance_points": int(ref["stance"].sum())}
        row.update(_vs_measured(ref, meas, ref["stance"], bw, "", "peak_ref"))
        if args.ours:
            mine = ours(stem, mass=bw / 9.81, height=height, work=Path(args.ours), distance=args.distance, model=args.model,
                        extra={k: json.loads(v) for k, v in (a.split("=", 1) for a in args.set)})
            row["ours_seconds"] = {k: round(v, 1) for k, v in mine["seconds"].items()}
            row.update(_vs_measured(mine, meas, ref["stance"], bw, "ours_", "peak_ours"))
            row["ours_vs_reference"] = compare_with_reference(stem, mine, stance(stem, "l")[1])
        print(json.dumps(row), flush=True)
        rows.append(row)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
