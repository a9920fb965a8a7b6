"""Streaming latency and throughput over loopback LSL: ``python benchmarks/stream_latency.py``.

Three processes, as in a lab: a replay (a synthetic walk played into an LSL mocap outlet, each sample stamped
with ``local_clock()`` at its push), ``gaitforce``'s :class:`StreamRunner` (this process: causal filter,
stance detection, features, ONNX Runtime on 1 thread, LSL result outlet) and a consumer that pulls the
results and records ``local_clock()`` at arrival minus the sample's stamp (the same clock on one machine).

Modes: ``--rate 100`` (the capture rate), ``--rate 1000`` (paced 10x), ``--rate 0`` (as fast as possible:
sustained frames/s; latency there is mostly queueing behind the backlog). Prints one JSON line per mode.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _trial():
    from gaitforce.data import synthetic

    return synthetic.generate_trial(seed=0, subject=3, trial=1)


def build_bundle(folder: Path, model: str) -> Path:
    import pandas as pd
    import torch

    from gaitforce.data import features, ingest, synthetic
    from gaitforce.data.dataset import ID_COLUMNS, Dataset
    from gaitforce.learn.export import save_bundle
    from gaitforce.learn.training import Estimator

    torch.set_num_threads(1)
    settings = ingest.IngestSettings(marker_map="plug-in-gait", targets=("knee_medial",))
    trials = synthetic.generate_cohort(n_subjects=3, trials_per_subject=1, seed=0)
    frames = pd.concat([ingest.trial_frames(t, settings=settings) for t in trials], ignore_index=True)
    frames["knee_medial"] = 2.0 * frames["grf_y"] + 500.0 * frames["knee_lat_x"]
    cols = features.feature_columns()
    manifest = {"features": cols, "feature_sets": features.feature_sets_manifest(),
                "targets": {"knee_medial": "N"}, "settings": settings.to_dict(), "sources": []}
    ds = Dataset(frames[ID_COLUMNS + cols + ["knee_medial"]], manifest)
    extra = {"epochs": 2} if model != "ridge" else {}
    est = Estimator(model, targets=("knee_medial",), threads=1, verbose=False, **extra).fit(ds)
    return save_bundle(est, folder / model, dataset_manifest=manifest)


def _replay(name, rate, frames, ready):
    from gaitforce.stream.sources import ReplaySource

    trial = _trial()
    loops = int(np.ceil(frames / trial.n_frames))
    speed = 0.0 if rate == 0 else rate / trial.rate
    src = ReplaySource(trial, name=name, speed=speed, loops=loops, stamp="push", start_delay=1.0,
                       loop_gap=0.0)
    src.start()
    ready.set()
    src.done.wait(timeout=600)
    time.sleep(1.0)
    src.stop()


def _consume(name, frames, out_q):
    import pylsl

    found = pylsl.resolve_byprop("name", name, timeout=30)
    inlet = pylsl.StreamInlet(found[0], max_buflen=360)
    inlet.open_stream(timeout=10)
    lat, arrivals = [], []
    last = time.monotonic()  # time of the last chunk received
    deadline = time.monotonic() + 600
    while len(lat) < frames and time.monotonic() < deadline:
        _, stamps = inlet.pull_chunk(timeout=0.5, max_samples=4096, min_samples=1, as_numpy=True)
        now = pylsl.local_clock()
        if len(stamps) == 0 and lat and time.monotonic() - last > 3.0:
            break
        if len(stamps):
            last = time.monotonic()
            lat.extend((now - stamps) * 1e3)
            arrivals.extend([now] * len(stamps))
    out_q.put((lat, arrivals))


def run_mode(bundle_dir: Path, rate: float, frames: int) -> dict:
    from gaitforce.learn.bundle import load_bundle
    from gaitforce.stream.runner import StreamRunner
    from gaitforce.stream.sources import open_inlet

    ctx = mp.get_context("spawn")
    name = f"gf-bench-{os.getpid()}-{int(rate)}"
    ready, q = ctx.Event(), ctx.Queue()
    rep = ctx.Process(target=_replay, args=(name, rate, frames, ready))
    rep.start()
    ready.wait(60)
    bundle = load_bundle(bundle_dir)
    inlet, info = open_inlet(name, timeout=30)
    runner = StreamRunner(bundle, inlet, info, out_name=name + "-out", max_chunk=512)
    con = ctx.Process(target=_consume, args=(name + "-out", frames, q))
    con.start()
    summary = runner.run(idle_exit=2.0, duration=300)
    lat, arrivals = q.get(timeout=60)
    con.join(10)
    runner.close()
    rep.join(30)
    lat = np.asarray(lat)
    span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else float("nan")
    return {"mode": "as fast as possible" if rate == 0 else f"{rate:g} Hz", "frames_received": int(lat.size),
            "frames_processed": summary["frames"], "sustained_frames_per_s": round((len(arrivals) - 1) / span, 1),
            "latency_ms_p50": round(float(np.percentile(lat, 50)), 3),
            "latency_ms_p99": round(float(np.percentile(lat, 99)), 3),
            "latency_ms_max": round(float(lat.max()), 3),
            "pipeline_ms_p50": round(summary["processing_latency_ms_p50"], 3),
            "pipeline_ms_p99": round(summary["processing_latency_ms_p99"], 3)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", help="bundle folder (default: a small bundle trained here on synthetic walks)")
    p.add_argument("--model", default="ridge", help="model for the default bundle (ridge, paper-cnn, mlp)")
    p.add_argument("--rate", type=float, action="append", help="replay rate(s) in Hz, 0 = as fast as possible")
    p.add_argument("--frames", type=int, default=2000, help="frames per mode (default 2000)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(args.bundle) if args.bundle else build_bundle(Path(tmp), args.model)
        for rate in args.rate or [100.0, 1000.0, 0.0]:
            res = run_mode(bundle, rate, args.frames)
            res["model"] = args.model if not args.bundle else str(args.bundle)
            res["cpu_count"] = os.cpu_count()
            print(json.dumps(res), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
