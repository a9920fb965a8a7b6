"""Speed of `gaitforce explain` on the whole Grand Challenge dataset: exact gradients (autograd on the bundle's
weights) against central finite differences in ONNX Runtime, and how far their maps differ.

    python benchmarks/explain_speed.py [--json FILE] [--data DIR] [--dataset DS] [--bundle B] [--epochs 40]
                                       [--fd-stances 2|all] [--cpu N]

Builds the dataset with `gaitforce ingest DIR --out DS` (29 stances of the Grand Challenge's 4 subjects) and a
60-input paper-cnn with `gaitforce train DS --out B --epochs E --threads 1` (speed does not depend on how well it
is trained), unless --dataset / --bundle are given. Then, on 1 thread (torch and ONNX Runtime; with --cpu N the
process is pinned to that core):

- exact: `explain(bundle, ds)` over all stances (sensitivity map + integrated gradients, 50 steps): wall and
  CPU seconds;
- finite differences, sensitivity map over all stances (IG with 1 step, which the sensitivity map does not use);
  its largest difference from the exact sensitivity map;
- finite differences, both maps on the first --fd-stances stances (default 2; `all` runs the whole set, which
  takes tens of minutes), the exact maps on the same stances, their largest differences; and the full-dataset
  finite-difference time extrapolated by stance count (marked `extrapolated` unless --fd-stances all).

Differences are given in N and as a fraction of the exact map's peak.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

GC = Path(__file__).resolve().parents[2] / "shared" / "data" / "grand-challenge" / "competitions"


def _cli(*args: str) -> None:
    cmd = [sys.executable, "-c", "import sys; from gaitforce.cli import main; sys.exit(main())", *args]
    subprocess.run(cmd, check=True)


def _timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def _diff(a, b) -> dict:
    import numpy as np

    peak = float(np.abs(a).max())
    d = np.abs(a - b)
    return {"max_N": float(d.max()), "mean_N": float(d.mean()), "peak_N": peak,
            "max_fraction_of_peak": float(d.max() / peak) if peak else None}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", metavar="FILE", help="write the figures here")
    ap.add_argument("--data", default=str(GC), metavar="DIR", help="Grand Challenge competitions folder")
    ap.add_argument("--dataset", metavar="DS", help="an ingested dataset (default: ingest --data)")
    ap.add_argument("--bundle", metavar="B", help="a paper-cnn bundle with weights (default: train one)")
    ap.add_argument("--epochs", type=int, default=40, help="training epochs when training here")
    ap.add_argument("--fd-stances", default="2", help="stances for the finite-difference run of both maps, or all")
    ap.add_argument("--ig-steps", type=int, default=50, help="integrated-gradients steps")
    ap.add_argument("--cpu", type=int, default=None, metavar="N", help="pin the process to this core")
    args = ap.parse_args(argv)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})

    work = Path(tempfile.mkdtemp(prefix="explain_speed_"))
    ds_dir = Path(args.dataset) if args.dataset else work / "ds"
    if not args.dataset:
        if not Path(args.data).is_dir():
            print(f"explain_speed: no Grand Challenge data at {args.data}", file=sys.stderr)
            return 2
        _cli("ingest", args.data, "--out", str(ds_dir))
    b_dir = Path(args.bundle) if args.bundle else work / "bundle"
    train_s = None
    if not args.bundle:
        t = time.perf_counter()
        _cli("train", str(ds_dir), "--out", str(b_dir), "--model", "paper-cnn", "--feature-set", "all",
             "--epochs", str(args.epochs), "--threads", "1", "--quiet")
        train_s = time.perf_counter() - t

    from gaitforce.data.dataset import Dataset
    from gaitforce.learn.bundle import load_bundle
    from gaitforce.learn.explain import explain

    ds = Dataset.load(ds_dir)
    bundle = load_bundle(b_dir, intra_op_num_threads=1, precision="fp32")
    n_in = len(bundle.columns)
    ids = sorted(ds.stance_ids)
    kw = dict(threads=1, ig_steps=args.ig_steps)

    exact, t_exact, c_exact = _timed(lambda: explain(bundle, ds, **kw))
    print(f"exact gradients, {len(ids)} stances, {n_in} inputs: {t_exact:.1f} s wall, {c_exact:.1f} s CPU "
          f"({exact.method['gradient']})", flush=True)
    fd_sens, t_fds, c_fds = _timed(lambda: explain(bundle, ds, threads=1, ig_steps=1, gradients="fd"))
    sens_diff = _diff(exact.sensitivity, fd_sens.sensitivity)
    print(f"finite differences, sensitivity map only, all stances: {t_fds:.1f} s wall; largest difference "
          f"{sens_diff['max_N']:.3g} N ({100 * sens_diff['max_fraction_of_peak']:.2f} % of the peak "
          f"{sens_diff['peak_N']:.3g} N)", flush=True)

    sub_ids = ids if args.fd_stances == "all" else ids[: max(2, int(args.fd_stances))]
    sub = ds.subset(sub_ids)
    ex_sub, t_ex_sub, c_ex_sub = _timed(lambda: explain(bundle, sub, **kw))
    fd_sub, t_fd_sub, c_fd_sub = _timed(lambda: explain(bundle, sub, gradients="fd", **kw))
    sub_diff = {"sensitivity": _diff(ex_sub.sensitivity, fd_sub.sensitivity),
                "integrated": _diff(ex_sub.integrated, fd_sub.integrated)}
    full_fd = t_fd_sub * len(ids) / len(sub_ids)
    print(f"both maps on {len(sub_ids)} stances: exact {t_ex_sub:.1f} s, finite differences {t_fd_sub:.1f} s; "
          f"largest differences: sensitivity {sub_diff['sensitivity']['max_N']:.3g} N "
          f"({100 * sub_diff['sensitivity']['max_fraction_of_peak']:.2f} %), integrated gradients "
          f"{sub_diff['integrated']['max_N']:.3g} N ({100 * sub_diff['integrated']['max_fraction_of_peak']:.2f} %)")
    print(f"finite differences, both maps, all {len(ids)} stances: {full_fd:.0f} s"
          + ("" if len(sub_ids) == len(ids) else " (extrapolated by stance count)")
          + f"; exact {t_exact:.1f} s: {full_fd / t_exact:.0f}x")
    result = {
        "what": "gaitforce explain, paper-cnn bundle on all inputs of the Grand Challenge dataset, 1 thread",
        "stances": len(ids), "frames": int(len(ds.frames)), "inputs": n_in, "ig_steps": args.ig_steps,
        "exact": {"wall_s": t_exact, "cpu_s": c_exact, "method": exact.method["gradient"],
                  "ig_completeness_error_N": exact.method["integrated_gradients"]["max_completeness_error"]},
        "fd_sensitivity_all_stances": {"wall_s": t_fds, "cpu_s": c_fds, "difference": sens_diff},
        "subset": {"stances": sub_ids, "exact_wall_s": t_ex_sub, "fd_wall_s": t_fd_sub, "fd_cpu_s": c_fd_sub,
                   "difference": sub_diff},
        "fd_all_stances_wall_s": full_fd, "fd_all_stances_extrapolated": len(sub_ids) != len(ids),
        "speedup": full_fd / t_exact, "train_s": train_s, "epochs": args.epochs if train_s else None,
        "bundle": str(b_dir), "dataset": str(ds_dir), "pinned_cpu": args.cpu,
        "machine": {"python": platform.python_version(), "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count(), "loadavg_at_end": list(os.getloadavg())},
    }
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
