"""``gaitforce train DATASET --out BUNDLE``: train a surrogate on a dataset and write a model bundle.

The stances are split by subject (``subject-naive``: no subject in two sets), by stance (``subject-exposed``)
or not at all (``none``: every stance trains, no early stopping, no held-out metrics), with the split rules of
:mod:`gaitforce.evaluate`. The network trains on the train set with early stopping on the validation set
(``--sweep N`` first runs an N-trial random search and keeps the best), then is scored per stance on the
validation and test sets; those metrics are printed and written into the bundle."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from gaitforce.errors import GaitforceError

if TYPE_CHECKING:  # numpy/pandas are imported on use: `gaitforce train --help` stays fast
    from gaitforce.data.dataset import Dataset

SPLITS = ("subject-naive", "subject-exposed", "none")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a surrogate network on a dataset and write a model bundle (ONNX + JSON)",
        description=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("dataset", metavar="DATASET", help="dataset folder (frames.parquet + manifest.json)")
    p.add_argument("--out", required=True, metavar="BUNDLE", help="bundle folder to write")
    p.add_argument("--model", default="paper-cnn", help="architecture: paper-cnn, ridge, mlp, tcn, or any registered with gaitforce.learn.models.register_model")
    p.add_argument("--feature-set", default="all", help="feature set of the dataset")
    p.add_argument("--target", nargs="+", default=["knee_medial"], metavar="NAME", help="target column(s)")
    p.add_argument("--one-net-per-target", action="store_true", help="a network per target, not one for all")
    p.add_argument("--split", choices=SPLITS, default="subject-naive", help="how stances are held out")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the train/val/test split")
    p.add_argument("--seed", type=int, default=0, help="seed of the network's weights, shuffling and sweep")
    p.add_argument("--sweep", type=int, default=0, metavar="N", help="random-search N hyperparameter settings first")
    p.add_argument("--epochs", type=int, default=None, help="maximum epochs (default: 200)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="a model or training hyperparameter, e.g. conv_layers=3, channels=32, lr=3e-4 (repeatable)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: at most 4)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--quiet", action="store_true", help="no per-epoch progress")
    p.add_argument("--strict", action="store_true",
                   help="exit non-zero when the network looks collapsed (validation predictions' SD under 20 %% "
                        "of the target's, or best epoch 1-2); the bundle is still written, marked collapsed")
    p.add_argument("--ensemble", type=int, default=None, metavar="K",
                   help="train K networks with seeds SEED..SEED+K-1; the bundle predicts their mean and a per-frame "
                        "90 %% interval from their spread, calibrated split-conformally on the validation stances "
                        "(predict writes <target>_lo/_hi; K >= 2, e.g. 5)")
    p.add_argument("--quantize", choices=("int8",), default=None,
                   help="also write the network statically quantised to int8 (model.int8.onnx, calibrated on "
                        "training + validation frames); it becomes the bundle's default when its predictions on the test "
                        "frames (else validation) agree with fp32 within the rule in docs/surrogate.md")
    p.set_defaults(func=run)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def check_out_folder(path, overwrite: bool = False) -> Path:
    """``--out`` as a folder to write, checked before any work (not as a traceback after an hour of training):
    see :func:`gaitforce.outputs.check_output`."""
    from gaitforce.outputs import check_output

    return check_output(path, overwrite=overwrite)


def split_dataset(ds: Dataset, scheme: str, *, seed: int) -> dict[str, list]:
    """{"train", "val", "test": stance ids} by the evaluation module's rules (``none``: all train)."""
    if scheme == "none":
        return {"train": ds.stance_ids, "val": [], "test": []}
    from gaitforce import evaluate as ev

    fn = {"subject-naive": ev.subject_naive_split, "subject-exposed": ev.subject_exposed_split}[scheme]
    return {k: list(v) for k, v in fn(ds.stances(), seed=seed).items()}


def held_out_metrics(est, ds: Dataset) -> dict:
    """Per-target mean/std over stances of RMSE, %BW RMSE, r and peak error, plus the all-frames RMSE."""
    import numpy as np

    from gaitforce import evaluate as ev

    pred = est.predict(ds)
    true = ds.frames[list(est.targets)].to_numpy(np.float64)
    stances = ds.stances()
    per = ev.per_trial_metrics(true, pred, ds.frames["stance_id"].to_numpy(), body_weight=ev.body_weights(stances),
                               target_names=list(est.targets), units=dict(zip(est.targets, est.target_units_)))
    summary = ev.summarise(per, formatted=False).set_index("target")
    out = {}
    for j, t in enumerate(est.targets):
        row = summary.loc[t].to_dict()
        out[t] = {k: (None if not np.isfinite(v) else float(v)) if isinstance(v, float) else v for k, v in row.items()}
        out[t]["n"] = int(row.get("n", 0))
        ok = np.isfinite(true[:, j]) & np.isfinite(pred[:, j])  # the all-frames figures of Estimator.score
        err = pred[ok, j] - true[ok, j]
        out[t].update(frame_rmse=float(np.sqrt(np.mean(err**2))) if ok.any() else float("nan"),
                      frame_r=ev.pearson_r(true[:, j], pred[:, j]), unit=est.target_units_[j])
    return out


def interval_metrics(est, test: Dataset | None) -> dict:
    """Print the calibrated interval (q per target, calibration stances) and, with a test set, its measured
    coverage and mean width there; returns them for the bundle's metrics."""
    import numpy as np

    from gaitforce.evaluate.conformal import interval_coverage, min_calibration

    unc = est.uncertainty_
    cal = unc["calibration"]
    out: dict = {"level": unc["level"], "calibration_stances": cal["stances"]}
    for t, v in unc["targets"].items():
        q = v["q"]
        _log(f"train: {100 * unc['level']:.0f} % interval for {t}: mean +- q (spread + eps), q "
             + (f"{q:.3g}, eps {v['eps']:.3g}" if q is not None else "not finite (too few calibration stances: "
                f"{cal['stances']}; at least {min_calibration(unc['alpha'])} needed)")
             + f", calibrated on {cal['stances']} {cal['set']} stances")
    if test is not None:
        mean, lo, hi = est.predict_interval(test)
        y = test.frames[list(est.targets)].to_numpy(np.float64)
        sid = test.frames["stance_id"].to_numpy()
        for k, t in enumerate(est.targets):
            c = interval_coverage(y[:, k], lo[:, k], hi[:, k], sid)
            out[t] = {"test_coverage": c["coverage"], "test_stance_coverage": c["stance_coverage"],
                      "test_width": c["width"], "test_stances": c["n_stances"]}
            if np.isfinite(c["coverage"]):
                print(f"test  {t}: {100 * unc['level']:.0f} % interval covers {100 * c['coverage']:.1f} % of "
                      f"{c['n_frames']} test frames ({c['n_stances']} stances), mean width {c['width']:.3g} "
                      f"{est.target_units_[k]}")
    return out


def _print_metrics(name: str, metrics: dict) -> None:
    from gaitforce.evaluate.tables import decimals

    for t, m in metrics.items():
        unit = m.get("unit", "")
        ud = decimals(unit)

        def f(key, dec):
            mean, sd = m.get(f"{key}_mean"), m.get(f"{key}_std")
            return "-" if mean is None else f"{mean:.{dec}f} ({(sd or 0.0):.{dec}f})"

        print(f"{name:5s} {t}: RMSE {f('rmse', ud)} {unit}, {f('rmse_pct_bw', 1)} %BW, r {f('r', 2)}, "
              f"peak error {f('peak_error', ud)} {unit} over {m.get('n', '?')} stances "
              f"(all frames: RMSE {m['frame_rmse']:.3g} {unit})")


def parse_params(items: list[str]) -> dict:
    """``["conv_layers=3", "lr=3e-4", "alpha=null"]`` -> {"conv_layers": 3, "lr": 0.0003, "alpha": None}
    (values are JSON where they parse as JSON, else strings)."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise GaitforceError(f"--param needs NAME=VALUE, got {item!r}")
        try:
            out[name.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[name.strip()] = value
    return out


def _quantize(out, est, train: Dataset, val: Dataset | None, held: Dataset | None, held_name: str,
              metrics: dict) -> None:
    """Add the int8 model to bundle ``out``, calibrated on the training and validation frames (what the model
    was fitted on; never the test frames), and print its agreement with fp32 on the held-out frames."""
    import numpy as np

    from gaitforce.learn.bundle import body_weight_of_mass
    from gaitforce.learn.quantize import quantize_bundle

    rmse = {t: m["frame_rmse"] for t, m in metrics.get(held_name, {}).items()} if held is not None else None
    fitted_on = [train] if val is None else [train, val]
    calibration = np.concatenate([est.features_of(d) for d in fitted_on])
    bw = {}
    if est.body_weight_norm:  # the graph's second input: each frame's body weight from the dataset's mass
        bw["calibration_body_weight"] = np.concatenate([body_weight_of_mass(d.frames["mass"]) for d in fitted_on])
        if held is not None:
            bw["held_out_body_weight"] = body_weight_of_mass(held.frames["mass"])
    try:
        entry = quantize_bundle(out, calibration, held_out=None if held is None else est.features_of(held),
                                held_out_name=held_name, test_rmse=rmse, seed=est.seed, make_default="if-accurate",
                                **bw)
    except GaitforceError as err:  # the fp32 bundle is written and valid: say why there is no int8 model
        _log(f"train: no int8 model: {err}")
        return
    agree = entry["agreement"]
    for t, a in agree["targets"].items():
        rel = (f" = {100 * a['rms_diff_over_rmse']:.1f} % / {100 * a['max_diff_over_rmse']:.1f} % of the fp32 "
               f"{agree['on']} RMSE ({'as accurate' if a['as_accurate'] else 'NOT as accurate'})"
               if "as_accurate" in a else " (no held-out set: no verdict)")
        _log(f"int8 vs fp32 on {agree['frames']} {agree['on']} frames, {t}: RMS {a['rms_diff']:.3g} {a['unit']}, "
             f"max {a['max_abs_diff']:.3g} {a['unit']}{rel}")
    default = json.loads((out / "bundle.json").read_text()).get("default_precision", "fp32")
    _log(f"int8 model written (calibrated on {entry['calibration']['frames']} training + validation frames); "
         f"the bundle's default precision is {default}")


def run(args) -> int:
    import warnings

    from gaitforce.data.dataset import Dataset
    from gaitforce.learn.training import CollapseWarning, Estimator

    from gaitforce.learn.export import save_bundle
    from gaitforce.outputs import atomic_dir

    out_path = check_out_folder(args.out, args.overwrite)
    ds = Dataset.load(args.dataset)
    ds.feature_columns(args.feature_set)  # unknown feature set -> one-line error now
    missing = [t for t in args.target if t not in ds.targets]
    if missing:
        raise GaitforceError(f"dataset has no target {missing} (has: {', '.join(ds.targets) or 'none'})",
                             source=ds.path)
    split = split_dataset(ds, args.split, seed=args.split_seed)
    train, val = ds.subset(split["train"]), ds.subset(split["val"]) if split["val"] else None
    test = ds.subset(split["test"]) if split["test"] else None
    _log(f"train: {args.split} split: {len(split['train'])}/{len(split['val'])}/{len(split['test'])} stances "
         f"(train/val/test), {len(train)} training frames")
    kw = dict(feature_set=args.feature_set, targets=tuple(args.target), multi_target=not args.one_net_per_target,
              seed=args.seed, device=args.device, threads=args.threads, verbose=not args.quiet)
    if args.epochs is not None:
        kw["epochs"] = args.epochs
    params = parse_params(args.param)
    clash = sorted(set(params) & set(kw))
    if clash:
        raise GaitforceError(f"--param {clash} duplicates an option of its own; use that option")
    kw.update(params)
    members = getattr(args, "ensemble", None)
    if members is not None:
        if members < 2:
            raise GaitforceError(f"--ensemble needs at least 2 members, got {members}")
        if args.sweep:
            raise GaitforceError("--ensemble and --sweep do not combine yet: sweep first, then train the ensemble "
                                 "with the chosen --param values")
        if args.quantize:
            raise GaitforceError("--ensemble and --quantize do not combine yet (the int8 path quantises one network)")
        if val is None:
            _log("train: no validation stances (--split none): the ensemble's interval is not calibrated and "
                 "predict writes no interval")
    t0 = time.perf_counter()
    sweep_info = None
    if members is not None:
        from gaitforce.learn.ensemble import EnsembleEstimator

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CollapseWarning)
            est = EnsembleEstimator(args.model, members=members, **kw).fit(train, val)
    elif args.sweep:
        from gaitforce.learn.sweep import sweep

        if val is None:
            raise GaitforceError("--sweep needs a validation set: use --split subject-naive or subject-exposed")
        sweep_kw = {k: v for k, v in kw.items() if k != "seed"}
        res = sweep(train, val, model=args.model, n_trials=args.sweep, seed=args.seed, progress=_log,
                    **{**sweep_kw, "verbose": False})
        est = res.best_estimator
        sweep_info = {"n_trials": args.sweep, "best_params": res.best_params, "best_value": res.best_value,
                      "trials": res.trials.to_dict(orient="records")}
        _log(f"train: best of {args.sweep} settings: {res.best_params} (validation score {res.best_value:.4f})")
    else:
        with warnings.catch_warnings():  # the collapse warning is reported below as one line
            warnings.simplefilter("ignore", CollapseWarning)
            est = Estimator(args.model, **kw).fit(train, val)
    seconds = time.perf_counter() - t0
    metrics: dict = {"split": args.split, "split_seed": args.split_seed, "stances": split,
                     "train_seconds": round(seconds, 1)}
    if sweep_info:
        metrics["sweep"] = sweep_info
    collapsed = list(getattr(est, "collapsed_", []))
    metrics["collapsed"] = collapsed
    for name, part in (("val", val), ("test", test)):
        if part is not None:
            metrics[name] = held_out_metrics(est, part)
            _print_metrics(name, metrics[name])
    if members is not None and getattr(est, "uncertainty_", None):
        metrics["interval"] = interval_metrics(est, test)
    # the bundle and its int8 model are written into one temporary folder, renamed into place when complete
    with atomic_dir(out_path, overwrite=args.overwrite) as tmp:
        out = save_bundle(est, tmp / "b", metrics=metrics, dataset_manifest=ds.manifest)
        if args.quantize:
            # validation frames calibrate too unless they are the only held-out frames to check on
            _quantize(out, est, train, val if test is not None else None, test if test is not None else val, "test" if test is not None else "val",
                      metrics)
        for f in out.iterdir():
            f.rename(tmp / f.name)
        out.rmdir()
    out = out_path
    what = args.model if members is None else f"{args.model} ensemble of {members}"
    print(f"wrote {out}: {what} for {', '.join(est.targets)} on {args.feature_set} features "
          f"({len(train)} frames, {seconds:.1f} s)")
    if collapsed:
        print(f"gaitforce: warning: {out}: the network looks collapsed: {'; '.join(collapsed)}", file=sys.stderr)
        if args.strict:
            return 1
    return 0
