"""``gaitforce explain BUNDLE DATASET --out DIR``: which inputs drive the predicted force over stance.

For every stance of the dataset, the gradient of the bundle's output with respect to each input is taken at
every frame (by autograd on the network rebuilt from the bundle's weights, model.safetensors; central finite
differences in ONNX Runtime for a bundle without them), resampled to 101 points of stance, averaged over the
stances and multiplied at each point by that input's standard deviation across stances: the paper's
sensitivity map. Beside it, integrated gradients (Captum) from the mean stance give a second map in the same
unit. Written to DIR: explain.png (both heat maps, features x % stance), sensitivity.csv and
integrated_gradients.csv (stance % x features), explain.csv (long form with mean gradients, feature means and
SDs), summary.csv (features ranked), agreement.csv (the sign check on knee adduction and vertical GRF for the
medial knee force) and explain.json (method, steps, stances used and left out). With --by-subject the map is also
drawn for each subject's stances alone and with --compare for other bundles (e.g. other network seeds):
stability_subjects.csv / stability_seeds.csv say which inputs keep their sign and rank, stability_*.png shows
the maps side by side and groups_*.csv holds them. A bundle trained with body-weight normalisation is refused:
its gradients would depend on each subject's body weight."""

from __future__ import annotations

import sys
from pathlib import Path

from gaitforce.errors import GaitforceError


# the library's defaults, repeated here so that building the parser imports neither numpy nor torch (a test
# checks they equal gaitforce.learn.explain's)
POINTS, FD_STEP, IG_STEPS, GRADIENTS = 101, 1e-3, 50, ("auto", "autograd", "fd")


def register(subparsers) -> None:
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
    p.add_argument("--points", type=int, default=POINTS, help=f"stance points (default: {POINTS}, i.e. 0..100 %%)")
    p.add_argument("--fd-step", type=float, default=FD_STEP,
                   help=f"finite-difference step as a fraction of each feature's SD (default {FD_STEP:g})")
    p.add_argument("--ig-steps", type=int, default=IG_STEPS, help=f"integrated-gradients steps (default {IG_STEPS})")
    p.add_argument("--gradients", choices=GRADIENTS, default="auto",
                   help="auto: autograd on the bundle's weights when it has them, else finite differences "
                        "(default auto)")
    p.add_argument("--by-subject", action="store_true",
                   help="also the map of each subject's stances alone, and which inputs keep sign and rank")
    p.add_argument("--compare", nargs="+", default=None, metavar="BUNDLE",
                   help="other bundles with the same inputs (e.g. other network seeds) to compare sign and rank")
    p.add_argument("--title", default=None, help="figure title")
    p.add_argument("--threads", type=int, default=1, help="ONNX Runtime / torch threads (default 1)")
    p.set_defaults(func=run)


def run(args) -> int:
    from gaitforce.data.dataset import Dataset
    from gaitforce.learn.bundle import load_bundle
    from gaitforce.learn.explain import explain, explain_by_subject, groups_table, plot_stability, stability

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
    kw = dict(target=args.target, points=args.points, fd_step=args.fd_step, ig_steps=args.ig_steps,
              threads=args.threads, gradients=args.gradients)
    others = []
    for other in args.compare or []:
        b = load_bundle(other, intra_op_num_threads=args.threads, precision="fp32")
        if b.columns != bundle.columns:
            raise GaitforceError("--compare: this bundle has other inputs than BUNDLE", source=other)
        others.append((other, b))
    ex = explain(bundle, ds, **kw)
    groups = {}
    if args.by_subject:
        maps, skipped = explain_by_subject(bundle, ds, **kw)
        for subject, why in skipped.items():
            print(f"gaitforce: note: subject {subject} left out of the per-subject maps: {why}", file=sys.stderr)
        if len(maps) >= 2:
            groups["subjects"] = {f"subject {k}": v for k, v in maps.items()}
        else:
            print("gaitforce: note: fewer than 2 subjects with 2 stances: no per-subject stability", file=sys.stderr)
    if others:
        # one column per bundle: named by its folder, or by its whole path where two folders share a name
        names = [Path(p).name or str(p) for p in [args.bundle, *(o for o, _ in others)]]
        names = [n if names.count(n) == 1 else str(p) for n, p in zip(names, [args.bundle, *(o for o, _ in others)])]
        if len(set(names)) < len(names):
            raise GaitforceError("--compare names the same bundle twice", source=args.bundle)
        groups["seeds"] = {names[0]: ex, **{n: explain(b, ds, **kw) for n, (_, b) in zip(names[1:], others)}}
    lines = []
    with atomic_dir(args.out, overwrite=args.overwrite) as out:
        written = ex.save(out, title=args.title)
        for kind, maps in groups.items():
            table = stability(maps)
            table.to_csv(out / f"stability_{kind}.csv", index=False)
            groups_table(maps).to_csv(out / f"groups_{kind}.csv", index=False)
            written += [out / f"stability_{kind}.csv", out / f"groups_{kind}.csv",
                        plot_stability(ex, maps if kind == "subjects" else dict(list(maps.items())[1:]),
                                       out / f"stability_{kind}.png")]
            kept = table[table.sign_kept & table.sign_kept_integrated]
            lines.append(f"stability over {len(maps)} {kind}: sign kept in both maps by {len(kept)}/{len(table)} "
                         "inputs" + (f" (e.g. {', '.join(kept.label.head(4))})" if len(kept) else "")
                         + f"; in the top 5 of every map: {', '.join(table.label[table.top_in_all]) or 'none'}")
    for line in lines:
        print(line)
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
