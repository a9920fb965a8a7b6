"""``gaitforce demo [--data DIR] --out DIR``: the whole chain (ingest -> label -> train -> evaluate -> predict)
into one report folder.

With no ``--data`` the data are a small synthetic virtual cohort that gaitforce generates itself, labelled by the
OpenSim physics pipeline, and the report says so. With ``--data DIR`` the same chain runs on real files; where
they carry the target (e.g. the Grand Challenge's in vivo knee force) it is the reference and physics is skipped
unless ``--physics always``. See :mod:`gaitforce.demo`."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    from gaitforce.demo import DemoSettings

    d = DemoSettings()
    p = subparsers.add_parser(
        "demo",
        help="run the whole chain on a synthetic cohort (or --data DIR) and write a report folder",
        description=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--out", default="gaitforce-demo", metavar="DIR", help="report folder to write")
    p.add_argument("--data", metavar="DIR", help="real trial files or a folder of them (default: synthetic cohort)")
    p.add_argument("--subjects", type=int, default=d.n_subjects, help="synthetic subjects")
    p.add_argument("--trials", type=int, default=d.trials_per_subject, help="synthetic trials per subject")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of the cohort, the split and the networks")
    p.add_argument("--physics", choices=("auto", "always", "never"), default=d.physics,
                   help="physics labels: auto = only where the data lack the target")
    p.add_argument("--no-physics", dest="physics", action="store_const", const="never",
                   help="no OpenSim (when it is not installed): a stand-in target that only checks the chain")
    p.add_argument("--workers", type=int, default=d.workers, help="Dask worker processes for labelling")
    p.add_argument("--model", default=d.model, help="the network trained against the ridge baseline")
    p.add_argument("--epochs", type=int, default=d.epochs, help="maximum training epochs")
    p.add_argument("--threads", type=int, default=d.threads, help="torch threads for training")
    p.add_argument("--target", default=d.target, help="target column")
    p.set_defaults(func=run)


def run(args) -> int:
    from gaitforce.demo import DemoSettings, run_demo
    from gaitforce.outputs import check_output

    # a file, a path under a file, a read-only folder or a bad name: one line before any work; an existing folder
    # follows the demo's own rule (a previous demo report is replaced, any other non-empty folder refused)
    check_output(args.out, allow_existing=True)

    settings = DemoSettings(data=args.data, n_subjects=args.subjects, trials_per_subject=args.trials,
                            seed=args.seed, physics=args.physics, workers=args.workers, model=args.model,
                            epochs=args.epochs, threads=args.threads, target=args.target)
    result = run_demo(args.out, settings)
    print(f"wrote {result.index}")
    for stage, seconds in result.timings.items():
        print(f"  {stage:9s} {seconds:7.1f} s")
    return 0
