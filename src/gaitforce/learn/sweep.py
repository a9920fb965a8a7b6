"""Hyperparameter search: seeded Optuna random search, objective = validation RMSE.

``sweep(train, val, model="paper-cnn", n_trials=20, seed=0)`` draws ``n_trials`` settings with Optuna's
:class:`~optuna.samplers.RandomSampler` (seeded, so the same seed draws the same settings) from the bounds in
:data:`SPACES`, trains an :class:`~gaitforce.learn.training.Estimator` for each and scores it by the validation RMSE
in the targets' own units (the mean over targets of each target's RMSE divided by its training standard
deviation in the same unit, so targets in N and in 1 weigh alike, and a ``body_weight_norm`` sweep scores in N
like any other; see :func:`validation_score`). It returns the best parameters and a table of all trials.

Bounds (per architecture; training parameters are shared):

======================  ==========================================  =================================
parameter               range                                        distribution
======================  ==========================================  =================================
``lr``                  1e-4 .. 1e-2                                 log-uniform
``weight_decay``        1e-6 .. 1e-2                                 log-uniform
``batch_size``          64, 128, 256, 512                            categorical
``conv_layers``         1 .. 4 (paper-cnn)                           integer
``channels``            8, 16, 32, 64 (paper-cnn)                    categorical
``fc_layers``           0 .. 3 (paper-cnn)                           integer
``fc_width``            32, 64, 128, 256 (paper-cnn)                 categorical
``layers``/``width``    1 .. 4 / 32 .. 512 (mlp)                     integer / categorical
======================  ==========================================  =================================

``ridge`` has nothing to search (its penalty is already chosen on the validation set).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd

from gaitforce.data.dataset import Dataset
from gaitforce.errors import GaitforceError
from gaitforce.learn.training import Estimator

#: name -> ("log", lo, hi) | ("int", lo, hi) | ("cat", choices)
TRAINING_SPACE: dict[str, tuple] = {
    "lr": ("log", 1e-4, 1e-2),
    "weight_decay": ("log", 1e-6, 1e-2),
    "batch_size": ("cat", (64, 128, 256, 512)),
}
SPACES: dict[str, dict[str, tuple]] = {
    "paper-cnn": {
        **TRAINING_SPACE,
        "conv_layers": ("int", 1, 4),
        "channels": ("cat", (8, 16, 32, 64)),
        "fc_layers": ("int", 0, 3),
        "fc_width": ("cat", (32, 64, 128, 256)),
    },
    "mlp": {**TRAINING_SPACE, "layers": ("int", 1, 4), "width": ("cat", (32, 64, 128, 256, 512))},
}


@dataclass
class SweepResult:
    best_params: dict[str, Any]
    best_value: float
    trials: pd.DataFrame
    best_estimator: Estimator | None = None


def _suggest(trial, space: dict[str, tuple]) -> dict[str, Any]:
    params = {}
    for name, spec in space.items():
        kind = spec[0]
        if kind == "log":
            params[name] = trial.suggest_float(name, spec[1], spec[2], log=True)
        elif kind == "float":
            params[name] = trial.suggest_float(name, spec[1], spec[2])
        elif kind == "int":
            params[name] = trial.suggest_int(name, spec[1], spec[2])
        elif kind == "cat":
            params[name] = trial.suggest_categorical(name, list(spec[1]))
        else:
            raise ValueError(f"unknown distribution {kind!r} for {name}")
    return params


def validation_score(est: Estimator, val: Dataset) -> float:
    """Mean over targets of the validation RMSE divided by the target's training standard deviation, both in
    the target's own units (N for a force also under ``body_weight_norm``, whose network learns in body
    weights: its ``y_scale_`` is in BW and is not the yardstick), so a score means the same with and without
    body-weight normalisation."""
    scores = est.score(val)
    scale = getattr(est, "y_unit_scale_", est.y_scale_)
    vals = [scores[t]["rmse"] / float(scale[k]) for k, t in enumerate(est.targets)]
    return float(np.mean(vals))


def sweep(
    train: Dataset,
    val: Dataset,
    *,
    model: str = "paper-cnn",
    n_trials: int = 20,
    seed: int = 0,
    space: dict[str, tuple] | None = None,
    keep_best: bool = True,
    progress: Callable[[str], None] | None = None,
    **estimator_kw,
) -> SweepResult:
    """Random search over ``space`` (default :data:`SPACES[model]`); see the module docstring."""
    import optuna

    if val is None or len(val) == 0:
        raise GaitforceError("a sweep needs a validation set (its objective is the validation RMSE)")
    space = SPACES.get(model) if space is None else space
    if not space:
        raise GaitforceError(f"no search space for model {model!r} (sweepable: {', '.join(SPACES)})")
    if n_trials < 1:
        raise GaitforceError("n_trials must be at least 1")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.RandomSampler(seed=seed))
    best: dict[str, Any] = {"value": math.inf, "est": None}
    rows = []

    def objective(trial) -> float:
        params = _suggest(trial, space)
        t0 = time.perf_counter()
        est = Estimator(model, seed=seed, **{**estimator_kw, **params}).fit(train, val)
        value = validation_score(est, val)
        rows.append({"trial": trial.number, **params, "val_score": value,
                     "best_epoch": max(est.best_epoch_), "seconds": round(time.perf_counter() - t0, 2)})
        if value < best["value"] and keep_best:
            best.update(value=value, est=est)
        if progress:
            progress(f"sweep trial {trial.number + 1}/{n_trials}: {params} -> {value:.4f}")
        return value

    study.optimize(objective, n_trials=n_trials, catch=())
    return SweepResult(best_params=dict(study.best_params), best_value=float(study.best_value),
                       trials=pd.DataFrame(rows), best_estimator=best["est"])
