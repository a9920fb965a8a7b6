"""Knee-muscle strength (``LabelSettings.knee_muscle_strength``) on the 29 Grand Challenge stances, chosen on
one subject and reported on the other three (every subject in turn chooses).

Usage: python benchmarks/physics_gc_strength.py [--model gait14dof22musc] [--factors 1.0 0.8 0.6]
                                                [--workers 1] [--out /tmp/gf-physics-gc-strength] [--json OUT]

Each factor labels every ``competitions/*.mat`` stance exactly as ``physics_gc_all.py`` does (its
``stances``/``compare``, one-leg .mat route), with only ``knee_muscle_strength`` changed. Per subject: the mean
per-stance medial RMSE (N, BW) and r for each factor. Protocol: for each choosing subject, the factor with the
lowest mean medial RMSE (BW) on that subject's stances (criterion ``medial``), or the lowest mean of its medial
and lateral RMSE (``medial+lateral``: a factor that only lowers the whole load cannot win on medial alone), is
reported on the other subjects' stances (held out); the default (1.0) is reported on the same held-out stances
beside it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from pathlib import Path

import numpy as np


def _gc_all():
    spec_ = importlib.util.spec_from_file_location("physics_gc_all", Path(__file__).with_name("physics_gc_all.py"))
    mod = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(mod)
    return mod


def _mean(rows, key, metric):
    return float(np.mean([r[key][metric] for r in rows])) if rows else float("nan")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="gait14dof22musc")
    ap.add_argument("--factors", nargs="+", type=float, default=[1.0, 0.8, 0.6])
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--out", default="/tmp/gf-physics-gc-strength")
    ap.add_argument("--json", metavar="OUT")
    args = ap.parse_args(argv)
    from gaitforce.physics import LabelSettings, label_dataset

    gc = _gc_all()
    all_stances = gc.stances()
    rows, seconds = {}, {}
    for f in args.factors:
        tic = time.perf_counter()
        labels, failures = label_dataset(all_stances, out_dir=Path(args.out) / args.model,
                                         settings=LabelSettings(model=args.model, knee_muscle_strength=f),
                                         n_workers=args.workers, progress=False)
        seconds[f] = round(time.perf_counter() - tic, 1)
        rows[f] = {n: gc.compare(all_stances[n], labels[n]) for n in all_stances if n in labels}
        print(json.dumps({"factor": f, "labelled": len(rows[f]), "failed": [x.line() for x in failures],
                          "wall_s": seconds[f]}), flush=True)
    subjects = sorted({r["subject"] for r in rows[args.factors[0]].values()})
    per_subject = {s: {str(f): {"stances": len([r for r in rows[f].values() if r["subject"] == s]),
                                **{f"{k}_{m}": round(_mean([r for r in rows[f].values() if r["subject"] == s], k, m), 3)
                                   for k in ("medial", "lateral", "total") for m in ("rmse_N", "rmse_BW", "r")}}
                       for f in args.factors} for s in subjects}
    protocols = {}
    criteria = {"medial": lambda v: v["medial_rmse_BW"],
                "medial+lateral": lambda v: (v["medial_rmse_BW"] + v["lateral_rmse_BW"]) / 2}
    for crit, score in criteria.items():
        protocol = protocols[crit] = {}
        for chooser in subjects:
            best = min(args.factors, key=lambda f: score(per_subject[chooser][str(f)]))
            held = {f: [r for r in rows[f].values() if r["subject"] != chooser] for f in (best, 1.0) if f in rows}
            protocol[chooser] = {"chosen": best, **{f"held_out_{name}": {
                "factor": f, "stances": len(held[f]),
                **{f"{k}_{m}": round(_mean(held[f], k, m), 3) for k in ("medial", "lateral", "total")
                   for m in ("rmse_BW", "r")}}
                for name, f in (("chosen", best), ("default", 1.0)) if f in held}}
    result = {"model": args.model, "factors": args.factors, "wall_s": seconds, "per_subject": per_subject,
              "protocols": protocols, "stances": {str(f): r for f, r in rows.items()}}
    print(json.dumps({k: v for k, v in result.items() if k != "stances"}, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
