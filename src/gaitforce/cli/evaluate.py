"""``gaitforce evaluate``: score a trained bundle on a dataset, or train-and-evaluate models on named splits.

With ``--bundle B`` every stance of DATASET is predicted by the bundle and scored. Without it, each model x
feature set x seed is trained on each fold of each split (:data:`gaitforce.evaluate.splits.SCHEMES`) and scored on
the fold's test stances; ``ridge`` is always trained too, as the baseline every network must beat. The split
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

import numpy as np
import pandas as pd

from gaitforce import evaluate as ev
from gaitforce.data.dataset import Dataset
from gaitforce.errors import GaitforceError
from gaitforce.evaluate.report import markdown_table, reference_of, write_html, write_report, write_table

BASELINE = "ridge"


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
                   help=f"comma-separated split schemes ({', '.join(ev.SCHEMES)})")
    p.add_argument("--feature-sets", default="all", help="comma-separated feature sets of the dataset")
    p.add_argument("--target", default=None, help="comma-separated targets (default: all of the dataset's)")
    p.add_argument("--seeds", default="0", help="comma-separated model seeds")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the train/val/test split")
    p.add_argument("--split-seeds", default=None,
                   help="comma-separated split seeds: repeat each split with each and pool the test stances "
                        "(overrides --split-seed)")
    p.add_argument("--epochs", type=int, default=None, help="maximum training epochs (default: the model's)")
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


def _score(ds: Dataset, pred: np.ndarray, targets: list[str], stances: pd.DataFrame):
    """(per_trial rows, prediction frames) of predictions ``pred`` for every frame of ``ds``."""
    fr = ds.frames
    y_true = fr[targets].to_numpy(float)
    per = ev.per_trial_metrics(y_true, pred, fr["stance_id"].to_numpy(), body_weight=ev.body_weights(stances),
                               target_names=targets, units=ds.targets)
    preds = ev.predictions_frame(fr["stance_id"].to_numpy(), fr["stance_pct"].to_numpy(), y_true, pred, targets)
    return per, preds


def run(args) -> int:
    from gaitforce.cli.train import check_out_folder

    out = check_out_folder(args.out)
    ds = Dataset.load(args.dataset)
    by = _csv(args.by)
    unknown = [c for c in by if c not in ds.stances().columns]
    if unknown:  # else the breakdown would be left out without a word
        raise GaitforceError(f"--by {unknown}: no such stance column (has: {', '.join(ds.stances().columns)})",
                             source=ds.path)
    if args.bundle:
        return _run_bundle(ds, out, args, by)
    return _run_training(ds, out, args, by)


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
    pred_all = np.asarray(bundle.predict_features(ds.frames[cols].to_numpy(np.float32), **extra), dtype=float)
    pred = pred_all[:, [targets.index(t) for t in wanted]]
    stances = ds.stances()
    per, preds = _score(ds, pred, wanted, stances)
    per = ev.with_stance_info(per, stances)
    settings = {"mode": "bundle", "bundle": str(args.bundle), "bundle_spec": bundle.spec,
                "dataset": str(ds.path), "dataset_settings": ds.manifest.get("settings"), "targets": wanted}
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

    runs = [(s, f, m, fs, seed) for s in splits for f in folds[s] for fs in feature_sets for m in models
            for seed in seeds]
    per_rows, pred_rows, failures = [], [], []
    t_start = time.perf_counter()
    for i, (split, fold, model, fs, seed) in enumerate(runs, 1):
        part = folds[split][fold]
        label = f"{split}" + (f" [{fold}]" if fold != split else "") + f" {model} / {fs} / seed {seed}"
        t0 = time.perf_counter()
        try:
            est = Estimator(model, feature_set=fs, targets=tuple(targets), seed=seed, verbose=False,
                            threads=args.threads, device=args.device, **hyper)
            val = ds.subset(part["val"]) if part["val"] else None
            est.fit(ds.subset(part["train"]), val)
            test = ds.subset(part["test"])
            pred = np.asarray(est.predict(test), dtype=float)
        except GaitforceError as err:
            failures.append(f"{label}: {err.line()}")
            _progress(f"[{i}/{len(runs)}] {label}: FAILED: {err.line()}")
            continue
        per, preds = _score(test, pred, targets, stances)
        tags = {"split": split, "fold": fold, "split_seed": part["split_seed"], "model": model,
                "feature_set": fs, "seed": seed}
        per_rows.append(per.assign(**tags))
        pred_rows.append(preds.assign(**tags))
        msg = ", ".join(f"{t} {per.loc[per.target == t, 'rmse'].mean():.{ev.decimals(ds.targets.get(t, ''))}f} "
                        f"{ds.targets.get(t, '')}" for t in targets)
        _progress(f"[{i}/{len(runs)}] {label}: {len(part['train'])}/{len(part['val'])}/{len(part['test'])} "
                  f"stances, test RMSE {msg} ({time.perf_counter() - t0:.1f} s)")
    if not per_rows:
        raise GaitforceError("every run failed:\n  " + "\n  ".join(failures))
    per_trial = ev.with_stance_info(pd.concat(per_rows, ignore_index=True), stances)
    predictions = pd.concat(pred_rows, ignore_index=True)
    settings = {
        "mode": "train-and-evaluate", "dataset": str(ds.path), "dataset_settings": ds.manifest.get("settings"),
        "models": models, "splits": splits, "feature_sets": feature_sets, "targets": targets, "seeds": seeds,
        "split_seeds": split_seeds, "epochs": args.epochs, "device": args.device, "threads": args.threads,
        "folds": folds, "baseline": BASELINE, "failures": failures,
        "wall_s": round(time.perf_counter() - t_start, 1),
    }
    index = _write_comparison(out, per_trial, predictions, settings, targets, by,
                              reference=reference_of(ds.manifest, targets))
    _progress(f"evaluate: report {index}")
    if failures:
        _progress(f"evaluate: {len(failures)} of {len(runs)} runs failed:")
        for f in failures:
            _progress(f"  {f}")
        return 1
    return 0


def _ints(text: str, option: str) -> list[int]:
    try:
        return [int(s) for s in _csv(text)]
    except ValueError:
        raise GaitforceError(f"{option} must be integers (comma-separated), got {text!r}") from None


def repeated_folds(scheme: str, stances: pd.DataFrame, split_seeds: list[int]) -> dict[str, dict]:
    """{fold name: split + ``split_seed``} of ``scheme`` for every split seed.

    With one split seed the names are the scheme's own. With several each is prefixed ``seed <s>``, and a
    subject-naive fold is named by its test subjects (``seed 3 (test PS)``), so the per-fold table shows
    which subject each repeat held out.
    """
    out = {}
    subjects = stances.set_index("stance_id")["subject"].astype(str)
    for ss in split_seeds:
        for fold, part in ev.make_splits(scheme, stances, seed=ss).items():
            name = fold
            if len(split_seeds) > 1:
                name = f"seed {ss}" + ("" if fold == scheme else f" {fold}")
                if scheme == "subject-naive":
                    name += f" (test {', '.join(sorted(set(subjects[part['test']])))})"
            out[name] = {**part, "split_seed": ss}
    return out


def _paired_keys(df: pd.DataFrame) -> pd.DataFrame:
    """Rows keyed for pairing by stance *and* fold: with repeated splits a stance is tested more than once."""
    return df.assign(stance_id=df["stance_id"].astype(str) + "@" + df["fold"].astype(str))


def comparison_table(per_trial: pd.DataFrame, targets: list[str]) -> pd.DataFrame:
    """Rows model x feature set of one split; per target RMSE / %BW / r as mean (SD), and vs ridge."""
    rows = []
    for (model, fs), grp in per_trial.groupby(["model", "feature_set"], sort=False):
        row = {"model": model, "feature set": fs}
        base = per_trial[(per_trial["model"] == BASELINE) & (per_trial["feature_set"] == fs)]
        for t in targets:
            g = grp[grp["target"] == t]
            if g.empty:
                continue
            unit = g["unit"].iloc[0]
            dec = ev.decimals(unit)
            row[f"{t} RMSE ({unit})"] = ev.mean_std(g["rmse"], dec)
            if unit == "N":
                row[f"{t} RMSE (%BW)"] = ev.mean_std(g["rmse_pct_bw"], 1)
            row[f"{t} r"] = ev.mean_std(g["r"], 2)
            if model != BASELINE and not base.empty:
                c = ev.paired_comparison(_paired_keys(g), _paired_keys(base[base["target"] == t]))
                row[f"{t} vs ridge: dRMSE ({unit})"] = f"{c['delta']:+.{dec}f}" if np.isfinite(c["delta"]) else "-"
                row[f"{t} vs ridge: wins"] = f"{c['wins']:.0%}" if np.isfinite(c["wins"]) else "-"
                row[f"{t} vs ridge: p"] = f"{c['p']:.3g}" if np.isfinite(c["p"]) else "-"
        rows.append(row)
    table = pd.DataFrame(rows)
    return table.fillna("-") if len(table) else table


def fold_table(per_trial: pd.DataFrame, target: str) -> tuple[pd.DataFrame, str]:
    """Rows model x feature set of one split, a column per fold: mean RMSE / mean r over its test stances
    (the layout of the paper's Table 5, one column per Grand Challenge year), and the target's unit."""
    rows = []
    g = per_trial[per_trial["target"] == target]
    unit = g["unit"].iloc[0] if len(g) else "N"
    dec = ev.decimals(unit)
    for (model, fs), grp in g.groupby(["model", "feature_set"], sort=False):
        row = {"model": model, "feature set": fs}
        for fold, f in grp.groupby("fold", sort=False):
            rmse, r = f["rmse"].mean(), f["r"].mean()
            row[str(fold)] = f"{rmse:.{dec}f} / {r:.2f}" if np.isfinite(rmse) else "-"
        rows.append(row)
    return pd.DataFrame(rows).fillna("-"), unit


def unique_tests(per_trial: pd.DataFrame, predictions: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Name each test of a stance apart when repeated splits tested it in more than one fold
    (``<stance_id> (split seed <s>)``), so a report's figures never interleave two predictions of one stance."""
    if "split_seed" not in per_trial or per_trial.groupby("stance_id")["fold"].nunique().max() <= 1:
        return per_trial, predictions

    def key(df):
        return df["stance_id"].astype(str) + " (split seed " + df["split_seed"].astype(str) + ")"

    return per_trial.assign(stance_id=key(per_trial)), predictions.assign(stance_id=key(predictions))


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
             f"Wilcoxon signed-rank p of the paired differences.", ""]
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
