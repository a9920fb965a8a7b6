"""The Grand Challenge benchmark: each competition year predicted by models trained on the other years.

Protocol (after Rane et al. 2019, Table 5; data: Fregly et al. 2012, the Knee Grand Challenge):

1. The competitions' stance phases are ingested (:func:`gaitforce.data.ingest.build_dataset`, default settings:
   10 Hz low-pass of markers and force plate; the in vivo medial force is not filtered).
2. **Time normalisation** (the paper's resampling): every stance is resampled to ``n_points`` (101: 0, 1, ...
   100 % of stance) by linear interpolation over time of every feature and target column, so the 200 Hz
   (2010-2011) and 120 Hz (2012-2015) years share one time base and every stance weighs the same in training.
   Metrics are computed on these 101 points.
3. Folds: :func:`gaitforce.evaluate.splits.leave_one_group_out` on ``year``; the pool (the other years) gives
   ``val_fraction`` of its stances at random for validation and early stopping (``split_seed``), the rest
   trains. ``paper`` protocol: as the paper (the test subject's other year may train: JW 2010/2013, DM
   2011/2015); ``strict``: :func:`gaitforce.evaluate.splits.same_subject` also leaves that other year out.
4. Each configuration (:class:`Config`) is trained with ``n_seeds`` model seeds per fold. Reported per year:
   mean per-stance RMSE (N) and r over the year's stances, as mean and SD over seeds (single models), and
   for the ensemble (mean of the seeds' predictions).
5. Model choice uses validation only: the configuration whose seed-ensemble has the lowest validation RMSE
   (mean over the six folds of the paper protocol) is "ours"; the test years never enter that choice.
6. Blends (``model="blend"``, :func:`blend_frames`) train nothing: ``w x ridge + (1 - w) x network`` from
   predictions already made, ``w`` (0, 0.05, ... 1) chosen per fold on validation stances of that fold's
   training years only; their validation RMSE is nested (each validation stance scored with a weight chosen
   without it), so they compete in step 5 on equal terms.

Inputs per configuration: the 3-D GRF (``grf``: the paper's input), GRF + CoP (``force_plate``) or all 20 marker
/ force slots (``all``), per frame or as a causal window of the ``window`` most recent frames
(:func:`add_window`, for the ``tcn`` model); optionally body-weight normalised (the Estimator's
``body_weight_norm``) and with input-noise augmentation.

Why one module of ~560 lines: it is the flat (ablation) protocol end to end (data, folds, configurations,
blends, tables, figures); the nested protocol that is now the default lives in :mod:`gaitforce.evaluate.nested`
and the baselines in :mod:`gaitforce.evaluate.baselines`.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from gaitforce import evaluate as ev
from gaitforce.constants import G
from gaitforce.data.dataset import ID_COLUMNS, Dataset
from gaitforce.data.features import COP_COLUMNS, GRF_COLUMNS
from gaitforce.errors import GaitforceError, InputFileError

TARGET = "knee_medial"
YEARS = (2010, 2011, 2012, 2013, 2014, 2015)
#: Medial contact force RMSE (N) of the winning entries, and the RMSE / r of the network of Rane et al. 2019
#: (Table 5, as copied in the data README).
WINNERS = {2010: 230, 2011: 312, 2012: 284, 2013: 194, 2014: 235, 2015: 165}
PAPER_TABLE5 = {2010: (222, 0.93), 2011: (227, 0.89), 2012: (464, 0.88), 2013: (144, 0.90), 2014: (283, 0.90),
              2015: (149, 0.92)}
PROTOCOLS = ("paper", "strict")

#: the GRF-only feature set (the paper's Grand Challenge input), as a 1 x 3 image
BASE_SETS = {"grf": (list(GRF_COLUMNS), (1, 3)), "force_plate": (list(GRF_COLUMNS) + list(COP_COLUMNS), (2, 3))}

TRAINING = {"epochs": 150, "patience": 15, "batch_size": 128, "lr": 1e-3, "weight_decay": 1e-4}


@dataclass(frozen=True)
class Config:
    """One model configuration of the ablation."""

    name: str
    model: str = "paper-cnn"
    features: str = "grf"  # grf | force_plate | all
    window: int = 1  # frames of causal context (tcn); 1 = one frame
    body_weight_norm: bool = False
    input_noise: float = 0.0
    hyper: tuple = ()  # model hyperparameters as (name, value) pairs
    what: str = ""
    #: for ``model="blend"``: the two member configurations (``NETWORK`` = the network chosen by validation)
    members: tuple = ()
    blend_weight: str = "fold"  # fold: one weight per fold | pooled: one weight from all folds' validation

    @property
    def is_blend(self) -> bool:
        return self.model == "blend"

    def estimator_kwargs(self) -> dict[str, Any]:
        return {"body_weight_norm": self.body_weight_norm, "input_noise": self.input_noise, **dict(self.hyper)}


#: The ablation, in order: the replica of the paper first, then one change at a time.
CONFIGS = (
    Config("paper-replica", "paper-cnn", "grf", what="the paper's protocol: paper-cnn, 3-D GRF of one frame, N"),
    Config("ridge-grf", "ridge", "grf", what="linear baseline on the same input"),
    Config("cnn+bw", "paper-cnn", "grf", body_weight_norm=True, what="+ body-weight normalisation (GRF/BW -> F/BW)"),
    Config("cnn+bw+cop", "paper-cnn", "force_plate", body_weight_norm=True, what="+ centre of pressure"),
    Config("cnn+bw+markers", "paper-cnn", "all", body_weight_norm=True,
           what="+ CoP + 18 marker slots (stance frame)"),
    Config("tcn15+bw", "tcn", "grf", window=15, body_weight_norm=True,
           what="GRF, causal TCN over the last 15 frames (15 % stance)"),
    Config("tcn15+bw+cop", "tcn", "force_plate", window=15, body_weight_norm=True,
           what="GRF + CoP, causal TCN, 15 frames"),
    Config("tcn31+bw+cop", "tcn", "force_plate", window=31, body_weight_norm=True, hyper=(("layers", 4),),
           what="GRF + CoP, causal TCN, 31 frames, 4 layers"),
    Config("tcn15+bw+cop+noise", "tcn", "force_plate", window=15, body_weight_norm=True, input_noise=0.1,
           what="+ input-noise augmentation (SD 0.1 of the normalised inputs)"),
    Config("tcn15+bw+markers", "tcn", "all", window=15, body_weight_norm=True,
           what="all 60 features, causal TCN, 15 frames"),
    Config("ridge-all", "ridge", "all", what="ridge on all 60 features (alpha chosen on validation), N"),
    Config("ridge-all+bw", "ridge", "all", body_weight_norm=True,
           what="ridge on all 60 features, body-weight normalised"),
    Config("blend-ridge+net", "blend", members=("ridge-grf", "network"), blend_weight="fold",
           what="w x ridge-grf + (1-w) x the network chosen by validation; w per fold from its validation stances"),
    Config("blend-ridge+net-pooled", "blend", members=("ridge-grf", "network"), blend_weight="pooled",
           what="as blend-ridge+net, one w per fold from every fold's validation stances of its training years"),
)
#: configurations of the nested benchmark only (issue 17; not part of the flat ablation above): the GRF with the
#: external knee moments and their lever arms (feature set ``grf_moments``, :func:`gaitforce.data.features.knee_moments`)
MOMENT_CONFIGS = (
    Config("tcn15+bw+moments", "tcn", "grf_moments", window=15, body_weight_norm=True,
           what="GRF + external knee adduction / flexion moments and lever arms, causal TCN, 15 frames"),
    Config("cnn+bw+moments", "paper-cnn", "grf_moments", body_weight_norm=True,
           what="GRF + knee moments and lever arms of one frame, body-weight normalised"),
)
REDUCED_CONFIGS = ("paper-replica", "ridge-grf", "tcn15+bw+cop", "blend-ridge+net")
#: the member name that stands for the network (non-ridge, non-blend configuration) with the lowest validation RMSE
NETWORK = "network"
#: blend weights tried (on the ridge member; the network gets 1 - w)
BLEND_GRID = tuple(np.round(np.linspace(0.0, 1.0, 21), 2))


# ---------------------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------------------
def load_gc(data: str | Path, *, progress: bool = False) -> Dataset:
    """The Grand Challenge stances: a gaitforce dataset folder, or the data folder (``competitions/`` inside,
    or a folder of the ``.mat`` files) ingested with the default settings."""
    data = Path(data)
    if (data / "manifest.json").exists():
        ds = Dataset.load(data)
    else:
        from gaitforce.data.ingest import build_dataset

        src = data / "competitions" if (data / "competitions").is_dir() else data
        if not src.is_dir():
            raise InputFileError("not a folder of Grand Challenge files or a gaitforce dataset", source=data)
        ds, failures = build_dataset([src], progress=progress)
        if failures:
            raise GaitforceError(f"{len(failures)} Grand Challenge file(s) failed to ingest: {failures[0]}",
                                 source=src)
    missing = [c for c in ("year", "mass", TARGET) if c not in ds.frames]
    if missing:
        raise InputFileError(f"dataset lacks {missing}: not Grand Challenge data", source=data)
    return ds


def resample_stances(ds: Dataset, n_points: int = 101) -> Dataset:
    """Every stance resampled to ``n_points`` equally spaced in time (linear interpolation of every numeric
    feature and target column); ``frame`` 0..n-1, ``stance_pct`` 0..100, ``time`` the new instants."""
    if n_points < 2:
        raise GaitforceError(f"n_points must be >= 2, got {n_points}")
    numeric = [*ds.manifest["features"], *ds.manifest["targets"]]
    keep = [c for c in ds.frames.columns if c not in numeric and c not in ("frame", "time", "stance_pct")]
    parts = []
    for sid, g in ds.frames.groupby("stance_id", sort=False):
        t = g["time"].to_numpy(np.float64)
        tn = np.linspace(t[0], t[-1], n_points)
        vals = g[numeric].to_numpy(np.float64)
        out = np.empty((n_points, len(numeric)))
        for j in range(len(numeric)):
            v = vals[:, j]
            ok = np.isfinite(v)
            out[:, j] = np.interp(tn, t[ok], v[ok]) if ok.sum() >= 2 else np.nan
        df = pd.DataFrame(out, columns=numeric)
        for c in keep:
            df[c] = g[c].iloc[0]
        df["frame"], df["time"], df["stance_pct"] = np.arange(n_points), tn - t[0], np.linspace(0, 100, n_points)
        parts.append(df)
    frames = pd.concat(parts, ignore_index=True)
    frames = frames[[*ID_COLUMNS, *[c for c in frames.columns if c not in ID_COLUMNS]]]
    manifest = json.loads(json.dumps(ds.manifest, default=str))
    manifest["resampled"] = {"n_points": int(n_points), "rule": "linear interpolation over time per stance"}
    for name, (cols, shape) in BASE_SETS.items():
        manifest["feature_sets"].setdefault(name, {"columns": cols, "shape": list(shape)})
    return Dataset(frames=frames, manifest=manifest, path=ds.path)


def add_window(ds: Dataset, feature_set: str, window: int) -> str:
    """Add causal window columns ``<col>@-k`` (k = window-1 .. 0, oldest first) for ``feature_set`` and register
    the set ``<feature_set>@w<window>`` of shape (window, channels). Frames before the stance start repeat the
    first frame. Returns the new set's name (``feature_set`` itself when window is 1). Modifies ``ds``."""
    if window < 1:
        raise GaitforceError(f"window must be >= 1, got {window}")
    if window == 1:
        return feature_set
    name = f"{feature_set}@w{window}"
    if name in ds.manifest["feature_sets"]:
        return name
    base = ds.feature_columns(feature_set)
    pos = ds.frames.groupby("stance_id", sort=False).cumcount().to_numpy()
    starts = np.arange(len(ds.frames)) - pos
    vals = ds.frames[base].to_numpy(np.float32)
    new = {}
    for k in range(window - 1, -1, -1):
        src = np.maximum(np.arange(len(ds.frames)) - k, starts)
        for j, c in enumerate(base):
            new[f"{c}@-{k}"] = vals[src, j]
    cols = list(new)
    fresh = {c: v for c, v in new.items() if c not in ds.frames}  # another window set may share columns
    ds.frames = pd.concat([ds.frames, pd.DataFrame(fresh, index=ds.frames.index)], axis=1)
    ds.manifest["feature_sets"][name] = {"columns": cols, "shape": [window, len(base)]}
    return name


def folds(ds: Dataset, protocol: str, *, val_fraction: float = 0.2, split_seed: int = 0) -> dict[str, dict]:
    """Leave-one-year-out folds (``paper`` protocol) or the strict variant (the test subject never trains)."""
    if protocol not in PROTOCOLS:
        raise GaitforceError(f"unknown protocol {protocol!r} (known: {', '.join(PROTOCOLS)})")
    exclude = ev.same_subject if protocol == "strict" else None
    return ev.leave_one_group_out(ds.stances(), "year", val_fraction=val_fraction, seed=split_seed, exclude=exclude)


# ---------------------------------------------------------------------------------------------------------
# running
# ---------------------------------------------------------------------------------------------------------
def run_config(ds: Dataset, fold_splits: dict[str, dict], config: Config, *, seeds: Sequence[int],
               threads: int = 1, training: dict | None = None) -> dict[str, pd.DataFrame]:
    """Train ``config`` on every fold with every seed. Returns ``test`` and ``val`` frame tables
    (stance_id, stance_pct, year, fold, seed or 'ensemble', true, pred)."""
    from gaitforce.learn.training import Estimator

    fs = add_window(ds, config.features, config.window)
    train_kw = {**TRAINING, **(training or {})}
    rows = {"test": [], "val": []}
    for fold, split in fold_splits.items():
        parts = {k: ds.subset(split[k]) for k in ("train", "val", "test")}
        preds = {"test": [], "val": []}
        for seed in seeds:
            est = Estimator(config.model, feature_set=fs, targets=(TARGET,), seed=int(seed), threads=threads,
                            verbose=False, device="cpu", **train_kw, **config.estimator_kwargs())
            est.fit(parts["train"], parts["val"])
            for k in preds:
                p = est.predict(parts[k])[:, 0]
                preds[k].append(p)
                rows[k].append(_frame_table(parts[k], p, fold, str(seed)))
        for k in preds:
            rows[k].append(_frame_table(parts[k], np.mean(preds[k], axis=0), fold, "ensemble"))
    return {k: pd.concat(v, ignore_index=True) for k, v in rows.items()}


def _frame_table(part: Dataset, pred: np.ndarray, fold: str, seed: str) -> pd.DataFrame:
    f = part.frames
    return pd.DataFrame({"stance_id": f["stance_id"].to_numpy(), "stance_pct": f["stance_pct"].to_numpy(),
                         "year": f["year"].to_numpy(), "mass": f["mass"].to_numpy(), "fold": fold, "seed": seed,
                         "true": f[TARGET].to_numpy(np.float64), "pred": pred,
                         **({"subject": f["subject"].astype(str).to_numpy()} if "subject" in f else {})})


def stance_metrics(frames: pd.DataFrame) -> pd.DataFrame:
    """Per stance x seed metrics (:func:`gaitforce.evaluate.metrics.per_trial_metrics`) with year, fold and seed."""
    out = []
    for (fold, seed), g in frames.groupby(["fold", "seed"], sort=False):
        bw = (g.groupby("stance_id", sort=False)["mass"].first() * G).to_dict()
        m = ev.per_trial_metrics(g["true"].to_numpy(), g["pred"].to_numpy(), g["stance_id"].to_numpy(),
                                 body_weight=bw, target_names=[TARGET])
        m["year"] = g.groupby("stance_id", sort=False)["year"].first().reindex(m["stance_id"]).to_numpy()
        m["fold"], m["seed"] = fold, seed
        out.append(m)
    return pd.concat(out, ignore_index=True)


def year_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per year: RMSE and r of the ensemble, and mean / SD over seeds of the single models' year means."""
    per = metrics.groupby(["year", "seed"])[["rmse", "r", "rmse_pct_bw"]].mean().reset_index()
    single = per[per["seed"] != "ensemble"].groupby("year")
    ens = per[per["seed"] == "ensemble"].set_index("year")
    out = pd.DataFrame({
        "rmse_mean": single["rmse"].mean(), "rmse_sd": single["rmse"].std(ddof=1).fillna(0.0),
        "r_mean": single["r"].mean(), "r_sd": single["r"].std(ddof=1).fillna(0.0),
        "rmse_ens": ens["rmse"], "r_ens": ens["r"], "rmse_pct_bw_ens": ens["rmse_pct_bw"],
    })
    out.index = out.index.astype(int)
    return out


def validation_score(val_frames: pd.DataFrame) -> float:
    """Model-choice score: mean over folds of the ensemble's mean per-stance validation RMSE (N)."""
    m = stance_metrics(val_frames[val_frames["seed"] == "ensemble"])
    return float(m.groupby("fold")["rmse"].mean().mean())


# ---------------------------------------------------------------------------------------------------------
# blends: post-hoc combinations of two configurations' predictions, the weight chosen on validation only
# ---------------------------------------------------------------------------------------------------------
_KEYS = ["fold", "seed", "stance_id", "stance_pct"]


def _mean_stance_rmse(true: np.ndarray, pred: np.ndarray, key: np.ndarray) -> float:
    """Mean over stances (``key``) of the per-stance RMSE; frames with a NaN are left out (the evaluation
    module's rule)."""
    ok = np.isfinite(true) & np.isfinite(pred)
    if not ok.any():
        return float("nan")
    e2 = pd.Series((pred[ok] - true[ok]) ** 2).groupby(key[ok], sort=False).mean()
    return float(np.sqrt(e2).mean())


def best_blend_weight(true, ridge, net, key, *, grid: Sequence[float] = BLEND_GRID) -> float:
    """The weight ``w`` on the grid minimising the mean per-stance RMSE of ``w * ridge + (1 - w) * net``
    (the first grid value on ties; with no usable frame, 0.5)."""
    true, ridge, net, key = (np.asarray(v) for v in (true, ridge, net, key))
    scores = [_mean_stance_rmse(true, w * ridge + (1 - w) * net, key) for w in grid]
    if not np.isfinite(scores).any():
        return 0.5
    return float(grid[int(np.nanargmin(scores))])


def _aligned(fa: pd.DataFrame, fb: pd.DataFrame, what: str) -> None:
    if len(fa) != len(fb) or not fa[_KEYS].reset_index(drop=True).equals(fb[_KEYS].reset_index(drop=True)):
        raise GaitforceError(f"blend members' {what} predictions are not on the same frames")


def blend_frames(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame], fold_splits: dict[str, dict], *,
                 mode: str = "fold") -> tuple[dict[str, pd.DataFrame], dict[str, float]]:
    """Blend two configurations' ``test``/``val`` frame tables (:func:`run_config`): ``w * a + (1 - w) * b``.

    The weight of fold ``f`` is chosen on validation predictions only (the ensembles over model seeds'):

    - ``mode="fold"``: on fold ``f``'s own validation stances;
    - ``mode="pooled"``: on the validation stances of **every** fold that belong to fold ``f``'s training pool
      (its train + val stances), so the test year (and, on the strict protocol, the test subject) never
      enters it.

    Returns the blended ``test`` frames (every seed and the ensemble, each with its fold's weight), ``val``
    frames whose predictions are **nested** (each validation stance blended with a weight chosen without it:
    leave-one-stance-out within the fold for ``fold``; the other folds' validation stances of the pool, less
    fold ``f``'s own, for ``pooled``), so their score is an honest validation RMSE for the model choice, and
    the weights per fold.
    """
    if mode not in ("fold", "pooled"):
        raise GaitforceError(f"unknown blend weight mode {mode!r} (known: fold, pooled)")
    for k in ("test", "val"):
        _aligned(a[k], b[k], k)
    va = a["val"][a["val"]["seed"] == "ensemble"]
    vb = b["val"].loc[va.index]
    true, ra, rb = (v.to_numpy(np.float64) for v in (va["true"], va["pred"], vb["pred"]))
    fold = va["fold"].to_numpy()
    sid = va["stance_id"].to_numpy()
    key = (va["fold"].astype(str) + "|" + va["stance_id"].astype(str)).to_numpy()

    def best(mask) -> float:
        return best_blend_weight(true[mask], ra[mask], rb[mask], key[mask])

    weights, nested = {}, np.full(len(va), np.nan)
    for f, split in fold_splits.items():
        own = fold == f
        if mode == "fold":
            weights[f] = best(own)
            for s in np.unique(sid[own]):
                rows = own & (sid == s)
                w = best(own & (sid != s))
                nested[rows] = w * ra[rows] + (1 - w) * rb[rows]
        else:
            pool = np.isin(sid, list(split["train"]) + list(split["val"]))
            weights[f] = best(pool)
            w = best(pool & ~own & ~np.isin(sid, list(split["val"])))
            nested[own] = w * ra[own] + (1 - w) * rb[own]
    out_val = va.assign(pred=nested)
    t = a["test"]
    w_rows = t["fold"].map(weights).to_numpy(np.float64)
    out_test = t.assign(pred=w_rows * t["pred"].to_numpy() + (1 - w_rows) * b["test"]["pred"].to_numpy())
    return {"test": out_test, "val": out_val}, weights


# ---------------------------------------------------------------------------------------------------------
# the benchmark
# ---------------------------------------------------------------------------------------------------------
@dataclass
class BenchmarkResult:
    ablation: pd.DataFrame  # one row per config x protocol: validation score, pooled test RMSE, wins
    years: dict = field(default_factory=dict)  # (config, protocol) -> year_table
    frames: dict = field(default_factory=dict)  # (config, protocol) -> test frame table
    chosen: str = ""
    runtime_s: float = 0.0
    settings: dict = field(default_factory=dict)
    val_frames: dict = field(default_factory=dict)  # (config, protocol) -> validation frame table
    blend_weights: dict = field(default_factory=dict)  # (config, protocol) -> {fold: weight on the ridge}


def _is_network(cfg: Config) -> bool:
    return not cfg.is_blend and cfg.model != "ridge"


def run_benchmark(data: str | Path | Dataset, *, reduced: bool = False, seeds: Sequence[int] | None = None,
                  threads: int = 1, n_points: int = 101, val_fraction: float = 0.2, split_seed: int = 0,
                  configs: Sequence[Config] | None = None, training: dict | None = None,
                  log=print) -> BenchmarkResult:
    """Run the ablation on the paper protocol, choose by validation, then run the replica of the paper, ridge and the
    chosen configuration on the strict protocol too.

    Blends (``model="blend"``) cost no training: they combine their members' predictions (:func:`blend_frames`);
    the member ``NETWORK`` is the non-ridge, non-blend configuration with the lowest validation RMSE. A blend
    whose members were not run is skipped (logged). Their validation RMSE is the nested one, so the choice
    stays "lowest validation RMSE" without the blend's weight having seen the stances that score it.
    """
    t0 = time.perf_counter()
    if configs is None:
        configs = [c for c in CONFIGS if not reduced or c.name in REDUCED_CONFIGS]
    if seeds is None:
        seeds = (0,) if reduced else (0, 1, 2)
    training = {**({"epochs": 15, "patience": 5} if reduced else {}), **(training or {})}
    base = data if isinstance(data, Dataset) else load_gc(data)
    ds = resample_stances(base, n_points)
    fold_sets = {p: folds(ds, p, val_fraction=val_fraction, split_seed=split_seed) for p in PROTOCOLS}
    by_name = {c.name: c for c in configs}
    out = BenchmarkResult(pd.DataFrame(), chosen="")
    rows, raw = [], {}

    def record(cfg: Config, protocol: str, res: dict, seconds: float, extra: str = "") -> None:
        yt = year_table(stance_metrics(res["test"]))
        out.years[(cfg.name, protocol)], out.frames[(cfg.name, protocol)] = yt, res["test"]
        out.val_frames[(cfg.name, protocol)] = res["val"]
        wins = int(sum(yt.loc[y, "rmse_ens"] < WINNERS[y] for y in yt.index if y in WINNERS))
        row = {"config": cfg.name, "protocol": protocol, "what": cfg.what + extra,
               "val_rmse": validation_score(res["val"]),
               "test_rmse_single": float(yt["rmse_mean"].mean()), "test_rmse_ens": float(yt["rmse_ens"].mean()),
               "test_r_ens": float(yt["r_ens"].mean()), "beats_winners": wins, "seconds": seconds}
        rows.append(row)
        log(f"{cfg.name:>22} [{protocol}] val {row['val_rmse']:.0f} N | test (mean of years) single "
            f"{row['test_rmse_single']:.0f} N, ensemble {row['test_rmse_ens']:.0f} N, beats winners {wins}/6 "
            f"({row['seconds']:.0f} s)")

    def trained(cfg: Config, protocol: str) -> dict:
        if (cfg.name, protocol) not in raw:
            t = time.perf_counter()
            raw[(cfg.name, protocol)] = run_config(ds, fold_sets[protocol], cfg, seeds=seeds, threads=threads,
                                                   training=training)
            record(cfg, protocol, raw[(cfg.name, protocol)], time.perf_counter() - t)
        return raw[(cfg.name, protocol)]

    def members(cfg: Config, network: str | None) -> list[str] | None:
        names = [network if m == NETWORK else m for m in cfg.members]
        return names if len(names) == 2 and all(n in by_name for n in names) else None

    def blended(cfg: Config, protocol: str, names: list[str]) -> None:
        t = time.perf_counter()
        a, b_ = (trained(by_name[n], protocol) for n in names)
        res, weights = blend_frames(a, b_, fold_sets[protocol], mode=cfg.blend_weight)
        out.blend_weights[(cfg.name, protocol)] = weights
        ws = ", ".join(f"{w:.2f}" for w in weights.values())
        record(cfg, protocol, res, time.perf_counter() - t, extra=f" [{names[1]}; w on {names[0]} per fold: {ws}]")

    for cfg in configs:
        if not cfg.is_blend:
            trained(cfg, "paper")

    def lowest(names) -> str | None:
        paper_rows = pd.DataFrame(rows)
        paper_rows = paper_rows[(paper_rows["protocol"] == "paper") & paper_rows["config"].isin(list(names))]
        return None if paper_rows.empty else str(paper_rows.sort_values("val_rmse", kind="stable").iloc[0]["config"])

    network = lowest(c.name for c in configs if _is_network(c))
    blend_members = {}
    for cfg in configs:
        if cfg.is_blend:
            names = members(cfg, network)
            if names is None:
                log(f"{cfg.name}: skipped (needs {', '.join(cfg.members)} among the configurations run)")
                continue
            blend_members[cfg.name] = names
            blended(cfg, "paper", names)
    out.chosen = chosen = lowest(by_name)
    log(f"chosen by validation: {chosen}")
    for name in dict.fromkeys([configs[0].name, "ridge-grf", chosen]):
        if name in blend_members:
            blended(by_name[name], "strict", blend_members[name])
        elif name in by_name:
            trained(by_name[name], "strict")
    out.ablation = pd.DataFrame(rows)
    out.settings = {"n_points": n_points, "val_fraction": val_fraction, "split_seed": split_seed,
                    "seeds": list(seeds), "threads": threads, "training": {**TRAINING, **training},
                    "reduced": reduced, "configs": [asdict(c) for c in configs], "target": TARGET,
                    "network_for_blends": network, "blend_members": blend_members,
                    "blend_weights": {f"{k[0]} [{k[1]}]": v for k, v in out.blend_weights.items()},
                    "folds": {p: fold_sets[p] for p in PROTOCOLS}}
    out.runtime_s = time.perf_counter() - t0
    return out


# ---------------------------------------------------------------------------------------------------------
# output
# ---------------------------------------------------------------------------------------------------------
def results_table(res: BenchmarkResult) -> pd.DataFrame:
    """The Table 5 comparison: winners, the paper, our replica of the paper and our chosen model, both protocols."""
    first = res.ablation["config"].iloc[0]
    rows = [{"row": "competition winners", **{y: f"{WINNERS[y]}" for y in YEARS}},
            {"row": "Rane et al. 2019, GRF (RMSE / r)", **{y: f"{PAPER_TABLE5[y][0]} / {PAPER_TABLE5[y][1]:.2f}" for y in YEARS}}]
    for protocol in PROTOCOLS:
        for name, label in ((first, "paper replica"), (res.chosen, "ours")):
            yt = res.years.get((name, protocol))
            if yt is None or (name == res.chosen and name == first and label == "ours"):
                continue
            n = len(res.settings.get("seeds", []))
            rows.append({"row": f"{label} {name} [{protocol}], {n} seeds: mean (SD) / r",
                         **{y: f"{yt.loc[y, 'rmse_mean']:.0f} ({yt.loc[y, 'rmse_sd']:.0f}) / {yt.loc[y, 'r_mean']:.2f}"
                            for y in YEARS if y in yt.index}})
            rows.append({"row": f"{label} {name} [{protocol}], ensemble of seeds: RMSE / r",
                         **{y: f"{yt.loc[y, 'rmse_ens']:.0f} / {yt.loc[y, 'r_ens']:.2f}" for y in YEARS if y in yt.index}})
    df = pd.DataFrame(rows).set_index("row")
    df.columns = [str(c) for c in df.columns]
    return df


def write_results(res: BenchmarkResult, out: str | Path, *, figures: bool = True) -> Path:
    """``table.md/.csv`` (the per-year comparison), ``ablation.md/.csv``, ``years.csv`` (every config x protocol
    x year), ``predictions.csv.gz`` (test and validation frames, column ``part``; a blend's validation
    predictions are its nested ones), ``settings.json`` (with the runtime), ``figures/gc_<year>.png``, and
    ``index.md`` with its self-contained twin ``index.html`` (the tables and figures on one page)."""
    from gaitforce.evaluate.report import markdown_table, write_html

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table = results_table(res)
    table.to_csv(out / "table.csv")
    (out / "table.md").write_text(markdown_table(table.reset_index()) + "\n")
    res.ablation.to_csv(out / "ablation.csv", index=False)
    show = res.ablation.copy()
    for c in ("val_rmse", "test_rmse_single", "test_rmse_ens", "seconds"):
        show[c] = show[c].round(0).astype(int)
    show["test_r_ens"] = show["test_r_ens"].round(2)
    (out / "ablation.md").write_text(markdown_table(show) + "\n")
    years = pd.concat([yt.assign(config=k[0], protocol=k[1]) for k, yt in res.years.items()])
    years.rename_axis("year").reset_index().to_csv(out / "years.csv", index=False)
    preds = [f.assign(config=k[0], protocol=k[1], part="test") for k, f in res.frames.items()]
    preds += [f.assign(config=k[0], protocol=k[1], part="val") for k, f in res.val_frames.items()]
    pd.concat(preds).to_csv(out / "predictions.csv.gz", index=False)
    (out / "settings.json").write_text(json.dumps({**res.settings, "chosen": res.chosen,
                                                   "runtime_s": round(res.runtime_s, 1)}, indent=1, default=str))
    figs = plot_years(res, out / "figures") if figures else []
    chosen = res.frames.get((res.chosen, PROTOCOLS[0]), pd.DataFrame(columns=["stance_id"]))
    n_stances = int(chosen["stance_id"].nunique())
    n_subjects = int(chosen["subject"].nunique()) if "subject" in chosen else "?"
    lines = ["# Knee Grand Challenge: each year predicted by models trained on the other years", "",
             f"Medial knee contact force; reference: in vivo implant (eTibia), {n_stances} test stances of "
             f"{n_subjects} subjects, one year (subject and session) per fold. Chosen by the lowest validation "
             f"RMSE: **{res.chosen}**. Runtime {res.runtime_s:.0f} s. With one subject a year, a difference in "
             "one year's RMSE rests on that subject's few stances; the years are not independent tests.", "",
             "## Per year", "", markdown_table(table.reset_index()), "",
             "## Ablation (validation chooses, test years reported)", "", markdown_table(show), ""]
    if figs:
        lines += ["## Figures", "", *[f"![{p.stem}: in vivo implant (solid) and {res.chosen} (dashed)]"
                                       f"(figures/{p.name})\n" for p in figs]]
    lines += ["## Files", "", "- [table.csv](table.csv), [ablation.csv](ablation.csv), [years.csv](years.csv)",
              "- [predictions.csv.gz](predictions.csv.gz), [settings.json](settings.json)", ""]
    (out / "index.md").write_text("\n".join(lines))
    write_html(out / "index.md")
    return out


def plot_years(res: BenchmarkResult, folder: str | Path, *, protocol: str = "paper") -> list[Path]:
    """One figure per year: measured (solid) and predicted (dashed, our chosen model's seed ensemble) medial
    force over stance for each test stance, with the year's RMSE of the winners, Rane et al. 2019 and ours."""
    from gaitforce._plot import subplots

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    f = res.frames[(res.chosen, protocol)]
    f = f[f["seed"] == "ensemble"]
    yt = res.years[(res.chosen, protocol)]
    paths = []
    for year, g in f.groupby("year"):
        year = int(year)
        fig, ax = subplots(figsize=(4.2, 3.0), dpi=90)
        for i, (sid, s) in enumerate(g.groupby("stance_id", sort=False)):
            c = f"C{i}"
            ax.plot(s["stance_pct"], s["true"], color=c, lw=1.4)
            ax.plot(s["stance_pct"], s["pred"], color=c, lw=1.2, ls="--")
        ax.set_xlabel("stance (%)")
        ax.set_ylabel("medial contact force (N)")
        ax.set_title(f"{year}: ours {yt.loc[year, 'rmse_ens']:.0f} N, winners {WINNERS.get(year, '?')}, "
                     f"Rane 2019 {PAPER_TABLE5.get(year, ('?',))[0]}", fontsize=8)
        ax.plot([], [], color="k", lw=1.4, label="in vivo implant")
        ax.plot([], [], color="k", lw=1.2, ls="--", label=f"{res.chosen}")
        ax.legend(fontsize=7, frameon=False)
        fig.tight_layout()
        p = folder / f"gc_{year}.png"
        fig.savefig(p)
        paths.append(p)
    return paths


__all__ = ["CONFIGS", "MOMENT_CONFIGS", "Config", "BenchmarkResult", "load_gc", "resample_stances", "add_window", "folds",
           "run_config", "run_benchmark", "blend_frames", "best_blend_weight", "results_table", "write_results", "stance_metrics", "year_table"]
