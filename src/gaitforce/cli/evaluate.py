"""``gaitforce evaluate``: score a trained bundle on a dataset, or train-and-evaluate models on named splits.

With ``--bundle B`` every stance of DATASET is predicted by the bundle and scored. Without it, each model x
feature set x seed is trained on each fold of each split (:data:`gaitforce.evaluate.splits.SCHEMES`) and scored on
the fold's test stances; ``ridge`` is always trained too, and on data with GRF, mass and stance % in N the strong
baselines ``ridge-bw`` and ``knn`` (and ``ridge-bw+moments`` on data with the knee moments;
:mod:`gaitforce.evaluate.baselines`), each network compared with the best
of them by a paired Wilcoxon test over stances. The split
itself uses ``--split-seed``; ``--split-seeds 0,1,2,...`` repeats every split with each seed (with few subjects
this rotates which subject is tested) and pools the per-stance metrics of all repeats. ``--seeds`` vary the
models' initialisation and batch order.

Written under ``--out``: ``index.md`` (one table per split: rows model x feature set, columns per target
RMSE / %BW / r as mean (SD) over test stances and seeds, plus the paired comparison with ridge),
``per_trial.csv`` (every stance's metrics), and one full report per split x model x feature set
(:func:`gaitforce.evaluate.report.write_report`; figures from the first seed).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from gaitforce._lazy import lazy_attr, lazy_module
from gaitforce.errors import GaitforceError
reference_of = lazy_attr("gaitforce.evaluate.report", "reference_of")
write_html = lazy_attr("gaitforce.evaluate.report", "write_html")

# imported on first use, so that `gaitforce evaluate --help` needs neither numpy nor pandas
np = lazy_module("numpy")
pd = lazy_module("pandas")
ev = lazy_module("gaitforce.evaluate")
Dataset = lazy_attr("gaitforce.data.dataset", "Dataset")
markdown_table = lazy_attr("gaitforce.evaluate.report", "markdown_table")
write_report = lazy_attr("gaitforce.evaluate.report", "write_report")
write_table = lazy_attr("gaitforce.evaluate.report", "write_table")
#: the split schemes of gaitforce.evaluate.SCHEMES, named here for the help text (a test checks they agree)
SCHEME_NAMES = ("subject-naive", "subject-exposed", "leave-subject-out", "leave-year-out", "leave-year-out-strict")
GRF_COLUMNS = ("grf_x", "grf_y", "grf_z")  # gaitforce.data.features.GRF_COLUMNS (a test checks they agree)
_protocol = "gaitforce.evaluate.protocol"
BASELINE = "ridge"  # gaitforce.evaluate.protocol.BASELINE (a test checks they agree)
_score = lazy_attr(_protocol, "_score")
comparison_table = lazy_attr(_protocol, "comparison_table")
fold_table = lazy_attr(_protocol, "fold_table")
repeated_folds = lazy_attr(_protocol, "repeated_folds")
run_folds = lazy_attr(_protocol, "run_folds")
unique_tests = lazy_attr(_protocol, "unique_tests")

def register(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="score a bundle on a dataset, or train and compare models on subject splits",
        description=__doc__.split("\n\n")[1],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("dataset", metavar="DATASET", help="dataset folder (frames.parquet + manifest.json)")
    p.add_argument("--out", required=True, help="report folder to write")
    p.add_argument("--bundle", help="a trained model bundle to evaluate on every stance of DATASET")
    p.add_argument("--models", default="paper-cnn,ridge,mlp", help="comma-separated model names")
    p.add_argument("--splits", default="subject-naive,subject-exposed",
                   help=f"comma-separated split schemes ({', '.join(SCHEME_NAMES)})")
    p.add_argument("--feature-sets", default="all", help="comma-separated feature sets of the dataset")
    p.add_argument("--target", default=None, help="comma-separated targets (default: all of the dataset's)")
    p.add_argument("--seeds", default="0", help="comma-separated model seeds")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the train/val/test split")
    p.add_argument("--split-seeds", default=None,
                   help="comma-separated split seeds: repeat each split with each and pool the test stances "
                        "(overrides --split-seed)")
    p.add_argument("--epochs", type=int, default=None, help="maximum training epochs (default: the model's)")
    p.add_argument("--ensemble", type=int, default=None, metavar="K",
                   help="each model (not the ridge-bw/kNN baselines) as an ensemble of K seeds: scored by its mean, "
                        "with a 90 %% interval calibrated on each fold's validation stances, its coverage reported "
                        "and drawn as a band")
    p.add_argument("--by", default=None, help="comma-separated stance columns to break summaries down by")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: at most 4)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.set_defaults(func=run)


def _csv(text: str | None) -> list[str]:
    return [t.strip() for t in (text or "").split(",") if t.strip()]


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _estimator_class():
    """The Estimator class (a function, so tests can stand in for it)."""
    try:
        from gaitforce.learn.training import Estimator
    except ImportError as err:  # pragma: no cover - only before the training module exists
        raise GaitforceError(f"training is not available: {err}") from None
    return Estimator


def _targets(ds: Dataset, requested: list[str]) -> list[str]:
    targets = requested or list(ds.targets)
    if not targets:
        raise GaitforceError("dataset has no targets to evaluate against", source=ds.path)
    missing = [t for t in targets if t not in ds.frames]
    if missing:
        raise GaitforceError(f"dataset has no target {missing} (has: {list(ds.targets)})", source=ds.path)
    return targets


def run(args) -> int:
    from gaitforce.cli.train import check_out_folder

    from gaitforce.outputs import atomic_dir

    out = check_out_folder(args.out, args.overwrite)
    ds = Dataset.load(args.dataset)
    by = _csv(args.by)
    unknown = [c for c in by if c not in ds.stances().columns]
    if unknown:  # else the breakdown would be left out without a word
        raise GaitforceError(f"--by {unknown}: no such stance column (has: {', '.join(ds.stances().columns)})",
                             source=ds.path)
    # the report is written into a temporary sibling and renamed into place when complete
    with atomic_dir(out, overwrite=args.overwrite) as tmp:
        if args.bundle:
            return _run_bundle(ds, tmp, args, by)
        return _run_training(ds, tmp, args, by)


# ---------------------------------------------------------------------------------------------------------
def _bundle_io(bundle) -> tuple[list[str], list[str]]:
    """Feature columns and target names of a bundle (spec: ``input.columns``, ``targets[].name``)."""
    spec = bundle.spec
    cols = getattr(bundle, "columns", None) or (spec.get("input") or {}).get("columns")
    targets = getattr(bundle, "targets", None) or [t["name"] for t in spec.get("targets") or []]
    if not cols or not targets:
        raise GaitforceError("bundle spec names no feature columns or no targets")
    return list(cols), list(targets)


def _run_bundle(ds: Dataset, out: Path, args, by: list[str]) -> int:
    from gaitforce.learn.bundle import load_bundle

    bundle = load_bundle(args.bundle)
    cols, targets = _bundle_io(bundle)
    missing = [c for c in cols if c not in ds.frames]
    if missing:
        raise GaitforceError(f"dataset lacks the bundle's feature columns {missing[:5]}", source=ds.path)
    wanted = _csv(args.target) or targets
    unknown = [t for t in wanted if t not in targets]
    if unknown:
        raise GaitforceError(f"bundle does not predict {unknown} (predicts: {targets})", source=args.bundle)
    _targets(ds, wanted)
    units = {t.get("name"): t.get("unit") for t in bundle.spec.get("targets") or []}
    clash = [f"{t} ({units[t]} vs {ds.targets[t]})" for t in wanted
             if units.get(t) and ds.targets.get(t) and units[t] != ds.targets[t]]
    if clash:
        raise GaitforceError(f"the bundle predicts in other units than the dataset holds: {', '.join(clash)}",
                             source=args.bundle)
    body_weight = _body_weights(bundle, ds)
    _progress(f"evaluate: bundle {args.bundle} on {len(ds.stance_ids)} stances of {ds.path}")
    extra = {} if body_weight is None else {"body_weight": body_weight}
    x = ds.frames[cols].to_numpy(np.float32)
    pick = [targets.index(t) for t in wanted]
    band = None
    if getattr(bundle, "has_interval", False):  # a calibrated ensemble: its interval beside every prediction
        pred_all, lo, hi = (np.asarray(v, dtype=float) for v in bundle.predict_interval_features(x, **extra))
        band = (lo[:, pick], hi[:, pick])
    else:
        pred_all = np.asarray(bundle.predict_features(x, **extra), dtype=float)
    pred = pred_all[:, pick]
    stances = ds.stances()
    per, preds = _score(ds, pred, wanted, stances, band)
    per = ev.with_stance_info(per, stances)
    settings = {"mode": "bundle", "bundle": str(args.bundle), "bundle_spec": bundle.spec,
                "dataset": str(ds.path), "dataset_settings": ds.manifest.get("settings"), "targets": wanted,
                "interval_level": getattr(bundle, "interval_level", None)}
    index = write_report(out, per_trial=per, predictions=preds, settings=settings,
                         title=f"Evaluation of {Path(args.bundle).name} on {Path(ds.path).name}",
                         by=by or ["subject"], model=Path(args.bundle).name,
                         reference=reference_of(ds.manifest, wanted))
    _progress(f"evaluate: report {index}")
    print(markdown_table(ev.summarise(per)))
    return 0


def _body_weights(bundle, ds: Dataset):
    """Per-frame body weight (N) from the dataset's ``mass`` column for a bundle that takes one, else None.
    Frames without a mass get no prediction (they are left out of the scores, with a note)."""
    if not getattr(bundle, "needs_body_weight", False):
        return None
    from gaitforce.learn.bundle import body_weight_of_mass

    bw = body_weight_of_mass(ds.frames["mass"]) if "mass" in ds.frames else np.full(len(ds.frames), np.nan)
    missing = int((~np.isfinite(bw)).sum())
    if missing == len(bw):
        raise GaitforceError("the bundle was trained on body-weight-normalised data and the dataset's 'mass' "
                             "column holds no subject mass", source=ds.path)
    if missing:
        _progress(f"evaluate: note: {missing} of {len(bw)} frames have no subject mass and are not predicted")
    return bw


# ---------------------------------------------------------------------------------------------------------
def _run_training(ds: Dataset, out: Path, args, by: list[str]) -> int:
    Estimator = _estimator_class()
    models = _csv(args.models)
    if BASELINE not in models:
        models.append(BASELINE)
    strong = set(GRF_COLUMNS) | {"mass", "stance_pct"} <= set(ds.frames.columns)
    if strong and all(ds.targets.get(t) == "N" for t in _targets(ds, _csv(args.target))):
        from gaitforce.data.features import MOMENT_COLUMNS
        from gaitforce.evaluate.baselines import BaselineEstimator
        from gaitforce.evaluate.protocol import BASELINE_MODELS

        # ridge-bw and kNN beside every table; ridge-bw+moments where the dataset has the knee moments
        has_moments = set(MOMENT_COLUMNS) <= set(ds.frames.columns)
        models += [m for m in BASELINE_MODELS if m not in models
                   and (has_moments or m not in BaselineEstimator.NEEDS_MOMENTS)]
    splits, feature_sets = _csv(args.splits), _csv(args.feature_sets)
    seeds = _ints(args.seeds, "--seeds")
    split_seeds = _ints(args.split_seeds, "--split-seeds") if args.split_seeds else [args.split_seed]
    if not (models and splits and feature_sets and seeds and split_seeds):
        raise GaitforceError("--models, --splits, --feature-sets, --seeds and --split-seeds must each name at "
                             "least one")
    unknown = [s for s in splits if s not in ev.SCHEMES]
    if unknown:
        raise GaitforceError(f"unknown split {unknown} (known: {', '.join(ev.SCHEMES)})")
    for fs in feature_sets:
        ds.feature_columns(fs)  # unknown feature set -> error now, not after an hour of training
    targets = _targets(ds, _csv(args.target))
    stances = ds.stances()
    folds = {s: repeated_folds(s, stances, split_seeds) for s in splits}
    hyper = {} if args.epochs is None else {"epochs": args.epochs}
    ensemble = getattr(args, "ensemble", None)
    if ensemble is not None and ensemble < 2:
        raise GaitforceError(f"--ensemble needs at least 2 members, got {ensemble}")

    t_start = time.perf_counter()
    per_trial, predictions, failures = run_folds(
        ds, folds, models=models, feature_sets=feature_sets, targets=targets, seeds=seeds, estimator=Estimator,
        threads=args.threads, device=args.device, hyper=hyper, ensemble=ensemble, progress=_progress)
    settings = {
        "mode": "train-and-evaluate", "dataset": str(ds.path), "dataset_settings": ds.manifest.get("settings"),
        "models": models, "splits": splits, "feature_sets": feature_sets, "targets": targets, "seeds": seeds,
        "split_seeds": split_seeds, "epochs": args.epochs, "device": args.device, "threads": args.threads,
        "folds": folds, "baseline": BASELINE, "failures": failures, "ensemble": ensemble,
        "interval_level": 0.9 if ensemble else None,
        "wall_s": round(time.perf_counter() - t_start, 1),
    }
    index = _write_comparison(out, per_trial, predictions, settings, targets, by,
                              reference=reference_of(ds.manifest, targets))
    _progress(f"evaluate: report {index}")
    if failures:
        n_runs = sum(len(f) for f in folds.values()) * len(feature_sets) * len(models) * len(seeds)
        _progress(f"evaluate: {len(failures)} of {n_runs} runs failed:")
        for f in failures:
            _progress(f"  {f}")
        return 1
    return 0


def _ints(text: str, option: str) -> list[int]:
    try:
        return [int(s) for s in _csv(text)]
    except ValueError:
        raise GaitforceError(f"{option} must be integers (comma-separated), got {text!r}") from None


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(text))


def _write_comparison(out: Path, per_trial, predictions, settings, targets, by, *,
                      reference: str = "reference") -> Path:
    out.mkdir(parents=True, exist_ok=True)
    per_trial.to_csv(out / "per_trial.csv", index=False)
    (out / "settings.json").write_text(json.dumps(settings, indent=2, default=str))
    lines = ["# Model comparison", "",
             f"Dataset `{settings['dataset']}`; targets {', '.join(targets)}; seeds {settings['seeds']}; "
             f"split seeds {settings['split_seeds']}. Each cell: mean (SD) over test stances, pooled over "
             f"split seeds and seeds (with repeated subject-exposed splits a stance can be tested more than "
             f"once; each test counts). "
             f"'vs ridge': mean paired difference in RMSE to ridge on the same stances and feature set "
             f"(negative: better than ridge), the share of stances where the model beats ridge, and the two-sided "
             f"Wilcoxon signed-rank p of the paired differences. 'vs best baseline': the same against the better "
             f"of ridge-bw and kNN (GRF/BW with 5 frames of context + stance %), when they were run.", ""]
    console = []
    for split, sp in per_trial.groupby("split", sort=False):
        table = comparison_table(sp, targets)
        console += [f"## {split}", "", markdown_table(table)]
        write_table(table, out, f"comparison_{_slug(split)}")
        n_st = sp["stance_id"].nunique()
        n_tests = len(sp[["fold", "stance_id"]].drop_duplicates())
        n_subj = sp["subject"].nunique() if "subject" in sp else None
        lines += [f"## {split}", "", f"{sp['fold'].nunique()} fold(s), {n_tests} stance tests of {n_st} "
                  f"distinct stances" + (f" of {n_subj} subject(s)" if n_subj is not None else "")
                  + f"; reference: {reference}. A model is better than ridge only where the paired test's p is "
                  "small (p < 0.05); with few subjects even that need not hold for new people.", "",
                  markdown_table(table)]
        if sp["fold"].nunique() > 1:
            for t in targets:
                per_fold, unit = fold_table(sp, t)
                write_table(per_fold, out, f"folds_{_slug(split)}_{_slug(t)}")
                lines += [f"{t} per fold: mean RMSE ({unit}) / mean r over the fold's test stances.", "",
                          markdown_table(per_fold)]
                console += [f"{t} per fold (RMSE {unit} / r):", "", markdown_table(per_fold)]
        lines += ["Reports:", ""]
        for (model, fs), grp in sp.groupby(["model", "feature_set"], sort=False):
            first_seed = grp["seed"].min()
            sub = out / _slug(split) / f"{_slug(model)}__{_slug(fs)}"
            keep = (predictions["split"] == split) & (predictions["model"] == model) & \
                   (predictions["feature_set"] == fs) & (predictions["seed"] == first_seed)
            rep_per, rep_pred = unique_tests(grp[grp["seed"] == first_seed], predictions[keep])
            others = {}
            if model != BASELINE:  # the baseline on the same stance curves
                base_keep = (predictions["split"] == split) & (predictions["model"] == BASELINE) & \
                            (predictions["feature_set"] == fs) & (predictions["seed"] == first_seed)
                base_per = sp[(sp["model"] == BASELINE) & (sp["feature_set"] == fs) & (sp["seed"] == first_seed)]
                if base_keep.any():
                    others[BASELINE] = unique_tests(base_per, predictions[base_keep])[1]
            write_report(sub, per_trial=rep_per, predictions=rep_pred,
                         settings={**settings, "split": split, "model": model, "feature_set": fs,
                                   "seed": int(first_seed)},
                         title=f"{model} / {fs} on {split} (seed {first_seed})", by=by or None, model=model,
                         others=others, reference=reference)
            lines.append(f"- [{model} / {fs}]({sub.relative_to(out).as_posix()}/index.md)")
        lines.append("")
    if settings["failures"]:
        lines += ["## Failed runs", "", *[f"- {f}" for f in settings["failures"]], ""]
    lines += ["Files: [per_trial.csv](per_trial.csv) (every test stance's metrics), "
              "[settings.json](settings.json) (everything used, with the folds' stance ids).", ""]
    index = out / "index.md"
    index.write_text("\n".join(lines))
    write_html(index)
    print("\n".join(console))
    return index
