"""Inference speed of model bundles in ONNX Runtime on 1 thread, against the paper's 71 ms per stance trial.

    python benchmarks/inference.py [--repeats 300] [--frames 200] [--out benchmarks/results/inference.json]

For each model (a paper-sized CNN: two 32-channel (19, 3) convolutions; the default paper-cnn; mlp; ridge;
the causal tcn) a bundle is trained briefly (speed does not depend on the weights) on features of a synthetic
cohort and saved, then loaded with :func:`gaitforce.learn.bundle.load_bundle` (1 intra-op thread) and timed:

- per trial: one ``predict_features`` call on a ``--frames``-frame stance (the whole stance in one run),
  median and p95 over ``--repeats`` calls after 20 warm-up calls;
- batch throughput: frames/s of one call on 20 000 frames;
- multiply-accumulates per frame, counted from the ONNX graph (Conv, Gemm, MatMul nodes with ONNX shape
  inference), and the achieved MAC rate (MACs/frame x frames/s) against an estimated peak of the core:
  2 x the float32 GFLOP/s that numpy's BLAS reaches on a 1024 x 1024 matmul on 1 thread (so "peak" is what a
  tuned GEMM achieves here, not the datasheet's);
- for the paper-sized CNN, ONNX Runtime session variants: graph optimisation disabled / basic / all,
  sequential vs parallel execution mode, intra-op spinning off, CPU memory arena off; two exact float32
  rewrites of its convolutions as matrix products (``im2col``: a Gather of the padded image's (19, 3) patches,
  done once in the graph, times the (C_in x 57, C_out) weight; ``dense``: each convolution as the full
  (C_in x 60, C_out x 60) matrix it is, padding included); and its int8 model from
  :func:`gaitforce.learn.quantize.quantize_bundle` (the bundle's scheme; with the first convolution quantised too;
  with 8-bit weights, ``reduce_range`` off).
  Every variant's largest difference from the fp32 bundle on the trial is printed beside its time.

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

PAPER_MS = 71.0  # the paper's reported inference time per stance trial
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
    from gaitforce.data.ingest import build_dataset
    from gaitforce.data.synthetic import generate_cohort, write_cohort

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


def _session(model, **config):
    import onnxruntime as ort

    o = ort.SessionOptions()
    o.intra_op_num_threads, o.inter_op_num_threads = 1, 1
    o.log_severity_level = 3
    if config.pop("no_arena", False):
        o.enable_cpu_mem_arena = False
    for key, value in config.items():
        o.add_session_config_entry(key, value)
    return ort.InferenceSession(model, sess_options=o, providers=["CPUExecutionProvider"])


def _median_ms(session, x: np.ndarray, repeats: int) -> float:
    feed = {session.get_inputs()[0].name: x}
    for _ in range(10):
        session.run(None, feed)
    return 1e3 * float(np.median([_timed(lambda: session.run(None, feed)) for _ in range(repeats)]))


def _folded_conv(conv, bn):
    """(weight (C_out, C_in, kh, kw), bias (C_out)) of an eval-mode conv (no bias) + batch norm."""
    import torch

    g = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return (conv.weight * g[:, None, None, None]).detach(), (bn.bias - bn.running_mean * g).detach()


def conv_as_matmul(est, how: str):
    """The estimator's folded paper-cnn with every convolution as a matrix product (``im2col`` or ``dense``)."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    folded = est.folded_module()
    (net,) = folded.nets
    rows, cols = net.input_shape
    kh, kw = net.kernel
    mods = list(net.conv)
    layers = []
    for i in range(0, len(mods), 4):
        pad, conv, bn = mods[i : i + 3]
        w, b = _folded_conv(conv, bn)
        c_out, c_in = w.shape[:2]
        if how == "dense":  # the conv's matrix: its response to every unit input, padding included
            eye = torch.eye(c_in * rows * cols).reshape(-1, c_in, rows, cols)
            with torch.no_grad():
                m = F.conv2d(pad(eye), w).reshape(c_in * rows * cols, -1)
            layers.append(("dense", m, b.repeat_interleave(rows * cols), c_in))
        else:  # indices of each output position's patch in the padded, flattened (C_in, H+kh-1, W+kw-1) image
            ph, pw = rows + kh - 1, cols + kw - 1
            r, c, ci, dr, dc = np.meshgrid(np.arange(rows), np.arange(cols), np.arange(c_in), np.arange(kh),
                                           np.arange(kw), indexing="ij")
            idx = (ci * ph * pw + (r + dr) * pw + (c + dc)).reshape(rows * cols, c_in * kh * kw)
            layers.append(("im2col", torch.as_tensor(idx.reshape(-1)), w.reshape(c_out, -1).T.contiguous(), b,
                           pad, c_in))

    class Matmul(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.out, self.folded = net.fc, net.out, folded

        def forward(self, x):
            f = self.folded
            h = ((x - f.x_mean) / f.x_scale).reshape(-1, 1, rows, cols)
            for layer in layers:
                if layer[0] == "dense":
                    _, m, b, c_in = layer
                    h = torch.relu(h.reshape(-1, c_in * rows * cols) @ m + b)  # (N, C_out x H x W), NCHW order
                else:
                    _, idx, wm, b, pad, c_in = layer
                    p = pad(h.reshape(-1, c_in, rows, cols)).flatten(1)
                    patches = p.index_select(1, idx).reshape(-1, rows * cols, wm.shape[0])
                    h = torch.relu(patches @ wm + b).transpose(1, 2)  # (N, C_out, H x W)
            y = self.out(self.fc(h.flatten(1)))
            return y * f.y_scale + f.y_mean

    return Matmul().eval()


def cnn_variants(est, folder: Path, x: np.ndarray, calib: np.ndarray, repeats: int) -> dict:
    """Median ms per trial and max |difference| from the fp32 bundle for the paper-sized CNN's variants."""
    from gaitforce.learn.bundle import INT8_FILE, load_bundle
    from gaitforce.learn.export import export_onnx
    from gaitforce.learn.quantize import quantize_bundle

    data = (folder / "model.onnx").read_bytes()
    ref = _session(data).run(None, {"features": x})[0]
    out = {}

    def add(name, model, **config):
        s = _session(model, **config)
        diff = float(np.abs(s.run(None, {"features": x})[0] - ref).max())
        out[name] = {"ms": _median_ms(s, x, repeats), "max_abs_diff": diff}

    add("fp32", data)
    add("fp32, intra_op.allow_spinning 0", data, **{"session.intra_op.allow_spinning": "0"})
    add("fp32, cpu mem arena off", data, no_arena=True)
    for how in ("im2col", "dense"):
        path = folder / f"{how}.onnx"
        export_onnx(conv_as_matmul(est, how), x.shape[1], path)
        add(f"fp32 conv as MatMul ({how})", path.read_bytes())
    schemes = {"int8 (bundle: QDQ, per-channel 7-bit weights, 1st conv fp32)": {},
               "int8, 1st conv int8 too": {"first_layer_fp32": False},
               "int8, 8-bit weights (reduce_range off)": {"reduce_range": False}}
    for name, options in schemes.items():
        quantize_bundle(folder, calib, held_out=x, **options)
        add(name, (folder / INT8_FILE).read_bytes())
        if not options:
            out[name]["via_load_bundle_ms"] = time_bundle(load_bundle(folder, precision="int8"), x, x[:1],
                                                          repeats)["trial_ms_median"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=300)
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--out", default=None, help="JSON file for the results")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    from gaitforce.learn.bundle import load_bundle
    from gaitforce.learn.training import Estimator

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
        r["speedup_vs_paper"] = PAPER_MS / r["trial_ms_median"]
        if label.startswith("paper-sized"):
            r["session_variants_ms"] = session_variants(data, x_trial, max(50, args.repeats // 3))
            r["variants"] = cnn_variants(est, folder, x_trial, x, args.repeats)
        rows.append(r)
        print(f"{label:36s} trial {r['trial_ms_median']:7.3f} ms (p95 {r['trial_ms_p95']:7.3f}), "
              f"{r['frames_per_s']:10.0f} frames/s, {r['macs_per_frame']:9d} MAC/frame, "
              f"{r['achieved_gmac_s']:6.2f} GMAC/s = {r['pct_of_peak']:5.1f} % of peak, "
              f"{r['speedup_vs_paper']:7.0f} x the paper's 71 ms")
        if "session_variants_ms" in r:
            print("    ORT variants (median ms per trial): " +
                  ", ".join(f"{k} {v:.3f}" for k, v in r["session_variants_ms"].items()))
            for name, v in r["variants"].items():
                extra = f", {v['via_load_bundle_ms']:.3f} ms through load_bundle" if "via_load_bundle_ms" in v else ""
                print(f"    {name:48s} {v['ms']:7.3f} ms per trial (max |diff| from fp32 {v['max_abs_diff']:.3g}){extra}")
    result = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "load_average":
              os.getloadavg(),
              "peak_gflops_1thread": peak, "frames_per_trial": args.frames, "paper_ms": PAPER_MS, "models": rows}
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
