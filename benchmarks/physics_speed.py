"""Seconds per stage of the physics labeller and its scaling from 1 to 2 Dask workers.

Usage: python benchmarks/physics_speed.py [--trials og1 og3 og4 og5] [--out /tmp/gf-physics-speed]
                                          [--model gait14dof22musc|rajagopal2015]

Labels DM's GC6 stances (raw TRC+GRF, static trial, cut as the competitions .mat files are, see
gaitforce.physics.sources) with ``label_dataset`` twice from an empty cache: 1 worker, then 2. Prints the
mean seconds per stage per stance (from the 1-worker run) and wall times, speed-up and parallel efficiency
(speed-up / workers). Wall times include starting the Dask cluster.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np

GC = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "grand-challenge"


def dm_stances(trials):
    from gaitforce.physics.stances import label_stances, read_for_labelling

    stances, statics = {}, {}
    for name in trials:
        path = GC / "competitions" / f"DM__GC6__DM_ngait_{name}.mat"
        found, static = label_stances(read_for_labelling(path), path=path)
        stances.update(found)
        statics.update({k: static for k in found})
    return stances, statics


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", nargs="+", default=["og1", "og3", "og4", "og5"])
    ap.add_argument("--out", default="/tmp/gf-physics-speed")
    ap.add_argument("--model", default="gait14dof22musc")
    args = ap.parse_args(argv)
    from gaitforce.physics import LabelSettings, label_dataset

    settings = LabelSettings(model=args.model)

    stances, statics = dm_stances(args.trials)
    walls = {}
    for workers in (1, 2):
        out = Path(args.out) / f"w{workers}"
        shutil.rmtree(out, ignore_errors=True)
        tic = time.perf_counter()
        labels, failures = label_dataset(stances, out_dir=out, static=statics, n_workers=workers, progress=False,
                                          settings=settings)
        walls[workers] = time.perf_counter() - tic
        assert not failures, failures
    stages = {}
    for name in stances:
        log = Path(args.out) / "w1" / "work" / name.replace("#", "_")
        stages[name] = {k: round(v, 2) for k, v in json.loads((log / "seconds.json").read_text()).items()}
    mean = {k: round(float(np.mean([s[k] for s in stages.values()])), 2) for k in next(iter(stages.values()))}
    speedup = walls[1] / walls[2]
    result = {"model": args.model, "stances": len(stances), "mean_stage_seconds": mean, "per_stance": stages,
              "wall_1_worker_s": round(walls[1], 1), "wall_2_workers_s": round(walls[2], 1),
              "speedup": round(speedup, 2), "efficiency": round(speedup / 2, 2)}
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
