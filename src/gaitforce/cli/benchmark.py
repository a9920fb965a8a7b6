"""``gaitforce benchmark grand-challenge``: the seed's Table 5 protocol on the Knee Grand Challenge data.

Each competition year is predicted by models trained on the other years (the seed's protocol, and a strict
variant that also leaves the test subject's other year out), with the seed's GRF-only network, a ridge
baseline and our improvements as an ablation; the final model is chosen on validation folds only. Writes the
per-year table, the ablation, per-year figures, the predictions and the settings with the runtime.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gaitforce.errors import GaitforceError


def register(subparsers) -> None:
    p = subparsers.add_parser("benchmark", help="run a named benchmark (grand-challenge)",
                              description="Run a named benchmark.")
    sub = p.add_subparsers(dest="benchmark", metavar="BENCHMARK")
    gc = sub.add_parser("grand-challenge", help="leave-one-year-out Grand Challenge benchmark (seed Table 5)",
                        description=__doc__.split("\n\n")[1],
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    gc.add_argument("--data", required=True,
                    help="the grand-challenge data folder (competitions/ inside), a folder of its .mat files, "
                         "or a gaitforce dataset built from them")
    gc.add_argument("--out", default="benchmark-gc", help="folder for tables, figures and predictions")
    gc.add_argument("--reduced", action="store_true",
                    help="CI size: 3 trained configurations and a blend of two of them, 1 seed, at most "
                         "15 epochs (about 30 s of CPU)")
    gc.add_argument("--seeds", type=int, default=None, help="model seeds per fold (default 3; reduced 1)")
    gc.add_argument("--configs", default=None, help="comma-separated configuration names (default: all); a blend "
                    "needs its members (ridge-grf and at least one network) in the list")
    gc.add_argument("--threads", type=int, default=1, help="torch threads")
    gc.add_argument("--val-fraction", type=float, default=0.2, help="share of the training years' stances "
                    "held out for validation / early stopping")
    gc.add_argument("--split-seed", type=int, default=0, help="seed of the validation draw")
    gc.add_argument("--epochs", type=int, default=None, help="maximum epochs (default 150; reduced 15)")
    gc.add_argument("--no-figures", action="store_true", help="skip the per-year figures")
    gc.set_defaults(func=run)
    p.set_defaults(func=lambda args: (p.print_help(), 1)[1])


def run(args) -> int:
    from gaitforce.evaluate import grand_challenge as b

    from gaitforce.outputs import atomic_dir, check_output

    check_output(args.out, overwrite=args.overwrite)
    if args.threads < 1:
        raise GaitforceError(f"--threads must be >= 1, got {args.threads}")
    if args.seeds is not None and args.seeds < 1:
        raise GaitforceError(f"--seeds must be >= 1, got {args.seeds}")
    configs = None
    if args.configs:
        known = {c.name: c for c in b.CONFIGS}
        names = [n.strip() for n in args.configs.split(",") if n.strip()]
        bad = [n for n in names if n not in known]
        if bad:
            raise GaitforceError(f"unknown configuration(s) {bad} (known: {', '.join(known)})")
        configs = [known[n] for n in names]
    n_seeds = args.seeds or (1 if args.reduced else 3)
    training = {"epochs": args.epochs} if args.epochs else None
    res = b.run_benchmark(args.data, reduced=args.reduced, seeds=tuple(range(n_seeds)), threads=args.threads,
                          val_fraction=args.val_fraction, split_seed=args.split_seed, configs=configs,
                          training=training, log=lambda m: print(m, file=sys.stderr, flush=True))
    with atomic_dir(args.out, overwrite=args.overwrite) as tmp:
        b.write_results(res, tmp, figures=not args.no_figures)
    out = Path(args.out)
    print((out / "table.md").read_text())
    print((out / "ablation.md").read_text())
    print(f"chosen by validation: {res.chosen}; runtime {res.runtime_s:.0f} s; written to {out}")
    return 0
