"""Training time of the paper's protocol on the Grand Challenge data on 2 CPU cores (the paper: about an hour on
a GPU; goal <= 5 min).

    python benchmarks/training_time.py [--data ../shared/data/grand-challenge] [--threads 2] [--seeds 0]
                                       [--config paper-replica] [--out r.json]

Protocol (:mod:`gaitforce.evaluate.grand_challenge`, ``paper``): the 29 competition stances ingested with the default
settings, resampled to 101 points, leave-one-year-out (6 folds), paper-cnn on the 3-D GRF of one frame, early
stopping on a random 20 % of the training stances. Timed: ingest, and training + prediction of every fold
for each seed (``run_config``), wall clock with ``--threads`` torch threads. Any configuration of
``gaitforce.evaluate.grand_challenge.CONFIGS`` can be timed with ``--config``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "grand-challenge"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--config", default="paper-replica")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from gaitforce.evaluate import grand_challenge as bg

    config = {c.name: c for c in bg.CONFIGS}[args.config]
    seeds = [int(s) for s in args.seeds.split(",")]
    t0 = time.perf_counter()
    ds = bg.load_gc(args.data)
    ingest = time.perf_counter() - t0
    ds = bg.resample_stances(ds)
    folds = bg.folds(ds, "paper")
    t1 = time.perf_counter()
    bg.run_config(ds, folds, config, seeds=seeds, threads=args.threads)
    train = time.perf_counter() - t1
    print(f"{config.name}: ingest {ingest:.1f} s; {len(folds)} folds x {len(seeds)} seed(s) trained and predicted "
          f"in {train:.1f} s on {args.threads} thread(s) ({train / (len(folds) * len(seeds)):.1f} s a model); "
          f"total {ingest + train:.1f} s against the goal of 300 s")
    if args.out:
        Path(args.out).write_text(json.dumps({"config": config.name, "threads": args.threads, "seeds": seeds,
                                              "folds": len(folds), "ingest_s": ingest, "train_s": train}, indent=1))


if __name__ == "__main__":
    main()
