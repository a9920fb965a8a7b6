"""The EMG-informed static optimisation criterion (``LabelSettings(criterion="emg")``) on every Grand Challenge
stance, beside sum a^3, with the weight chosen on one subject and reported on the others.

Usage: python benchmarks/physics_gc_emg.py [--weights 1 10 100] [--workers 1] [--out /tmp/gf-physics-gc-emg]
                                           [--json FILE]

Each of the 29 stances (4 subjects) is labelled with sum a^3 and with the EMG criterion at every weight of
``--weights`` (``label_dataset``, cached, so a rerun or a longer grid only labels what is missing). Protocol
(issue 15): for each choosing subject C the weight with the lowest mean per-stance medial RMSE (BW) on C's
stances is taken and reported on each of the other subjects; a subject's held-out figure is the mean over the
three choosers. The EMG-to-activation scales are calibrated per stance on its inverse-dynamics moments only
(``physics/emg_so.py``); the implant force enters only the RMSE used to choose ``w`` on the choosing subject.
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


def held_out(per_setting: dict, weights) -> dict:
    """For each choosing subject: the weight it picks; for each reported subject: the mean over the choosers
    other than itself of the figures at the chosen weight."""
    subjects = sorted(per_setting["a3"])
    chosen = {c: min(weights, key=lambda w: per_setting[f"emg_w{w:g}"][c]["medial_rmse_BW"]) for c in subjects}
    report = {}
    for s in subjects:
        picks = [chosen[c] for c in subjects if c != s]
        figs = [per_setting[f"emg_w{w:g}"][s] for w in picks]
        report[s] = {"weights_used": picks, **{k: float(np.mean([f[k] for f in figs])) for k in figs[0]
                                               if k != "stances"}, "stances": figs[0]["stances"]}
    return {"chosen_by": chosen, "reported": report}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="gait14dof22musc")
    ap.add_argument("--weights", type=float, nargs="+", default=[1.0, 10.0, 100.0])
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--out", default="/tmp/gf-physics-gc-emg")
    ap.add_argument("--json", metavar="OUT")
    args = ap.parse_args(argv)
    from gaitforce.physics import LabelSettings

    all_stances = stances()
    out = Path(args.out) / args.model
    per_setting, runs = {}, {}
    for name, settings in [("a3", LabelSettings(model=args.model))] + [
            (f"emg_w{w:g}", LabelSettings(model=args.model, criterion="emg", emg_weight=w)) for w in args.weights]:
        rows, failed, wall, computed = run(all_stances, settings, out, args.workers)
        per_setting[name] = subject_means(rows)
        runs[name] = {"labelled": len(rows), "failed": failed, "wall_s": round(wall, 1), "computed": computed,
                      "stances": rows}
        print(json.dumps({"setting": name, "wall_s": round(wall, 1), "computed": computed, "failed": failed,
                          "subjects": {s: {k: round(v, 3) for k, v in f.items()} for s, f in
                                       per_setting[name].items()}}), flush=True)
    ho = held_out(per_setting, args.weights)
    subjects = sorted(per_setting["a3"])
    overall = {}
    for name in ["a3", "emg_held_out"]:
        src = per_setting["a3"] if name == "a3" else ho["reported"]
        overall[name] = {k: float(np.mean([src[s][k] for s in subjects]))
                         for k in ("medial_rmse_BW", "medial_r", "lateral_rmse_BW", "lateral_r", "total_rmse_BW")}
    result = {"model": args.model, "weights": args.weights, "per_setting": per_setting, "held_out": ho,
              "overall_mean_of_subjects": overall, "runs": runs}
    print(json.dumps({"held_out": ho, "overall": overall}, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
