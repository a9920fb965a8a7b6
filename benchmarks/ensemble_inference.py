"""Inference cost of a K-member ensemble bundle (one stacked ONNX graph) against one member, same run.

    python benchmarks/ensemble_inference.py [--members 5] [--model paper-cnn] [--repeats 300]

One model is trained briefly (speed does not depend on the weights) on 60 synthetic features, K seeds of it
form the ensemble; both bundles are loaded with 1 intra-op thread and timed: one frame per call (the stream's
case: median and p95 of ``--repeats`` calls, mean + spread for the ensemble), a 101-frame stance per call, and
the throughput of one 20 000-frame call. Ratios ensemble / single are measured in the same run.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def dataset(n_stances=40, frames=101):
    from gaitforce.data.dataset import Dataset

    rng = np.random.default_rng(0)
    cols = [f"c{i}_{a}" for i in range(20) for a in "xyz"]
    x = rng.normal(size=(n_stances * frames, 60)).astype(np.float32)
    sid = np.repeat(np.arange(n_stances), frames)
    df = pd.DataFrame({"stance_id": [f"s{i}" for i in sid], "trial": [f"t{i}" for i in sid], "subject": "p",
                       "side": "right", "frame": np.tile(np.arange(frames), n_stances),
                       "time": np.tile(np.arange(frames) / 100, n_stances), "stance_pct": 0.0, "mass": 70.0})
    df[cols] = x
    df["knee_medial"] = 900 + 100 * x[:, 0]
    return Dataset(df, {"features": cols, "feature_sets": {"all": {"columns": cols, "shape": [20, 3]}},
                        "targets": {"knee_medial": "N"}})


def timed(fn, repeats):
    for _ in range(20):
        fn()
    t = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        t.append(time.perf_counter() - t0)
    return float(np.median(t)) * 1e3, float(np.percentile(t, 95)) * 1e3


def main():
    import torch

    from gaitforce.learn.bundle import load_bundle
    from gaitforce.learn.ensemble import EnsembleEstimator
    from gaitforce.learn.training import Estimator

    torch.set_num_threads(1)
    p = argparse.ArgumentParser()
    p.add_argument("--members", type=int, default=5)
    p.add_argument("--model", default="paper-cnn")
    p.add_argument("--repeats", type=int, default=300)
    a = p.parse_args()
    ds = dataset()
    load0 = os.getloadavg()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        members = [Estimator(a.model, seed=s, epochs=1, threads=1, verbose=False, device="cpu").fit(ds)
                   for s in range(a.members)]
    ens = EnsembleEstimator.from_members(members)
    with tempfile.TemporaryDirectory() as tmp:
        single = load_bundle(members[0].save(Path(tmp) / "single"))
        stacked = load_bundle(ens.save(Path(tmp) / "ensemble"))
        x = ds.frames[single.columns].to_numpy(np.float32)
        rows = {}
        for name, fn in (("single", lambda n: single.predict_features(x[:n])),
                         ("ensemble", lambda n: stacked.predict_spread_features(x[:n]))):
            one = timed(lambda: fn(1), a.repeats)
            stance = timed(lambda: fn(101), a.repeats // 3)
            t0 = time.perf_counter()
            fn(20000)
            rows[name] = {"frame_ms_p50": one[0], "frame_ms_p95": one[1], "stance_ms_p50": stance[0],
                          "frames_per_s": 20000 / (time.perf_counter() - t0)}
        m = np.mean([mm.predict(ds)[:5] for mm in members], axis=0)
        assert np.allclose(stacked.predict_features(x[:5]), m, atol=1e-2)
    df = pd.DataFrame(rows).T
    df.loc["ratio ensemble/single"] = df.loc["ensemble"] / df.loc["single"]
    print(f"{a.model}, {a.members} members, 1 ORT thread; nproc {os.cpu_count()}, load {load0} -> {os.getloadavg()}")
    print(df.round(3).to_string())


if __name__ == "__main__":
    main()
