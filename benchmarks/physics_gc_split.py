"""The medial/lateral split of the Grand Challenge labels recomputed from the kept joint-reaction files, for the
contact points' height below the joint-reaction point (issue 15, item 5), held out by subject.

Usage: python benchmarks/physics_gc_split.py LABEL_DIR [--heights 0 0.01 0.02 0.03] [--json FILE]

``LABEL_DIR`` is a ``physics_gc_all.py`` output for one model (``OUT/<model>``, with ``work/<stance>/
jr_jr_ReactionLoads.sto``). What is split: OpenSim's JointReaction of the knee on the tibia, at the knee joint's
origin in the tibia frame, after every muscle force, the ground reaction and inertia; so its frontal moment
already carries each muscle's frontal-plane moment about that point (Winby et al. 2009 balance the same
moments about the two contact points). The two-point contact of ``physics/split.py`` puts the contacts d apart at
the height of that point. On the plateau, ``h`` below it, the mediolateral shear ``F_z`` adds ``h F_z`` to the
frontal moment: ``M_x(P) = M_x(O) + h F_z`` (P = O - h y, tibia frame). This script measures what ``h`` moves,
chooses ``h`` on one subject and reports it on the others. d stays ``intercondylar_ratio`` x knee width.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from physics_gc_all import stances  # noqa: E402


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("labels", type=Path)
    ap.add_argument("--heights", type=float, nargs="+", default=[0.0, 0.01, 0.02, 0.03])
    ap.add_argument("--json", metavar="OUT")
    args = ap.parse_args(argv)
    from gaitforce.physics import LabelSettings
    from gaitforce.physics.landmarks import calibrate
    from gaitforce.physics.model import spec
    from gaitforce.physics.pipeline import read_sto
    from gaitforce.physics.split import medial_lateral_split

    settings = LabelSettings(model=args.labels.name)
    ms = spec(settings.model)
    rows = {}
    for name, st in stances().items():
        jr_file = args.labels / "work" / name / "jr_jr_ReactionLoads.sto"
        if not jr_file.exists():
            continue
        jr = read_sto(jr_file)
        p = f"{ms.knee('r')}_on_tibia_r_in_tibia_r_"
        width = calibrate(st, ms.geometry).measures["knee_width_r"]
        d = settings.intercondylar_ratio * width
        bw = st.subject.mass * 9.81
        meas = np.asarray(st.signal("knee_medial"))
        meas_lat = np.asarray(st.signal("knee_lateral"))
        row = {"subject": st.subject.id, "point_in_tibia": [float(jr[p + c].abs().max()) for c in ("px", "py", "pz")]}
        for h in args.heights:
            F = -jr[p + "fy"].to_numpy()
            M = -(jr[p + "mx"].to_numpy() + h * jr[p + "fz"].to_numpy())  # right knee: medial is -z
            med, lat = medial_lateral_split(F, M, distance=d)
            med = np.interp(st.time, jr["time"].to_numpy(), med)
            lat = np.interp(st.time, jr["time"].to_numpy(), lat)
            row[f"h{h:g}"] = {"medial_rmse_BW": float(np.sqrt(np.mean((med - meas) ** 2)) / bw),
                              "medial_r": float(np.corrcoef(med, meas)[0, 1]),
                              "lateral_rmse_BW": float(np.sqrt(np.mean((lat - meas_lat) ** 2)) / bw)}
        row["shear_fz_rms_N"] = float(np.sqrt(np.mean(jr[p + "fz"].to_numpy() ** 2)))
        row["moment_mx_rms_Nm"] = float(np.sqrt(np.mean(jr[p + "mx"].to_numpy() ** 2)))
        rows[name] = row
    subjects = sorted({r["subject"] for r in rows.values()})
    per = {s: {f"h{h:g}": {k: float(np.mean([r[f"h{h:g}"][k] for r in rows.values() if r["subject"] == s]))
                          for k in ("medial_rmse_BW", "medial_r", "lateral_rmse_BW")} for h in args.heights}
           for s in subjects}
    chosen = {c: min(args.heights, key=lambda h: per[c][f"h{h:g}"]["medial_rmse_BW"]) for c in subjects}
    held = {s: float(np.mean([per[s][f"h{chosen[c]:g}"]["medial_rmse_BW"] for c in subjects if c != s]))
            for s in subjects}
    result = {"labels": str(args.labels), "per_subject": per, "chosen_by": chosen, "held_out_medial_rmse_BW": held,
              "mean_held_out": float(np.mean(list(held.values()))),
              "mean_h0": float(np.mean([per[s]["h0"]["medial_rmse_BW"] for s in subjects])) if 0.0 in args.heights
              else None,
              "shear_fz_rms_N": float(np.mean([r["shear_fz_rms_N"] for r in rows.values()])),
              "moment_mx_rms_Nm": float(np.mean([r["moment_mx_rms_Nm"] for r in rows.values()])),
              "jr_point_max_abs": np.max([r["point_in_tibia"] for r in rows.values()], axis=0).tolist(),
              "stances": rows}
    print(json.dumps({k: v for k, v in result.items() if k != "stances"}, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
