"""``gaitforce explain BUNDLE DATASET --out DIR``: which inputs drive the predicted force over stance.

For every stance of the dataset, the gradient of the bundle's output with respect to each input is taken at
every frame (central finite differences in ONNX Runtime), resampled to 101 points of stance, averaged over the
stances and multiplied at each point by that input's standard deviation across stances: the seed's
sensitivity map. Beside it, integrated gradients (Captum) from the mean stance give a second map in the same
unit. Written to DIR: explain.png (both heat maps, features x % stance), sensitivity.csv and
integrated_gradients.csv (stance % x features), explain.csv (long form with mean gradients, feature means and
SDs), summary.csv (features ranked), agreement.csv (the sign check on knee adduction and vertical GRF for the
medial knee force) and explain.json (method, steps, stances used and left out). A bundle trained with body-weight
normalisation is refused: its gradients would depend on each subject's body weight."""

from __future__ import annotations

import sys

from gaitforce.errors import GaitforceError


def register(subparsers) -> None:
    from gaitforce.learn.explain import FD_STEP, IG_STEPS, POINTS

    p = subparsers.add_parser(
        "explain",
        help="feature-importance maps over stance (gradient x SD and integrated gradients) for a model bundle",
        description=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument("bundle", metavar="BUNDLE", help="model bundle folder (model.onnx + bundle.json)")
    p.add_argument("dataset", metavar="DATASET", help="dataset folder (frames.parquet + manifest.json)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the figure, CSV and JSON")
    p.add_argument("--target", default=None, help="which model output (default: knee_medial, else the first)")
    p.add_argument("--stances", nargs="+", default=None, metavar="ID",
                   help="explain only these stance ids (default: every stance of the dataset)")
    p.add_argument("--points", type=int, default=POINTS, help=f"stance points (default {POINTS}: 0..100 %%)")
    p.add_argument("--fd-step", type=float, default=FD_STEP,
                   help=f"finite-difference step as a fraction of each feature's SD (default {FD_STEP:g})")
    p.add_argument("--ig-steps", type=int, default=IG_STEPS, help=f"integrated-gradients steps (default {IG_STEPS})")
    p.add_argument("--title", default=None, help="figure title")
    p.add_argument("--threads", type=int, default=1, help="ONNX Runtime / torch threads (default 1)")
    p.set_defaults(func=run)


def run(args) -> int:
    from gaitforce.data.dataset import Dataset
    from gaitforce.learn.bundle import load_bundle
    from gaitforce.learn.explain import explain

    from gaitforce.outputs import atomic_dir, check_output

    check_output(args.out, overwrite=args.overwrite)
    # fp32 always: finite differences of 1e-3 SD through an int8 network would measure its quantisation steps
    bundle = load_bundle(args.bundle, intra_op_num_threads=args.threads, precision="fp32")
    if bundle.needs_body_weight:
        raise GaitforceError("explain does not support a model trained with body-weight normalisation yet (its "
                             "output and gradients depend on each subject's body weight)", source=args.bundle)
    ds = Dataset.load(args.dataset)
    if args.stances:
        unknown = sorted(set(args.stances) - set(ds.stance_ids))
        if unknown:
            raise GaitforceError(f"no stance(s) {unknown[:5]} in the dataset", source=ds.path)
        ds = ds.subset(args.stances)
    ex = explain(bundle, ds, target=args.target, points=args.points, fd_step=args.fd_step, ig_steps=args.ig_steps,
                 threads=args.threads)
    with atomic_dir(args.out, overwrite=args.overwrite) as tmp:
        written = ex.save(tmp, title=args.title)
    for sid, why in ex.excluded.items():
        print(f"gaitforce: note: stance {sid} left out: {why}", file=sys.stderr)
    top = ex.summary().head(3)
    unit = f" {ex.unit}" if ex.unit else ""
    print(f"{ex.target}: {len(ex.stance_ids)} stances; largest mean |gradient x SD|: "
          + ", ".join(f"{r.label} {r.sensitivity_mean:+.3g}{unit}" for r in top.itertuples()))
    for r in ex.agreement().itertuples():
        verdict = "as expected" if r.as_expected else "NOT as expected"
        print(f"sign check {r.label}: expected {r.expected_sign:+d}, gradient x SD {r.sensitivity_sign:+d}, "
              f"integrated gradients {r.integrated_sign:+d}, agree at {r.sign_agreement:.0%} of "
              f"{r.points_compared} points ({verdict})")
    print(f"wrote {len(written)} files to {args.out}")
    return 0
