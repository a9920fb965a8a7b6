"""``gaitforce benchmark grand-challenge``: the paper's Table 5 protocol on the Knee Grand Challenge data.

Each competition year is predicted by models trained on the other years (the paper's protocol, and a strict
variant that also leaves the test subject's other year out). By default selection is nested: each test year's
network configuration, epoch count, baseline hyperparameters and blend weight are chosen on an inner
leave-one-year-out split of its training years only; ridge-bw and kNN baselines stand beside it with a paired
test. Writes table.csv (a row per method, a column per year), the choices, per-year figures, the predictions
and the settings with the runtime. --flat runs the earlier, non-nested ablation instead.
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
    gc = sub.add_parser("grand-challenge", help="leave-one-year-out Grand Challenge benchmark (Rane et al. 2019, Table 5)",
                        description=__doc__.split("\n\n")[1],
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    gc.add_argument("--data", required=True,
                    help="the grand-challenge data folder (competitions/ inside), a folder of its .mat files, "
                         "or a gaitforce dataset built from them")
    gc.add_argument("--out", default="benchmark-gc", help="folder for tables, figures and predictions")
    gc.add_argument("--reduced", action="store_true",
                    help="CI size: nested with cnn+bw and tcn15+bw, epochs 3/6/12, 1 seed (about 140 s of CPU); "
                         "with --flat: 3 configurations and a blend, 1 seed, at most 15 epochs")
    gc.add_argument("--seeds", type=int, default=None, help="model seeds per outer fold (default 3; reduced 1)")
    gc.add_argument("--configs", default=None, help="comma-separated configuration names (default: all); a blend "
                    "needs its members (ridge-grf and at least one network) in the list")
    gc.add_argument("--threads", type=int, default=1, help="torch threads")
    gc.add_argument("--val-fraction", type=float, default=0.2, help="--flat: share of the training years' "
                    "stances held out for validation / early stopping")
    gc.add_argument("--split-seed", type=int, default=0, help="seed of the validation draw")
    gc.add_argument("--epochs", type=int, default=None, help="--flat: maximum epochs (default 150; reduced 15); the nested run chooses epochs from --epoch-grid")
    gc.add_argument("--no-figures", action="store_true", help="skip the per-year figures")
    gc.add_argument("--flat", action="store_true", help="the earlier ablation: one choice from pooled validation "
                    "stances of all folds (not nested; kept to reproduce the earlier table)")
    gc.add_argument("--networks", default=None, help="nested: comma-separated network configurations to choose "
                    "from (default: " + "cnn+bw,cnn+bw+markers,tcn15+bw,tcn15+bw+cop,tcn15+bw+markers,tcn15+bw+moments; reduced "
                    "cnn+bw,tcn15+bw)")
    gc.add_argument("--epoch-grid", default=None, help="nested: comma-separated epoch counts to choose from "
                    "(default 5,10,20,40,80; reduced 3,6,12)")
    gc.add_argument("--protocols", default="paper,strict", help="nested: protocols to run (paper, strict; "
                    "subject: leave-one-subject-out, the choice nested on the other subjects)")
    gc.set_defaults(func=run)
    p.set_defaults(func=lambda args: (p.print_help(), 1)[1])


def _names(text: str | None) -> list[str] | None:
    return [n.strip() for n in text.split(",") if n.strip()] if text else None


def run(args) -> int:
    from gaitforce.evaluate import grand_challenge as b

    from gaitforce.outputs import atomic_dir, check_output

    check_output(args.out, overwrite=args.overwrite)
    if args.threads < 1:
        raise GaitforceError(f"--threads must be >= 1, got {args.threads}")
    if args.seeds is not None and args.seeds < 1:
        raise GaitforceError(f"--seeds must be >= 1, got {args.seeds}")
    if not args.flat:
        return _run_nested(args)
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


def _run_nested(args) -> int:
    from gaitforce.evaluate import nested as n

    if args.configs:
        raise GaitforceError("--configs selects the flat ablation's configurations: use --networks (or --flat)")
    protocols = _names(args.protocols) or []
    bad = [p for p in protocols if p not in ("paper", "strict", "subject")]
    if bad or not protocols:
        raise GaitforceError(f"--protocols must name paper, strict and/or subject, got {args.protocols!r}")
    try:
        grid = [int(e) for e in _names(args.epoch_grid)] if args.epoch_grid else None
    except ValueError:
        raise GaitforceError(f"--epoch-grid must be comma-separated whole numbers, got {args.epoch_grid!r}") from None
    seeds = tuple(range(args.seeds)) if args.seeds else None
    res = n.run_nested(args.data, reduced=args.reduced, seeds=seeds, networks=_names(args.networks),
                       epoch_grid=grid, threads=args.threads, protocols=protocols,
                       log=lambda m: print(m, file=sys.stderr, flush=True))
    out = n.write_nested(res, args.out, figures=not args.no_figures)
    for name in ("table.md", "subject_table.md"):
        if (out / name).exists():
            print((out / name).read_text())
    for _, r in res.paired.iterrows():
        print(f"[{r['protocol']}] {r['method']} vs {r['baseline']}: {r['method_rmse']:.0f} vs {r['baseline_rmse']:.0f} N "
              f"per stance (mean), delta {r['delta']:+.0f} N, better on {100 * r['wins']:.0f} % of {r['n']} stances, "
              f"Wilcoxon p {r['p']:.3g}")
    print(f"nested benchmark: runtime {res.runtime_s:.0f} s; written to {out}")
    return 0
