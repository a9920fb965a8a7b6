"""The same stance through the physics pipeline (scale + IK + ID + SO + JRA, OpenSim) and through a surrogate
bundle (ONNX Runtime, 1 thread): the speed-up; and the labelling scale-out on Dask from 1 to 2 workers.

    python benchmarks/physics_vs_surrogate.py [--bundle gaitforce-demo/bundle | --model ridge] [--stances 4]
                                              [--no-scaleout] [--out r.json]

Stances: the first ``--stances`` of a synthetic cohort (seed 0, 100 Hz), cut to the dataset's frames exactly as
``gaitforce demo`` does. Physics: :func:`gaitforce.physics.label_trial` one stance at a time in this process.
Surrogate: (a) ONNX only, the stance's feature rows in one call; (b) end to end from the Trial:
``gaitforce.data.ingest.trial_frames`` (filter, stance cut, features) + ONNX, per trial file (2 stances).
Scale-out: :func:`gaitforce.physics.label_dataset` on 2 x ``--stances`` stances with 1 and then 2 worker
processes (fresh caches); efficiency = T1 / (2 T2). With no ``--bundle`` a default ``--model`` (paper-cnn) is trained
for one epoch on a stand-in target (speed does not depend on the weights).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", default=None)
    ap.add_argument("--model", default="paper-cnn", help="model trained for the timing when no --bundle is given")
    ap.add_argument("--stances", type=int, default=4)
    ap.add_argument("--out", default=None)
    ap.add_argument("--no-scaleout", action="store_true")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    from gaitforce.data.ingest import IngestSettings, build_dataset, trial_frames
    from gaitforce.data.synthetic import generate_cohort, write_cohort
    from gaitforce.demo import stance_windows
    from gaitforce.io import read
    from gaitforce.learn.bundle import load_bundle
    from gaitforce.physics import LabelSettings, label_dataset, label_trial

    fast = LabelSettings(model="gait14dof22musc")  # the figures in the README are this model's

    tmp = Path(tempfile.mkdtemp(prefix="gf-pvs-"))
    n_trials = max(1, args.stances)  # 2 stances a trial; enough trials for the scale-out run
    files = [p for p in write_cohort(tmp / "data", generate_cohort(n_subjects=n_trials, trials_per_subject=1))
             if p.suffix == ".c3d"]
    ds, _ = build_dataset(files, progress=False)
    settings = IngestSettings()
    windows = {}
    for f in files:
        windows.update(stance_windows(f, settings))
    names = list(windows)[: args.stances]

    if args.bundle:
        bundle_dir = Path(args.bundle)
    else:
        from gaitforce.learn.training import Estimator

        g = ds.frames[["grf_x", "grf_y", "grf_z"]].to_numpy(float)
        ds.frames["knee_medial"] = np.sqrt((g ** 2).sum(1))
        ds.manifest["targets"] = {"knee_medial": "N"}
        bundle_dir = tmp / "bundle"
        Estimator(args.model, epochs=1, threads=1, verbose=False).fit(ds).save(bundle_dir, dataset_manifest=ds.manifest)
    bundle = load_bundle(bundle_dir, intra_op_num_threads=1)
    cols = bundle.columns

    rows = []
    for name in names:
        t = time.perf_counter()
        label_trial(windows[name], settings=fast, work_dir=tmp / "work" / name.replace("#", "_"))
        physics = time.perf_counter() - t
        x = ds.frames.loc[ds.frames.stance_id == name, cols].to_numpy(np.float32)
        for _ in range(10):
            bundle.predict_features(x)
        ts = [0.0] * 100
        for i in range(100):
            t = time.perf_counter()
            bundle.predict_features(x)
            ts[i] = time.perf_counter() - t
        onnx = float(np.median(ts))
        rows.append({"stance": name, "frames": len(x), "physics_s": physics, "surrogate_onnx_ms": 1e3 * onnx,
                     "speedup_onnx": physics / onnx})
        print(f"{name}: {len(x)} frames, physics {physics:.2f} s, surrogate ONNX {1e3 * onnx:.3f} ms: "
              f"{physics / onnx:,.0f} x")
    e2e = []
    for f in files[: max(1, args.stances // 2)]:
        trial = read(f)
        t = time.perf_counter()
        fr = trial_frames(trial, settings=settings)
        bundle.predict_features(fr[cols].to_numpy(np.float32))
        e2e.append((time.perf_counter() - t) / fr["stance_id"].nunique())
    e2e_ms = 1e3 * float(np.median(e2e))
    phys = float(np.median([r["physics_s"] for r in rows]))
    onnx_ms = float(np.median([r["surrogate_onnx_ms"] for r in rows]))
    print(f"median per stance: physics {phys:.2f} s; surrogate ONNX {onnx_ms:.3f} ms ({1e3 * phys / onnx_ms:,.0f} x), "
          f"end to end from the Trial (filter + features + ONNX) {e2e_ms:.1f} ms ({1e3 * phys / e2e_ms:,.0f} x)")
    result = {"bundle": str(bundle_dir), "model": bundle.spec.get("model", {}).get("name"), "stances": rows,
              "physics_s_median": phys, "surrogate_onnx_ms_median": onnx_ms, "surrogate_end_to_end_ms": e2e_ms,
              "speedup_onnx": 1e3 * phys / onnx_ms, "speedup_end_to_end": 1e3 * phys / e2e_ms}

    if not args.no_scaleout:
        batch = {k: windows[k] for k in list(windows)[: 2 * args.stances]}
        times = {}
        for workers in (1, 2):
            t = time.perf_counter()
            _, failures = label_dataset(batch, out_dir=tmp / f"scale{workers}", n_workers=workers, progress=False,
                                        settings=fast)
            times[workers] = time.perf_counter() - t
            print(f"label_dataset, {len(batch)} stances, {workers} worker(s): {times[workers]:.1f} s"
                  + (f" ({len(failures)} failed)" if failures else ""))
        eff = times[1] / (2 * times[2])
        print(f"scale-out efficiency 1 -> 2 workers: {100 * eff:.0f} %")
        result.update(scaleout_stances=len(batch), scaleout_s=times, scaleout_efficiency=eff)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1, default=str))


if __name__ == "__main__":
    main()
