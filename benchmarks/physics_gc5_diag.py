"""GC5 (subject PS, left knee): why our Rajagopal 2015 static optimisation gives a larger gastrocnemius and a
smaller soleus than the independent OpenSim reference shipped in ``gc5-ps-opensim/`` on the same kinematics,
separated without the reference's model file.

Usage::

    python benchmarks/physics_gc5.py --ours D1 --model rajagopal2015                                # default
    python benchmarks/physics_gc5.py --ours D2 --model rajagopal2015 --set 'muscle_curves="model"'
    python benchmarks/physics_gc5.py --ours D3 --model rajagopal2015 --set knee_muscle_strength=0.6
    python benchmarks/physics_gc5_diag.py degroote=D1 model=D2 knee06=D3 [--json OUT] [--trials STEM ...]

Each ``NAME=DIR``: a run's work folder (one folder per trial holding ``model_scaled.osim``, ``ik.mot``,
``external_loads.xml``, ``so_so_activation.sto``), i.e. one capacity model: D1 our default muscles
(DeGroote-Fregly 2016 curves), D2 the model file's own (Rajagopal's Millard 2012 muscles), D3 the default with
the knee-crossing muscles at 0.6 of their max isometric force; rigid tendon in all. Over the left stance:

1. **Demand**: the reference's muscle forces (``*_SO_force.sto``, the same names as ours) times OUR moment arms,
   plus the reference's own reserve torques (its ``*_coordAct`` columns), against OUR inverse-dynamics demand at
   the left hip (flexion, adduction, rotation), knee and ankle: RMSE and the peak demand, N m. If they balance,
   the two runs share geometry and inverse dynamics, and the difference lies in the capacities or the cost.
2. **Capacities**: the rigid-tendon normalised fibre length (muscle-tendon length - tendon slack length, constant
   fibre width, / optimal fibre length) of soleus and gastrocnemii over stance; each capacity model's capacity
   g at the frame of the reference's peak force; the reference's implied activation F_ref / g (max over stance)
   under each, beside our SO's activation under each.
3. **The cost of the reference's solution**: sum over the left leg's muscles and the stance frames of
   (F_ref / g)^3 under each capacity model, against the same sum of our optimum with that model (our reserves
   are tiny: 1 N m optimal force): the reference's forces satisfy our demand (1.), so they are a feasible
   point of our problem, and under the capacity model the reference used they should cost about our optimum.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from gaitforce.io.sto import read_sto_table

GC5 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "grand-challenge" / "gc5-ps-opensim"
LEFT = ("hip_flexion_l", "hip_adduction_l", "hip_rotation_l", "knee_angle_l", "ankle_angle_l")
PLANTAR = ("soleus_l", "gasmed_l", "gaslat_l")
SHOWN = PLANTAR + ("recfem_l", "vasint_l", "vaslat_l", "vasmed_l", "bflh_l", "semimem_l", "semiten_l", "tibpost_l")


def problem(work: Path):
    """Our SO problem (arms, capacities, demand) of the trial in ``work``, with that run's model."""
    from gaitforce.physics.settings import LabelSettings
    from gaitforce.physics.so_batch import extract

    return extract(work / "model_scaled.osim", work / "ik.mot", None, LabelSettings(model="rajagopal2015"),
                   ext_xml=work / "external_loads.xml")


def fibre_lengths(work: Path, muscles, lowpass_hz: float = 6.0) -> dict[str, np.ndarray]:
    """Normalised rigid-tendon fibre length of ``muscles`` at SO's states of ``work/ik.mot``."""
    import opensim as osim

    from gaitforce.physics.so_batch import _states

    model = osim.Model(str(work / "model_scaled.osim"))
    state = model.initSystem()
    t, names, q, _, _ = _states(model, work / "ik.mot", lowpass_hz)
    cs = model.getCoordinateSet()
    out = {m: np.zeros(len(t)) for m in muscles}
    for i in range(len(t)):
        for k, n in enumerate(names):
            c = cs.get(n)
            if not c.getLocked(state) and not c.isDependent(state):
                c.setValue(state, float(q[i, k]), False)
        model.assemble(state)  # the patella's coupled coordinate follows the knee
        model.realizePosition(state)
        for m in muscles:
            mus = model.getMuscles().get(m)
            lopt, slack = mus.getOptimalFiberLength(), mus.getTendonSlackLength()
            width = lopt * np.sin(mus.getPennationAngleAtOptimalFiberLength())
            along = mus.getLength(state) - slack
            out[m][i] = np.sqrt(along ** 2 + width ** 2) / lopt
    return out


def stance_stop(stem: str) -> float:
    import importlib.util

    spec_ = importlib.util.spec_from_file_location("physics_gc5", Path(__file__).with_name("physics_gc5.py"))
    mod = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(mod)
    return mod.stance(stem, "l")[1]


def diagnose(stem: str, runs: dict[str, Path]) -> dict:
    ref, _ = read_sto_table(GC5 / f"{stem}_SO_force.sto")
    stop = stance_stop(stem)
    probs = {k: problem(d / stem) for k, d in runs.items()}
    first = next(iter(probs.values()))
    t = first.time
    sel = t <= stop
    acts = first.actuators
    mus = [j for j, a in enumerate(acts) if first.muscle[j]]
    f_ref = np.zeros((len(t), len(acts)))
    for j in mus:
        f_ref[:, j] = np.interp(t, ref["time"], ref[acts[j]])
    row = {"trial": stem, "frames": int(sel.sum())}

    # 1. demand: reference forces x our arms + reference reserves vs our inverse dynamics
    demand = {}
    for c in LEFT:
        k = first.coordinates.index(c)
        muscles_moment = np.einsum("tn,tn->t", first.arms[:, k, mus], f_ref[:, mus])
        reserve = np.interp(t, ref["time"], ref[f"{c}_coordAct"]) if f"{c}_coordAct" in ref else 0.0
        ours = first.demand[:, k]
        diff = (muscles_moment + reserve - ours)[sel]
        demand[c] = {"rmse_Nm": round(float(np.sqrt(np.mean(diff ** 2))), 1),
                     "max_abs_diff_Nm": round(float(np.abs(diff).max()), 1),
                     "peak_abs_demand_Nm": round(float(np.abs(ours[sel]).max()), 1),
                     "ref_reserve_rms_Nm": round(float(np.sqrt(np.mean(np.square(reserve)[sel] if np.ndim(reserve)
                                                                         else 0.0))), 2),
                     "r": round(float(np.corrcoef((muscles_moment + reserve)[sel], ours[sel])[0, 1]), 3)}
        for name, p in probs.items():  # same demand and arms in both runs (same geometry): checked, not assumed
            demand[c][f"demand_diff_{name}_Nm"] = round(float(np.abs(p.demand[:, k] - ours).max()), 3)
    row["demand"] = demand

    # 2. capacities
    lengths = fibre_lengths(runs[next(iter(runs))] / stem, PLANTAR)
    row["fibre_length"] = {m: {"min": round(float(v[sel].min()), 3), "max": round(float(v[sel].max()), 3),
                               "at_ref_peak": round(float(v[sel][np.argmax(f_ref[sel, acts.index(m)])]), 3)}
                           for m, v in lengths.items()}
    caps, implied = {}, {}
    for m in SHOWN:
        j = acts.index(m)
        i = int(np.argmax(np.where(sel, f_ref[:, j], -np.inf)))
        caps[m] = {"ref_peak_N": round(float(f_ref[i, j]))}
        implied[m] = {}
        for name, p in probs.items():
            a = np.interp(t, *_activation(runs[name] / stem, m))
            caps[m][f"capacity_{name}_N"] = round(float(p.gain[i, j]))
            implied[m][f"ref_{name}"] = round(float((f_ref[sel, j] / p.gain[sel, j]).max()), 3)
            implied[m][f"ours_{name}"] = round(float(a[sel].max()), 3)
    row["capacity_at_ref_peak"] = caps
    row["max_activation"] = implied

    # 3. cost of the reference's solution under each capacity model vs our optimum there (left-leg muscles)
    left = [j for j in mus if acts[j].endswith("_l")]
    cost = {}
    for name, p in probs.items():
        ours_a = np.stack([np.interp(t, *_activation(runs[name] / stem, acts[j])) for j in left], axis=1)
        ref_a = f_ref[:, left] / p.gain[:, left]
        cost[name] = {"ref": round(float((np.abs(ref_a[sel]) ** 3).sum()), 2),
                      "ours": round(float((np.abs(ours_a[sel]) ** 3).sum()), 2)}
    row["cost_sum_a3_left"] = cost
    return row


def _activation(work: Path, name: str):
    table, _ = read_sto_table(work / "so_so_activation.sto")
    return table["time"].to_numpy(), table[name].to_numpy()


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+", metavar="NAME=DIR",
                    help="physics_gc5.py --ours work folders, named (the first: the default settings)")
    ap.add_argument("--json", metavar="OUT")
    ap.add_argument("--trials", nargs="*")
    args = ap.parse_args(argv)
    runs = {k: Path(v) for k, v in (r.split("=", 1) for r in args.runs)}
    first = next(iter(runs.values()))
    stems = args.trials or sorted(p.name for p in first.iterdir() if (p / "ik.mot").exists())
    rows = []
    for stem in stems:
        row = diagnose(stem, runs)
        print(json.dumps(row), flush=True)
        rows.append(row)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
