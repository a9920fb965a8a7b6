"""Ensembles with a calibrated per-frame interval: :class:`EnsembleEstimator`.

``EnsembleEstimator(model, members=5, **estimator_kwargs)`` trains ``members`` :class:`Estimator` s that differ
only in their seed (``seed``, ``seed + 1``, ...: weights, shuffling, noise), on the same data. Per frame the
prediction is the members' **mean** and the uncertainty their **spread** (population SD over members, in the
target's unit). :meth:`EnsembleEstimator.calibrate` turns the spread into a 90 % interval by split-conformal
calibration on stances none of the members trained on (:mod:`gaitforce.evaluate.conformal`: normalised scores
``|y - mean| / (spread + eps)``, stance-weighted quantile ``q`` at the finite-sample level); the interval is
``mean +- q x (spread + eps)``. ``eps`` is :data:`~gaitforce.evaluate.conformal.EPS_FRACTION` of the target's
training SD.

**Members that differ in what they saw** (``leave_out="year"``, or any stance column such as ``subject``): one
member per value of that column in the training stances, each trained without that group's stances (and with its
own seed): a grouped jackknife ensemble. The spread is then how much the prediction moves when one session or
subject is left out of training, the between-group variability a new group's error is made of, not seed noise.
``members`` is then the number of groups (at least 2). The members' mean is still what the bundle predicts and the
stack is still one ONNX graph. The interval stays split-conformal on stances none of the members trained on
(``val`` / ``calibration``): its guarantee is split-conformal's (exchangeable calibration and test stances), not
jackknife+'s; the CV+ interval (:func:`gaitforce.evaluate.conformal.cv_plus_interval`) needs each member's
out-of-group residuals and is measured by :func:`gaitforce.evaluate.intervals_gc.run_group_intervals`.

**Additive normalisation**: ``calibrate(cal, c=...)`` scores ``|y - mean| / (spread + c)``; ``c`` a number (N),
or ``"choose"``: the candidates of :func:`gaitforce.evaluate.conformal.score_candidates` of this form
(``c`` = eps and multiples of the calibration frames' median spread), chosen by leave-one-group-out interval
score over the calibration stances' ``leave_out`` groups (``group=`` names the column; calibration data only).
The bundle stores that ``c`` as the target's ``eps``, so every bundle reader applies it unchanged.

``fit(train, val)`` trains the members with early stopping on ``val`` and, unless ``calibrate=False``, calibrates
on the same ``val`` stances. Calibrating on the stances that chose each member's best epoch makes their scores
slightly optimistic (the members saw those stances' error, never their targets in a gradient step); give
``calibration=`` a separate set of stances for the strict split-conformal guarantee.

The bundle (:meth:`save`) holds **one ONNX graph with the members stacked** (:class:`EnsembleFolded`): raw features
(and the body weight for ``body_weight_norm``) in, ``targets`` (the mean) and ``spread`` out, so an ensemble runs
in one ONNX Runtime call, and a bundle reader that knows nothing of ensembles gets the mean from the usual
output. ``bundle.json`` records ``ensemble`` (members, seeds, spread definition, ``onnx.spread_output``) and
``uncertainty`` (alpha, q and eps per target, what calibrated it).
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from gaitforce.data.dataset import Dataset
from gaitforce.errors import GaitforceError
from gaitforce.evaluate import conformal
from gaitforce.learn.training import CollapseWarning, Estimator, _body_weight, save_fitted

#: a small ensemble: five members is where the spread's rank order settles in Lakshminarayanan et al. 2017
DEFAULT_MEMBERS = 5
SPREAD_OUTPUT = "spread"
SPREAD_DEFINITION = "population SD over members (ddof 0), target units"


class EnsembleFolded(nn.Module):
    """Member modules stacked: each maps (features[, body_weight]) -> (N, K); the ensemble gives (mean, spread),
    both (N, K), spread the members' population SD."""

    def __init__(self, members: Sequence[nn.Module], *, mean_only: bool = False):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.mean_only = bool(mean_only)

    def forward(self, x: torch.Tensor, body_weight: torch.Tensor | None = None):
        if body_weight is None:
            ys = torch.stack([m(x) for m in self.members], dim=0)
        else:
            ys = torch.stack([m(x, body_weight) for m in self.members], dim=0)
        mean = ys.mean(dim=0)
        if self.mean_only:
            return mean
        spread = torch.sqrt(((ys - mean) ** 2).mean(dim=0))
        return mean, spread


class EnsembleEstimator:
    """``members`` estimators of one configuration and different seeds; mean, spread and a calibrated interval.

    ``interval_alpha``: the interval's miscoverage (0.1: 90 %; not ``alpha``, which is ridge's penalty). Other
    keyword arguments go to every :class:`Estimator` (``seed`` is the first member's seed)."""

    def __init__(self, model: str = "paper-cnn", *, members: int = DEFAULT_MEMBERS,
                 interval_alpha: float = conformal.ALPHA, leave_out: str | None = None, **estimator_kwargs):
        if isinstance(members, bool) or not isinstance(members, int) or members < 2:
            raise GaitforceError(f"an ensemble needs at least 2 members, got {members!r}")
        if leave_out is not None and (not isinstance(leave_out, str) or not leave_out):
            raise GaitforceError(f"leave_out must name a stance column (e.g. 'year', 'subject'), got {leave_out!r}")
        self.leave_out = leave_out
        conformal._check_alpha(interval_alpha)
        self.model = model
        self.n_members = int(members)
        self.interval_alpha = float(interval_alpha)
        self.estimator_kwargs = dict(estimator_kwargs)
        self.seed = int(self.estimator_kwargs.pop("seed", 0))
        self._template = Estimator(model, seed=self.seed, **self.estimator_kwargs)  # checks the arguments now
        self.targets = self._template.targets
        self.feature_set = self._template.feature_set
        self.body_weight_norm = self._template.body_weight_norm

    # -- fit -------------------------------------------------------------------------------------------
    @property
    def seeds(self) -> list[int]:
        return [self.seed + i for i in range(self.n_members)]

    def fit(self, train: Dataset, val: Dataset | None = None, *, calibration: Dataset | None = None,
            calibrate: bool = True) -> "EnsembleEstimator":
        """Train the members on ``train`` (early stopping on ``val``), then calibrate the interval on
        ``calibration`` (default: ``val``) unless ``calibrate`` is False or there is no such set."""
        self.members_ = []
        reasons = []
        plan = [(s, train, None) for s in self.seeds]
        if self.leave_out is not None:
            plan = self._leave_out_plan(train)
        for s, data, left in plan:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", CollapseWarning)
                est = Estimator(self.model, seed=s, **self.estimator_kwargs).fit(data, val)
            self.members_.append(est)
            who = f"seed {s}" if left is None else f"without {self.leave_out} {left}"
            reasons += [f"{who}: {r}" for r in getattr(est, "collapsed_", [])]
        self.collapsed_ = reasons
        if reasons:
            warnings.warn(f"{self.model} ensemble members look collapsed: " + "; ".join(reasons), CollapseWarning,
                          stacklevel=2)
        first = self.members_[0]
        for name in ("columns_", "input_shape_", "target_units_", "force_inputs_", "x_mean_", "x_scale_",
                     "y_mean_", "y_scale_", "y_unit_scale_", "device_", "manifest_", "training_data_",
                     "feature_ranges_", "n_dropped_"):
            setattr(self, name, getattr(first, name))
        self.eps_ = np.asarray(conformal.EPS_FRACTION * np.asarray(first.y_unit_scale_, np.float64), np.float64)
        self.uncertainty_ = None
        cal = calibration if calibration is not None else val
        if calibrate and cal is not None and len(cal) > 0:
            self.calibrate(cal, on="validation" if calibration is None else "calibration")
        return self

    def _leave_out_plan(self, train: Dataset) -> list:
        """(seed, training data, left-out group) per member: one member per group of ``leave_out``."""
        st = train.stances()
        if self.leave_out not in st:
            raise GaitforceError(f"leave_out column {self.leave_out!r} is not a stance column of the training data "
                                 f"(known: {', '.join(c for c in st.columns if c not in ('stance_id', 'n_frames'))})")
        labels = list(pd.unique(st[self.leave_out]))
        if len(labels) < 2:
            raise GaitforceError(f"leaving one {self.leave_out} out needs at least 2 of them in the training data, "
                                 f"got {len(labels)}")
        self.n_members = len(labels)
        self.left_out_ = [_plain(v) for v in labels]
        self._member_seeds = [self.seed + i for i in range(len(labels))]
        return [(self.seed + i, train.subset(st.loc[st[self.leave_out] != v, "stance_id"]), v)
                for i, v in enumerate(labels)]

    @classmethod
    def from_members(cls, members: Sequence[Estimator], *,
                     interval_alpha: float = conformal.ALPHA) -> "EnsembleEstimator":
        """An ensemble of already fitted estimators of one configuration (same columns, targets and units)."""
        members = list(members)
        if len(members) < 2:
            raise GaitforceError(f"an ensemble needs at least 2 members, got {len(members)}")
        for m in members:
            m._check_fitted()
        first = members[0]
        if any(m.columns_ != first.columns_ or m.targets != first.targets or m.model != first.model
               or m.body_weight_norm != first.body_weight_norm for m in members):
            raise GaitforceError("ensemble members must share model, columns, targets and body-weight setting")
        params = first.get_params()
        model = params.pop("model")
        out = cls(model, members=len(members), interval_alpha=interval_alpha, **params)
        out.members_ = members
        out.seed = first.seed
        out._member_seeds = [m.seed for m in members]
        for name in ("columns_", "input_shape_", "target_units_", "force_inputs_", "x_mean_", "x_scale_",
                     "y_mean_", "y_scale_", "y_unit_scale_", "device_", "manifest_", "training_data_",
                     "feature_ranges_", "n_dropped_"):
            setattr(out, name, getattr(first, name))
        out.eps_ = np.asarray(conformal.EPS_FRACTION * np.asarray(first.y_unit_scale_, np.float64), np.float64)
        out.collapsed_ = []
        out.uncertainty_ = None
        return out

    def calibrate(self, cal: Dataset, *, on: str = "validation", c: float | str | None = None,
                  group: str | None = None) -> dict[str, Any]:
        """Split-conformal calibration on the stances of ``cal`` (never trained on): per target q, stored in
        ``uncertainty_`` (the bundle's ``uncertainty`` entry) and returned. ``c``: the additive term of the
        score ``|y - mean| / (spread + c)`` (default eps), a number in target units (one for all targets or one
        per target) or ``"choose"`` (see the module docstring; ``group`` the stance column whose groups are
        left out in turn, default ``leave_out``)."""
        self._check_fitted()
        mean, spread = self.predict_spread(cal)
        y = cal.frames[list(self.targets)].to_numpy(np.float64)
        groups = cal.frames["stance_id"].to_numpy()
        chosen = None
        if c is None:
            cs = np.asarray(self.eps_, np.float64)
        elif isinstance(c, str):
            if c != "choose":
                raise GaitforceError(f"c must be a number or 'choose', got {c!r}")
            column = group or self.leave_out
            if column is None or column not in cal.frames:
                raise GaitforceError("choosing c needs a group column of the calibration stances (group= or "
                                     "leave_out=)")
            folds = cal.frames[column].to_numpy()
            cs, chosen = [], []
            for k in range(len(self.targets)):
                ok = np.isfinite(y[:, k]) & np.isfinite(mean[:, k])
                cands = [d for d in conformal.score_candidates(mean[ok, k], spread[ok, k], float(self.eps_[k]))
                         if d["kind"] == "normalised"]
                best, _ = conformal.choose_score(y[ok, k], mean[ok, k], spread[ok, k], groups[ok], folds[ok], cands,
                                                 self.interval_alpha)
                cs.append(best["c"])
                chosen.append(best["name"])
            cs = np.asarray(cs, np.float64)
        else:
            cs = np.broadcast_to(np.asarray(c, np.float64), (len(self.targets),)).copy()
            if not (np.all(np.isfinite(cs)) and np.all(cs > 0)):
                raise GaitforceError(f"c must be positive and finite, got {c!r}")
        q = conformal.calibrate(y, mean, spread, cs, groups, self.interval_alpha)
        ok = np.isfinite(y).all(axis=1) & np.isfinite(mean).all(axis=1)
        self.uncertainty_ = conformal.calibration_entry(q, cs, self.targets, alpha=self.interval_alpha,
                                                        n_stances=len(set(groups[ok])), n_frames=int(ok.sum()), on=on)
        if c is not None:
            self.uncertainty_["method"] = ("split-conformal, normalised scores |y - mean| / (spread + c), c stored "
                                           "as eps, stance-weighted quantile")
            self.uncertainty_["c"] = ({"chosen": dict(zip(self.targets, chosen)),
                                       "by": f"leave-one-{group or self.leave_out}-out interval score on the "
                                             f"calibration stances"} if chosen else "given")
        return self.uncertainty_

    # -- use -------------------------------------------------------------------------------------------
    def _check_fitted(self):
        if not hasattr(self, "members_"):
            raise GaitforceError("the ensemble is not fitted yet (call fit first)")

    @property
    def member_seeds(self) -> list[int]:
        return list(getattr(self, "_member_seeds", None) or self.seeds)

    def predict_spread_features(self, x: np.ndarray, *, body_weight=None) -> tuple[np.ndarray, np.ndarray]:
        """(N, F) raw features -> (mean, spread), (N, K) each, in target units."""
        self._check_fitted()
        ys = np.stack([m.predict_features(x, body_weight=body_weight) for m in self.members_])
        return ys.mean(axis=0), ys.std(axis=0)

    def predict_spread(self, ds: Dataset) -> tuple[np.ndarray, np.ndarray]:
        bw = _body_weight(ds) if getattr(self, "force_inputs_", None) is not None else None
        return self.predict_spread_features(self.members_[0].features_of(ds), body_weight=bw)

    def predict_features(self, x: np.ndarray, *, body_weight=None) -> np.ndarray:
        return self.predict_spread_features(x, body_weight=body_weight)[0]

    def predict(self, ds: Dataset) -> np.ndarray:
        """The members' mean for every frame of ``ds``, (N, K) in target units."""
        return self.predict_spread(ds)[0]

    def features_of(self, ds: Dataset) -> np.ndarray:
        return self.members_[0].features_of(ds)

    def predict_interval(self, ds: Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(mean, lo, hi), (N, K) each: the calibrated interval (NaN where a target has no finite q)."""
        if self.uncertainty_ is None:
            raise GaitforceError("the ensemble is not calibrated (fit with a validation set, or call calibrate)")
        mean, spread = self.predict_spread(ds)
        q, eps = conformal.interval_params(self.uncertainty_, self.targets)
        lo, hi = conformal.interval(mean, spread, q, eps)
        return mean, lo, hi

    # -- bundle contract (what learn.export reads) ---------------------------------------------------------
    @property
    def nets_(self) -> list:
        return [n for m in self.members_ for n in m.nets_]

    @property
    def best_epoch_(self) -> list:
        return [e for m in self.members_ for e in m.best_epoch_]

    @property
    def val_rmse_(self) -> list:
        return [v for m in self.members_ for v in m.val_rmse_]

    def model_hyperparameters(self) -> dict[str, Any]:
        return self.members_[0].model_hyperparameters() if hasattr(self, "members_") else \
            self._template.model_hyperparameters()

    def training_parameters(self) -> dict[str, Any]:
        base = (self.members_[0] if hasattr(self, "members_") else self._template).training_parameters()
        out = {**base, "seed": self.member_seeds[0], "members": self.n_members, "member_seeds": self.member_seeds}
        if self.leave_out is not None:
            out["leave_out"] = self.leave_out
        return out

    def ensemble_spec(self) -> dict[str, Any]:
        """The bundle's ``ensemble`` entry."""
        spec = {"members": self.n_members, "seeds": self.member_seeds, "combine": "mean",
                "spread": SPREAD_DEFINITION,
                "best_epoch": [list(m.best_epoch_) for m in self.members_]}
        if getattr(self, "left_out_", None) is not None:
            spec["left_out"] = {"column": self.leave_out, "groups": list(self.left_out_),
                                "what": "member i trained without the stances of groups[i]"}
        return spec

    def folded_module(self) -> EnsembleFolded:
        self._check_fitted()
        return EnsembleFolded([m.folded_module() for m in self.members_]).eval()

    def mean_module(self) -> EnsembleFolded:
        """Raw features (N, F) -> the members' mean (N, K): what the gradient maps of
        :mod:`gaitforce.learn.explain` differentiate."""
        self._check_fitted()
        return EnsembleFolded([m.folded_module() for m in self.members_], mean_only=True).eval()

    def export_module(self) -> EnsembleFolded:
        self._check_fitted()
        return EnsembleFolded([m.export_module() for m in self.members_]).eval()

    def save(self, path, *, metrics: dict | None = None, dataset_manifest: dict | None = None,
             overwrite: bool = False):
        return save_fitted(self, path, metrics=metrics, dataset_manifest=dataset_manifest, overwrite=overwrite)

    def __repr__(self) -> str:
        state = "fitted" if hasattr(self, "members_") else "unfitted"
        cal = "" if getattr(self, "uncertainty_", None) is None else ", calibrated"
        return (f"EnsembleEstimator({self.model!r}, members={self.n_members}, feature_set={self.feature_set!r}, "
                f"targets={list(self.targets)}, {state}{cal})")


def _plain(v):
    """A JSON-friendly group label (numpy scalars to Python)."""
    return v.item() if hasattr(v, "item") else v


__all__ = ["DEFAULT_MEMBERS", "SPREAD_OUTPUT", "EnsembleFolded", "EnsembleEstimator"]
