"""Inference speed of model bundles in ONNX Runtime on 1 thread, against the seed's 71 ms per stance trial.

    python benchmarks/inference.py [--repeats 300] [--frames 200] [--out benchmarks/results/inference.json]

For each model (a paper-sized CNN: two 32-channel (19, 3) convolutions; the default paper-cnn; mlp; ridge;
the causal tcn) a bundle is trained briefly (speed does not depend on the weights) on features of a synthetic
cohort and saved, then loaded with :func:`gaitforce.bundle.load_bundle` (1 intra-op thread) and timed:

- per trial: one ``predict_features`` call on a ``--frames``-frame stance (the whole stance in one run),
  median and p95 over ``--repeats`` calls after 20 warm-up calls;
- batch throughput: frames/s of one call on 20 000 frames;
- multiply-accumulates per frame, counted from the ONNX graph (Conv, Gemm, MatMul nodes with ONNX shape
  inference), and the achieved MAC rate (MACs/frame x frames/s) against an estimated peak of the core:
  2 x the float32 GFLOP/s that numpy's BLAS reaches on a 1024 x 1024 matmul on 1 thread (so "peak" is what a
  tuned GEMM achieves here, not the datasheet's);
- for the paper-sized CNN, ONNX Runtime session variants: graph optimisation disabled / basic / all, and
  sequential vs parallel execution mode.

Set OMP/BLAS threads to 1 before numpy loads (done below). Ratios are measured in the same run.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

SEED_MS = 71.0  # the seed's reported inference time per stance trial
MODELS = {
    "paper-sized cnn (2 x 32 ch (19,3))": ("paper-cnn", {"conv_layers": 2, "channels": 32}),
    "paper-cnn (default)": ("paper-cnn", {}),
    "mlp": ("mlp", {}),
    "ridge": ("ridge", {}),
    "tcn (default)": ("tcn", {}),
}


def blas_peak_gflops(n: int = 1024, repeats: int = 5) -> float:
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = a.copy()
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n ** 3 / best / 1e9


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def onnx_macs(model_bytes: bytes) -> int:
    """MACs per input row of Conv / Gemm / MatMul nodes (batch dimension 1), from ONNX shape inference."""
    import onnx
    from onnx import shape_inference

    model = onnx.load_from_string(model_bytes)
    inp = model.graph.input[0]
    inp.type.tensor_type.shape.dim[0].ClearField("dim_param")
    inp.type.tensor_type.shape.dim[0].dim_value = 1
    model = shape_inference.infer_shapes(model)
    shapes = {}
    for vi in [*model.graph.value_info, *model.graph.input, *model.graph.output]:
        shapes[vi.name] = [d.dim_value for d in vi.type.tensor_type.shape.dim]
    for init in model.graph.initializer:
        shapes[init.name] = list(init.dims)
    total = 0
    for node in model.graph.node:
        if node.op_type == "Conv":
            w, y = shapes.get(node.input[1]), shapes.get(node.output[0])
            if w and y:
                total += int(np.prod(y)) * int(np.prod(w[1:]))  # out elements x (c_in/g x kernel)
        elif node.op_type in ("Gemm", "MatMul"):
            a, b = shapes.get(node.input[0]), shapes.get(node.input[1])
            if a and b:
                trans_b = any(at.name == "transB" and at.i for at in node.attribute)
                k, n = (b[1], b[0]) if trans_b else (b[-2], b[-1])
                total += int(np.prod(a[:-1])) * k * n
    return total


def make_data(n_subjects: int = 4, trials: int = 2):
    from gaitforce.ingest import build_dataset
    from gaitforce.synthetic import generate_cohort, write_cohort

    tmp = Path(tempfile.mkdtemp(prefix="gf-bench-"))
    files = [p for p in write_cohort(tmp, generate_cohort(n_subjects=n_subjects, trials_per_subject=trials))
             if p.suffix == ".c3d"]
    ds, _ = build_dataset(files, progress=False)
    g = ds.frames[["grf_x", "grf_y", "grf_z"]].to_numpy(float)
    ds.frames["target"] = np.sqrt((g ** 2).sum(1))  # a stand-in target: only the timing matters here
    ds.manifest["targets"] = {"target": "N"}
    return ds, tmp


def time_bundle(bundle, x_trial: np.ndarray, x_batch: np.ndarray, repeats: int) -> dict:
    for _ in range(20):
        bundle.predict_features(x_trial)
    ts = np.array([_timed(lambda: bundle.predict_features(x_trial)) for _ in range(repeats)])
    bundle.predict_features(x_batch)
    tb = min(_timed(lambda: bundle.predict_features(x_batch)) for _ in range(3))
    return {"trial_ms_median": 1e3 * float(np.median(ts)), "trial_ms_p95": 1e3 * float(np.percentile(ts, 95)),
            "frames_per_s": len(x_batch) / tb}


def session_variants(model_bytes: bytes, x: np.ndarray, repeats: int) -> dict:
    import onnxruntime as ort

    levels = {"disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
              "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
              "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
    out = {}
    for name, level in levels.items():
        for mode_name, mode in (("sequential", ort.ExecutionMode.ORT_SEQUENTIAL),
                                ("parallel", ort.ExecutionMode.ORT_PARALLEL)):
            o = ort.SessionOptions()
            o.intra_op_num_threads, o.inter_op_num_threads = 1, 1
            o.graph_optimization_level, o.execution_mode = level, mode
            s = ort.InferenceSession(model_bytes, sess_options=o, providers=["CPUExecutionProvider"])
            feed = {s.get_inputs()[0].name: x}
            for _ in range(10):
                s.run(None, feed)
            ts = [_timed(lambda: s.run(None, feed)) for _ in range(repeats)]
            out[f"{name}/{mode_name}"] = 1e3 * float(np.median(ts))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=300)
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--out", default=None, help="JSON file for the results")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    from gaitforce.bundle import load_bundle
    from gaitforce.training import Estimator

    peak = blas_peak_gflops()
    print(f"core peak estimate: numpy float32 1024^3 matmul, 1 thread: {peak:.1f} GFLOP/s = {peak / 2:.1f} GMAC/s")
    ds, tmp = make_data()
    cols = ds.feature_columns("all")
    x = ds.frames[cols].to_numpy(np.float32)
    x_trial = x[: args.frames]
    x_batch = np.resize(x, (20000, x.shape[1])).astype(np.float32)
    rows = []
    for label, (model, hyper) in MODELS.items():
        try:
            est = Estimator(model, targets=("target",), epochs=1, threads=1, verbose=False, **hyper).fit(ds)
        except Exception as err:  # a model this script cannot feed yet: say so, time the others
            print(f"{label:36s} skipped: {type(err).__name__}: {err}")
            continue
        folder = tmp / model.replace(" ", "_") / str(len(rows))
        est.save(folder)
        b = load_bundle(folder, intra_op_num_threads=1)
        data = (folder / "model.onnx").read_bytes()
        r = {"model": label, **time_bundle(b, x_trial, x_batch, args.repeats), "macs_per_frame": onnx_macs(data)}
        r["achieved_gmac_s"] = r["macs_per_frame"] * r["frames_per_s"] / 1e9
        r["pct_of_peak"] = 100 * r["achieved_gmac_s"] / (peak / 2)
        r["speedup_vs_seed"] = SEED_MS / r["trial_ms_median"]
        if label.startswith("paper-sized"):
            r["session_variants_ms"] = session_variants(data, x_trial, max(50, args.repeats // 3))
        rows.append(r)
        print(f"{label:36s} trial {r['trial_ms_median']:7.3f} ms (p95 {r['trial_ms_p95']:7.3f}), "
              f"{r['frames_per_s']:10.0f} frames/s, {r['macs_per_frame']:9d} MAC/frame, "
              f"{r['achieved_gmac_s']:6.2f} GMAC/s = {r['pct_of_peak']:5.1f} % of peak, "
              f"{r['speedup_vs_seed']:7.0f} x the seed's 71 ms")
        if "session_variants_ms" in r:
            print("    ORT variants (median ms per trial): " +
                  ", ".join(f"{k} {v:.3f}" for k, v in r["session_variants_ms"].items()))
    result = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
              "peak_gflops_1thread": peak, "frames_per_trial": args.frames, "seed_ms": SEED_MS, "models": rows}
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
