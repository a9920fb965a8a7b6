"""Nested model selection for the Grand Challenge benchmark: every choice made from the training years only.

For each outer fold (a test year; ``paper`` protocol, or ``strict``: the test subject's other year left out too)
the **pool** is the stances the outer fold may train on. Everything is chosen on an inner leave-one-year-out
split of that pool (``strict``: the inner validation year's subject is also left out of the inner training, as
the outer strict fold does), and the test year is touched only to score the final predictions:

1. **Candidates.** Each network configuration (:data:`gaitforce.evaluate.grand_challenge.CONFIGS`, the names
   in ``networks``) is trained once per inner fold for ``max(epoch_grid)`` epochs without a validation set, its
   weights kept after each epoch of ``epoch_grid`` (:meth:`Estimator.fit` ``snapshots``); a (configuration,
   epoch count) pair is one candidate, so early stopping is an inner choice too. The baselines
   (:mod:`gaitforce.evaluate.baselines`) are candidates per ``alpha`` (ridge-bw) and ``k`` (kNN).
2. **One RMSE.** A candidate's inner score is the mean over all the pool's stances (each is an inner validation
   stance exactly once) of the per-stance RMSE in N: the definition the tables report.
3. **Choice.** The network candidate with the lowest inner score; ridge-bw's ``alpha`` and kNN's ``k`` likewise.
   The blend ``w x ridge-bw + (1 - w) x network`` takes ``w`` on the grid 0, 0.05, ... 1 minimising the inner
   score of all inner predictions; its own inner score is nested (each inner fold blended with a weight chosen
   on the other inner folds). "Ours" is the network or the blend, whichever inner score is lower.
4. **Outer fit.** The chosen network is trained on the whole pool for its chosen epoch count with ``seeds``
   (the ensemble is their mean), the baselines with their chosen hyperparameter; the test year is predicted.

Issue 17, second round: where the data has the knee-moment columns (:data:`gaitforce.data.features.MOMENT_COLUMNS`)
``ridge-bw+moments`` is a baseline candidate too, and the blend's ridge member is whichever of ridge-bw and
ridge-bw+moments has the lower inner score; ``tcn15+bw+moments`` is a network configuration. The ``subject``
protocol groups by subject instead of year (outer and inner leave-one-subject-out: the subject-naive case).

The test year's stances never enter steps 1-3 (tested: corrupting a test year's targets changes no choice of
its fold). Reported per method and year: the ensemble's mean per-stance RMSE (N) and r; per protocol, a paired
Wilcoxon test over the test stances of ours (and the network alone) against the better baseline.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from gaitforce import evaluate as ev
from gaitforce.data.dataset import Dataset
from gaitforce.errors import GaitforceError
from gaitforce.evaluate import grand_challenge as gc
from gaitforce.data.features import MOMENT_COLUMNS
from gaitforce.evaluate.baselines import KNN_KS, RIDGE_ALPHAS, KnnBW, RidgeBW, design

#: network configurations tried by default (names of :data:`grand_challenge.CONFIGS`)
NETWORKS = ("cnn+bw", "cnn+bw+markers", "tcn15+bw", "tcn15+bw+cop", "tcn15+bw+markers", "tcn15+bw+moments")
REDUCED_NETWORKS = ("cnn+bw", "tcn15+bw")
EPOCH_GRID = (5, 10, 20, 40, 80)
REDUCED_EPOCH_GRID = (3, 6, 12)
#: the baselines; ``ridge-bw+moments`` runs where the data has the knee-moment columns
BASELINES = ("ridge-bw", "ridge-bw+moments", "knn")
RIDGE_KINDS = ("ridge-bw", "ridge-bw+moments")
METHODS = ("ours", "network", *BASELINES)
#: the protocols and the group each leaves out: ``paper`` / ``strict`` leave one competition year out
#: (strict: and the test subject's other year); ``subject`` leaves one subject out (outer and inner folds:
#: subject-naive, the selection nested as for the years)
PROTOCOL_GROUP = {"paper": "year", "strict": "year", "subject": "subject"}


def outer_folds(ds: Dataset, protocol: str) -> dict[str, dict]:
    """Leave-one-group-out folds (:data:`PROTOCOL_GROUP`) with no validation draw: ``train`` is the whole pool
    (``strict``: less the test subject's other years)."""
    if protocol not in PROTOCOL_GROUP:
        raise GaitforceError(f"unknown protocol {protocol!r} (known: {', '.join(PROTOCOL_GROUP)})")
    exclude = ev.same_subject if protocol == "strict" else None
    return ev.leave_one_group_out(ds.stances(), PROTOCOL_GROUP[protocol], val_fraction=0.0, exclude=exclude)


def inner_folds(stances: pd.DataFrame, pool: Sequence[str], protocol: str) -> dict[str, dict]:
    """Inner leave-one-group-out folds over the ``pool`` stances only: {group: {"train", "val"}}. ``strict``:
    the validation year's subject is left out of the inner training too."""
    sub = stances[stances["stance_id"].isin(set(pool))]
    exclude = ev.same_subject if protocol == "strict" else None
    inner = ev.leave_one_group_out(sub, PROTOCOL_GROUP[protocol], val_fraction=0.0, exclude=exclude)
    return {k: {"train": v["train"], "val": v["test"]} for k, v in inner.items()}


@dataclass
class NestedResult:
    years: dict = field(default_factory=dict)  # (method, protocol) -> year_table
    frames: dict = field(default_factory=dict)  # (method, protocol) -> test frame table
    choices: pd.DataFrame = field(default_factory=pd.DataFrame)  # one row per protocol x fold: what was chosen
    inner_scores: pd.DataFrame = field(default_factory=pd.DataFrame)  # protocol, fold, candidate, inner RMSE
    paired: pd.DataFrame = field(default_factory=pd.DataFrame)  # per protocol: ours / network vs best baseline
    selection_stances: dict = field(default_factory=dict)  # (protocol, fold) -> stance ids any choice saw
    runtime_s: float = 0.0
    settings: dict = field(default_factory=dict)


def _score(true: np.ndarray, pred: np.ndarray, key: np.ndarray) -> float:
    return gc._mean_stance_rmse(np.asarray(true, float), np.asarray(pred, float), np.asarray(key))


def run_nested(data: str | Path | Dataset, *, reduced: bool = False, seeds: Sequence[int] | None = None,
               networks: Sequence[str] | None = None, epoch_grid: Sequence[int] | None = None,
               inner_seeds: Sequence[int] = (0,), threads: int = 1, n_points: int = 101,
               protocols: Sequence[str] = gc.PROTOCOLS, training: dict | None = None,
               configs: Sequence[gc.Config] | None = None, log=print) -> NestedResult:
    """Run the nested benchmark (see the module docstring). ``configs`` may add or replace network
    configurations (e.g. tiny ones in tests); ``networks`` names those to try."""
    from gaitforce.learn.training import Estimator

    t0 = time.perf_counter()
    known = {c.name: c for c in (*gc.CONFIGS, *gc.MOMENT_CONFIGS, *(configs or ()))}
    networks = tuple(networks or (REDUCED_NETWORKS if reduced else NETWORKS))
    bad = [n for n in networks if n not in known or known[n].is_blend or known[n].model == "ridge"]
    if bad:
        raise GaitforceError(f"not network configurations: {bad} (known: "
                             f"{', '.join(c for c in known if gc._is_network(known[c]))})")
    epoch_grid = tuple(sorted({int(e) for e in (epoch_grid or (REDUCED_EPOCH_GRID if reduced else EPOCH_GRID))}))
    if not epoch_grid or epoch_grid[0] < 1:
        raise GaitforceError(f"epoch grid must hold positive epoch counts, got {epoch_grid}")
    seeds = tuple(seeds if seeds is not None else ((0,) if reduced else (0, 1, 2)))
    train_kw = {**gc.TRAINING, **(training or {})}
    train_kw.pop("epochs", None)
    base = data if isinstance(data, Dataset) else gc.load_gc(data)
    ds = gc.resample_stances(base, n_points)
    sets = {n: gc.add_window(ds, known[n].features, known[n].window) for n in networks}
    stances = ds.stances()
    cache: dict = {}
    subsets: dict = {}

    def subset(ids: Sequence[str]) -> Dataset:
        key = frozenset(ids)
        if key not in subsets:
            subsets[key] = ds.subset(list(ids))
        return subsets[key]

    bx, bbw = design(ds.frames)
    has_moments = all(c in ds.frames for c in MOMENT_COLUMNS) and bool(
        np.isfinite(ds.frames[MOMENT_COLUMNS].to_numpy(np.float64)).all(axis=1).mean() > 0.5)
    mx = design(ds.frames, moments=True)[0] if has_moments else None
    base_x = {"ridge-bw": bx, "knn": bx, "ridge-bw+moments": mx}
    baselines = tuple(b for b in BASELINES if base_x[b] is not None)
    if not has_moments:
        log("no knee-moment columns in the data: ridge-bw+moments is not run")
    by = ds.frames[gc.TARGET].to_numpy(np.float64)
    sid_all = ds.frames["stance_id"].to_numpy()

    def rows(ids: Sequence[str]) -> np.ndarray:
        """Frame rows of ``ids`` in the order ds.subset gives them (the dataset's frame order)."""
        return np.flatnonzero(np.isin(sid_all, list(ids)))
    n_fits = {"inner": 0, "outer": 0}

    def fit_net(name: str, train_ids: Sequence[str], seed: int, grid: Sequence[int], part: str):
        key = (name, frozenset(train_ids), int(seed), tuple(grid))
        if key not in cache:
            cfg = known[name]
            est = Estimator(cfg.model, feature_set=sets[name], targets=(gc.TARGET,), seed=int(seed),
                            threads=threads, verbose=False, device="cpu", epochs=max(grid), **train_kw,
                            **cfg.estimator_kwargs())
            cache[key] = est.fit(subset(train_ids), None, snapshots=grid)
            n_fits[part] += 1
        return cache[key]

    res = NestedResult()
    choice_rows, score_rows, paired_rows = [], [], []
    for protocol in protocols:
        outer = outer_folds(ds, protocol)
        test_tables: dict[str, list] = {m: [] for m in ("ours", "network", *baselines)}
        for fold, split in outer.items():
            pool = split["train"]
            inner = inner_folds(stances, pool, protocol)
            res.selection_stances[(protocol, fold)] = sorted(set(pool))
            val_parts = [subset(v["val"]) for v in inner.values()]
            vf = pd.concat([p.frames for p in val_parts], ignore_index=True)
            true, key = vf[gc.TARGET].to_numpy(np.float64), vf["stance_id"].to_numpy()
            inner_id = np.concatenate([np.full(len(p), k) for k, p in zip(inner, val_parts)])
            preds: dict[tuple, np.ndarray] = {}
            for name in networks:
                per_epoch = {e: [] for e in epoch_grid}
                for (vy, v), vp in zip(inner.items(), val_parts):
                    members = [fit_net(name, v["train"], s, epoch_grid, "inner") for s in inner_seeds]
                    for e in epoch_grid:
                        per_epoch[e].append(np.mean([m.at_epoch(e).predict(vp)[:, 0] for m in members], axis=0))
                for e in epoch_grid:
                    preds[("network", name, e)] = np.concatenate(per_epoch[e])
            for kind in baselines:
                cls, grid, arg = _BASELINE_SPEC[kind]
                x = base_x[kind]
                for h in grid:
                    out = []
                    for v in inner.values():
                        tr, va = rows(v["train"]), rows(v["val"])
                        m = cls(**{arg: h}, target=gc.TARGET).fit_arrays(x[tr], bbw[tr], by[tr])
                        out.append(m.predict_arrays(x[va], bbw[va]))
                    preds[(kind, kind, h)] = np.concatenate(out)
            scores = {c: _score(true, p, key) for c, p in preds.items()}
            for c, s in scores.items():
                score_rows.append({"protocol": protocol, "fold": fold, "kind": c[0], "candidate": c[1],
                                   "hyper": c[2], "inner_rmse": s})

            def best(kind):
                cands = [c for c in scores if c[0] == kind and np.isfinite(scores[c])]
                if not cands:
                    raise GaitforceError(f"fold {fold}: no {kind} candidate gave a finite inner score")
                return min(cands, key=lambda c: scores[c])

            net_c, knn_c = best("network"), best("knn")
            base_c = {k: best(k) for k in baselines}
            ridge_c = base_c["ridge-bw"]
            # the blend's ridge member: the ridge baseline (with or without the knee moments) the inner folds rank first
            blend_c = min((base_c[k] for k in RIDGE_KINDS if k in base_c), key=lambda c: scores[c])
            ra, rb = preds[blend_c], preds[net_c]
            w = gc.best_blend_weight(true, ra, rb, key)
            nested = np.empty_like(true)
            for k in inner:
                own = inner_id == k
                wk = gc.best_blend_weight(true[~own], ra[~own], rb[~own], key[~own]) if (~own).any() else 0.5
                nested[own] = wk * ra[own] + (1 - wk) * rb[own]
            blend_score = _score(true, nested, key)
            ours = "blend" if blend_score < scores[net_c] else "network"
            choice = {"protocol": protocol, "fold": fold, "network": net_c[1], "epochs": int(net_c[2]),
                      "network_inner_rmse": scores[net_c], "ridge_alpha": ridge_c[2],
                      "ridge_inner_rmse": scores[ridge_c], "knn_k": int(knn_c[2]), "knn_inner_rmse": scores[knn_c],
                      **({"ridge_moments_alpha": base_c["ridge-bw+moments"][2],
                          "ridge_moments_inner_rmse": scores[base_c["ridge-bw+moments"]]}
                         if "ridge-bw+moments" in base_c else {}),
                      "blend_ridge": blend_c[0], "blend_w": w, "blend_inner_rmse": blend_score, "ours": ours,
                      "inner_years": ",".join(inner), "pool_stances": len(pool)}
            choice_rows.append(choice)
            log(f"[{protocol}] {fold}: network {net_c[1]} @ {net_c[2]} epochs (inner {scores[net_c]:.0f} N), "
                + ", ".join(f"{k} {_BASELINE_SPEC[k][2]} {c[2]:g} ({scores[c]:.0f} N)" for k, c in base_c.items())
                + f", blend {blend_c[0]} w {w:.2f} ({blend_score:.0f} N) -> ours = {ours}")
            # outer fits: the test year is touched only here, to be predicted
            test_ds = subset(split["test"])
            tr, te = rows(pool), rows(split["test"])
            net_preds = []
            for s in seeds:
                est = fit_net(net_c[1], pool, s, (net_c[2],), "outer")
                p = est.at_epoch(net_c[2]).predict(test_ds)[:, 0]
                net_preds.append(p)
                test_tables["network"].append(gc._frame_table(test_ds, p, fold, str(s)))
            pn = np.mean(net_preds, axis=0)
            base_p = {}
            for k, c in base_c.items():
                cls, _, arg = _BASELINE_SPEC[k]
                x = base_x[k]
                base_p[k] = cls(**{arg: c[2]}, target=gc.TARGET).fit_arrays(x[tr], bbw[tr], by[tr]).predict_arrays(
                    x[te], bbw[te])
            pr = base_p[blend_c[0]]
            wo = w if ours == "blend" else 0.0
            for s, p in zip(seeds, net_preds):
                test_tables["ours"].append(gc._frame_table(test_ds, wo * pr + (1 - wo) * p, fold, str(s)))
            test_tables["network"].append(gc._frame_table(test_ds, pn, fold, "ensemble"))
            test_tables["ours"].append(gc._frame_table(test_ds, wo * pr + (1 - wo) * pn, fold, "ensemble"))
            for m, p in base_p.items():
                test_tables[m].append(gc._frame_table(test_ds, p, fold, "0"))
                test_tables[m].append(gc._frame_table(test_ds, p, fold, "ensemble"))
            tk = test_ds.frames["stance_id"].to_numpy()
            tt = test_ds.frames[gc.TARGET].to_numpy(np.float64)
            log(f"[{protocol}] {fold} test (per-stance RMSE, ensemble): " + ", ".join(
                f"{m} {_score(tt, p, tk):.0f} N" for m, p in
                (("ours", wo * pr + (1 - wo) * pn), ("network", pn), *base_p.items())))
        metrics = {}
        for m, parts in test_tables.items():
            f = pd.concat(parts, ignore_index=True)
            res.frames[(m, protocol)] = f
            metrics[m] = gc.stance_metrics(f)
            res.years[(m, protocol)] = gc.year_table(metrics[m])
        ens = {m: v[v["seed"] == "ensemble"].drop(columns="seed") for m, v in metrics.items()}
        # reported against the baseline with the lowest test mean (the strongest bar, not a choice) and, where
        # that is another, against ridge-bw too
        best_base = min(baselines, key=lambda m: ens[m]["rmse"].mean())
        for m in ("ours", "network"):
            for bb in dict.fromkeys((best_base, "ridge-bw")):
                pc = ev.paired_comparison(ens[m], ens[bb])
                paired_rows.append({"protocol": protocol, "method": m, "baseline": bb,
                                    "best_baseline": bb == best_base, **pc,
                                    "method_rmse": float(ens[m]["rmse"].mean()),
                                    "baseline_rmse": float(ens[bb]["rmse"].mean())})
        log(f"[{protocol}] " + ", ".join(f"{m} {ens[m]['rmse'].mean():.0f} N" for m in ens)
            + f" (mean per-stance RMSE of the ensembles); fits so far: {n_fits}")
    res.choices, res.inner_scores, res.paired = (pd.DataFrame(r) for r in (choice_rows, score_rows, paired_rows))
    res.runtime_s = time.perf_counter() - t0
    res.settings = {"protocols": list(protocols), "networks": list(networks), "epoch_grid": list(epoch_grid),
                    "seeds": list(seeds), "inner_seeds": list(inner_seeds), "n_points": n_points,
                    "training": {**train_kw, "epochs": "chosen on inner folds from epoch_grid"},
                    "ridge_alphas": list(RIDGE_ALPHAS), "knn_ks": list(KNN_KS), "threads": threads,
                    "baselines": list(baselines), "reduced": reduced, "fits": n_fits,
                    "selection": {p: f"inner leave-one-{PROTOCOL_GROUP[p]}-out, per-stance RMSE" for p in protocols}}
    return res


_BASELINE_SPEC = {"ridge-bw": (RidgeBW, RIDGE_ALPHAS, "alpha"), "knn": (KnnBW, KNN_KS, "k"),
                  "ridge-bw+moments": (RidgeBW, RIDGE_ALPHAS, "alpha")}


def table(res: NestedResult) -> pd.DataFrame:
    """Medial force RMSE (N) per method (rows) and year (columns): the winners, the paper, the baselines and
    ours nested (3-seed ensemble; paper and strict protocol), with the mean over years."""
    labels = LABELS
    rows = [{"method": "competition winners", **{str(y): float(gc.WINNERS[y]) for y in gc.YEARS}},
            {"method": "Rane et al. 2019 (GRF only)", **{str(y): float(gc.PAPER_TABLE5[y][0]) for y in gc.YEARS}}]
    for protocol in res.settings.get("protocols", gc.PROTOCOLS):
        if PROTOCOL_GROUP.get(protocol) != "year":
            continue
        for m in (*BASELINES, "ours", "network"):
            yt = res.years.get((m, protocol))
            if yt is not None:
                rows.append({"method": f"{labels[m]} [{protocol}]",
                             **{str(y): round(float(yt.loc[y, "rmse_ens"]), 1) for y in gc.YEARS if y in yt.index}})
    df = pd.DataFrame(rows).set_index("method")
    years = [str(y) for y in gc.YEARS]
    df["mean"] = df[years].mean(axis=1).round(1)
    df["beats winners"] = [int(sum(df.loc[i, y] < gc.WINNERS[int(y)] for y in years)) for i in df.index]
    return df


LABELS = {"ours": "ours nested", "network": "network alone, nested", "ridge-bw": "ridge-bw",
          "ridge-bw+moments": "ridge-bw+moments", "knn": "kNN"}


def subject_table(res: NestedResult, protocol: str = "subject") -> pd.DataFrame:
    """The subject-naive (leave-one-subject-out) run: per method (rows), the mean per-stance RMSE (N) of the
    ensemble on each held-out subject's stances (columns) and over all stances (``all``, each stance once),
    and the number of stances."""
    rows = []
    for m in ("ours", "network", *BASELINES):
        f = res.frames.get((m, protocol))
        if f is None:
            continue
        met = gc.stance_metrics(f[f["seed"] == "ensemble"])
        row = {"method": LABELS[m]}
        for fold, g in met.groupby("fold", sort=True):
            row[str(fold)] = round(float(g["rmse"].mean()), 1)
        row["all"] = round(float(met["rmse"].mean()), 1)
        row["stances"] = int(met["stance_id"].nunique())
        rows.append(row)
    return pd.DataFrame(rows).set_index("method") if rows else pd.DataFrame()


def write_nested(res: NestedResult, out: str | Path, *, figures: bool = True) -> Path:
    """``table.csv/.md`` (:func:`table`), ``choices.csv`` (per fold), ``inner_scores.csv``, ``paired.csv``,
    ``years.csv``, ``predictions.csv.gz`` (test frames), ``settings.json`` and ``figures/gc_<year>.png``."""
    import json

    from gaitforce.evaluate.report import markdown_table

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    protocols = res.settings.get("protocols", gc.PROTOCOLS)
    if any(PROTOCOL_GROUP.get(p) == "year" for p in protocols):
        t = table(res)
        t.to_csv(out / "table.csv")
        show = t.copy()
        for c in show.columns:
            show[c] = show[c].round(0).astype(int)
        (out / "table.md").write_text(markdown_table(show.reset_index()) + "\n")
    if "subject" in protocols:
        st = subject_table(res)
        st.to_csv(out / "subject_table.csv")
        (out / "subject_table.md").write_text(markdown_table(st.round(0).reset_index()) + "\n")
    res.choices.to_csv(out / "choices.csv", index=False)
    res.inner_scores.to_csv(out / "inner_scores.csv", index=False)
    res.paired.to_csv(out / "paired.csv", index=False)
    years = pd.concat([yt.assign(method=k[0], protocol=k[1]) for k, yt in res.years.items()])
    years.rename_axis("year").reset_index().to_csv(out / "years.csv", index=False)
    pd.concat([f.assign(method=k[0], protocol=k[1]) for k, f in res.frames.items()]).to_csv(
        out / "predictions.csv.gz", index=False)
    (out / "settings.json").write_text(json.dumps({**res.settings, "runtime_s": round(res.runtime_s, 1)},
                                                  indent=1, default=str))
    if figures and ("ours", "paper") in res.frames:
        shim = gc.BenchmarkResult(pd.DataFrame(), years={("ours nested", "paper"): res.years[("ours", "paper")]},
                                  frames={("ours nested", "paper"): res.frames[("ours", "paper")]}, chosen="ours nested")
        gc.plot_years(shim, out / "figures")
    return out


__all__ = ["NETWORKS", "EPOCH_GRID", "METHODS", "BASELINES", "PROTOCOL_GROUP", "NestedResult", "outer_folds",
           "inner_folds", "run_nested", "table", "subject_table", "write_nested"]
