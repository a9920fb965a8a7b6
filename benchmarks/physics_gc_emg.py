"""The EMG-informed static optimisation criterion (``LabelSettings(criterion="emg")``) on every Grand Challenge
stance, beside sum a^3, with the weight chosen on one subject and reported on the others.

Usage: python benchmarks/physics_gc_emg.py [--weights 1 10 100] [--workers 1] [--out /tmp/gf-physics-gc-emg]
                                           [--pooled] [--json FILE]

Each of the 29 stances (4 subjects) is labelled with sum a^3 and with the EMG criterion at every weight of
``--weights`` (``label_dataset``, cached, so a rerun or a longer grid only labels what is missing). Protocol
(issue 15): for each choosing subject C the weight with the lowest mean per-stance medial RMSE (BW) on C's
stances is taken and reported on each of the other subjects; a subject's held-out figure is the mean over the
three choosers. The EMG-to-activation scales are calibrated per stance on its inverse-dynamics moments only
(``physics/emg_so.py``); the implant force enters only the RMSE used to choose ``w`` on the choosing subject.

``--pooled`` adds the same criterion with one calibration per session (competition: one electrode placement):
each electrode's envelope divided by its maximum over the session's stances, and one set of scales fitted to the
stacked ID moments of all the session's stances (the SO problems are read from the sum a^3 run's work folders,
whose IK and ID do not depend on the criterion); labelled as ``emgpool_w<w>``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from physics_gc_all import compare, stances  # noqa: E402


def run(all_stances, settings, out: Path, workers: int):
    from gaitforce.physics import label_dataset

    tic = time.perf_counter()
    stats: dict = {}
    labels, failures = label_dataset(all_stances, out_dir=out, settings=settings, n_workers=workers,
                                     progress=False, stats=stats)
    rows = {name: compare(all_stances[name], labels[name]) for name in all_stances if name in labels}
    return rows, [f.line() for f in failures], time.perf_counter() - tic, len(stats.get("computed", []))


def subject_means(rows: dict) -> dict:
    out = {}
    for subject in sorted({r["subject"] for r in rows.values()}):
        sel = [r for r in rows.values() if r["subject"] == subject]
        out[subject] = {f"{k}_{m}": float(np.mean([r[k][m] for r in sel]))
                        for k in ("medial", "lateral", "total") for m in ("rmse_N", "rmse_BW", "r")}
        out[subject]["stances"] = len(sel)
    return out


def pooled_calibration(all_stances, work: Path, settings) -> dict:
    """name -> (emg_norm, emg_scales) with one calibration per competition (see the module's doc)."""
    from gaitforce.physics import emg_so
    from gaitforce.physics.so_batch import extract

    by_session: dict = {}
    for name, st in all_stances.items():
        by_session.setdefault(st.meta["competition"], []).append(name)
    out = {}
    for session, names in sorted(by_session.items()):
        problems = {n: extract(work / n / "model_scaled.osim", work / n / "ik.mot", work / n / "id_so.sto", settings)
                    for n in names}
        emg = {n: emg_so.from_trial(all_stances[n], "r") for n in names}
        norm = {}
        for n in names:
            for k, env in emg[n].envelopes.items():
                peak = float(np.nanmax(env)) if np.isfinite(env).any() else 0.0
                norm[k] = max(norm.get(k, 0.0), peak)
        norm = {k: v for k, v in norm.items() if v > 0}
        targets, cols = [], None
        for n in names:
            e = emg_so.EMGInput(emg[n].time, emg[n].envelopes, "r", norm=norm)
            c, t, _ = emg_so.muscle_targets(e, problems[n].actuators, problems[n].time, settings.model)
            if cols is not None and list(c) != list(cols):
                raise SystemExit(f"{session}: stances track different muscles")
            cols = c
            targets.append(t)
        stacked = emg_so.stack_problems([problems[n] for n in names])
        s, info = emg_so.calibrate_scales(stacked, cols, np.concatenate(targets), "r")
        scales = {stacked.actuators[c]: float(v) for c, v in zip(cols, s)}
        print(json.dumps({"session": session, "stances": len(names), "scales": {k: round(v, 3) for k, v in
                                                                                 scales.items()},
                          "moment_rms_Nm": info["moment_rms_Nm"], "id_rms_Nm": info["id_rms_Nm"]}), flush=True)
        for n in names:
            out[n] = (norm, scales)
    return out


def held_out(per_setting: dict, weights, prefix: str = "emg_w") -> dict:
    """For each choosing subject: the weight it picks; for each reported subject: the mean over the choosers
    other than itself of the figures at the chosen weight."""
    subjects = sorted(per_setting["a3"])
    chosen = {c: min(weights, key=lambda w: per_setting[f"{prefix}{w:g}"][c]["medial_rmse_BW"]) for c in subjects}
    report = {}
    for s in subjects:
        picks = [chosen[c] for c in subjects if c != s]
        figs = [per_setting[f"{prefix}{w:g}"][s] for w in picks]
        report[s] = {"weights_used": picks, **{k: float(np.mean([f[k] for f in figs])) for k in figs[0]
                                               if k != "stances"}, "stances": figs[0]["stances"]}
    return {"chosen_by": chosen, "reported": report}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="gait14dof22musc")
    ap.add_argument("--weights", type=float, nargs="+", default=[1.0, 10.0, 100.0])
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--out", default="/tmp/gf-physics-gc-emg")
    ap.add_argument("--pooled", action="store_true", help="also one calibration per session (competition)")
    ap.add_argument("--json", metavar="OUT")
    args = ap.parse_args(argv)
    from gaitforce.physics import LabelSettings

    all_stances = stances()
    out = Path(args.out) / args.model
    per_setting, runs = {}, {}
    grid = [("a3", LabelSettings(model=args.model), all_stances)] + [
        (f"emg_w{w:g}", LabelSettings(model=args.model, criterion="emg", emg_weight=w), all_stances)
        for w in args.weights]
    todo = grid + ([("pooled", None, None)] if args.pooled else [])
    for name, settings, trials in todo:  # "pooled" appends its settings to ``todo`` when it comes
        if name == "pooled":
            cal = pooled_calibration(all_stances, out / "work", LabelSettings(model=args.model, criterion="emg"))
            pooled = {n: st.replace(meta={**st.meta, "emg_norm": cal[n][0], "emg_scales": cal[n][1]})
                      for n, st in all_stances.items()}
            for w in args.weights:
                todo.append((f"emgpool_w{w:g}", LabelSettings(model=args.model, criterion="emg", emg_weight=w),
                             pooled))
            continue
        rows, failed, wall, computed = run(trials, settings, out, args.workers)
        per_setting[name] = subject_means(rows)
        runs[name] = {"labelled": len(rows), "failed": failed, "wall_s": round(wall, 1), "computed": computed,
                      "stances": rows}
        print(json.dumps({"setting": name, "wall_s": round(wall, 1), "computed": computed, "failed": failed,
                          "subjects": {s: {k: round(v, 3) for k, v in f.items()} for s, f in
                                       per_setting[name].items()}}), flush=True)
    ho = held_out(per_setting, args.weights)
    ho_pool = held_out(per_setting, args.weights, "emgpool_w") if args.pooled else None
    subjects = sorted(per_setting["a3"])
    overall = {}
    for name, src in [("a3", per_setting["a3"]), ("emg_held_out", ho["reported"])] + (
            [("emg_pooled_held_out", ho_pool["reported"])] if ho_pool else []):
        overall[name] = {k: float(np.mean([src[s][k] for s in subjects]))
                         for k in ("medial_rmse_BW", "medial_r", "lateral_rmse_BW", "lateral_r", "total_rmse_BW")}
    if ho_pool:
        ho = {"per_stance": ho, "pooled": ho_pool}
    result = {"model": args.model, "weights": args.weights, "per_setting": per_setting, "held_out": ho,
              "overall_mean_of_subjects": overall, "runs": runs}
    print(json.dumps({"held_out": ho, "overall": overall}, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
