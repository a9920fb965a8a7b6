"""Training the surrogate networks: :class:`Estimator`, a scikit-learn-like wrapper around a registered model.

What ``fit`` does, in order:

1. takes the feature columns of ``feature_set`` and the ``targets`` from the training :class:`Dataset`;
   rows with a non-finite feature or target are dropped (the count is kept in ``n_dropped_``; NaN is never
   imputed silently);
2. learns the input and target normalisation (mean, standard deviation; a constant column gets scale 1) on the
   training rows only;
3. trains one network for all targets (``multi_target=True``) or one per target, with an RMSE loss on the
   normalised targets, Adam with L2 weight decay, shuffled mini-batches drawn from full-batch tensors, and early
   stopping on the validation RMSE (``patience`` epochs), restoring the weights of the best epoch. A model with
   a closed form (``ridge``) is solved instead.

Everything is seeded: the same seed, data and thread count give identical predictions on the CPU. ``device``
is ``"auto"`` (CUDA when present, else CPU), ``"cpu"`` or ``"cuda"``. ``threads`` (default: at most 4) sets
``torch.set_num_threads`` for the duration of ``fit``/``predict`` only.

Predictions are in target units; a frame with a non-finite feature gets NaN.

Options beyond the paper:

- ``body_weight_norm=True``: force inputs (columns named ``grf_*``, in N; the knee moments in N m,
  ``knee_add_moment`` / ``knee_flex_moment``) and targets in N are divided by the
  frame's body weight (``mass`` x 9.81) before normalisation, so the network learns in body weights; predictions
  are multiplied back and stay in N. Frames without a positive finite mass are dropped from training, and get
  NaN at prediction. :meth:`Estimator.predict_features` then needs ``body_weight=`` (N). Its bundle's ONNX graph
  takes a second input ``body_weight`` (N, shape (batch, 1)) and does the division and multiplication inside
  (:class:`BodyWeightFolded`), so the bundle maps raw features in N to targets in N like any other.
- ``input_noise=s``: Gaussian noise of SD ``s`` (in normalised input units) added to each training batch
  (augmentation; 0 = off).

Training sanity: after ``fit`` with a validation set, :func:`collapse_reasons` lists why a trained network
looks collapsed (its validation predictions' SD under ``COLLAPSE_SD_RATIO`` (20 %) of the validation target's
SD, or its best epoch 1 or 2); ``collapsed_`` holds those reasons (empty: sane) and a :class:`CollapseWarning`
is issued. ``fit(..., snapshots=(e1, e2, ...))`` keeps the weights after those epochs (no early stopping is
implied); :meth:`Estimator.at_epoch` gives the estimator with them (nested selection picks epochs that way).

Why one module of ~670 lines: :class:`Estimator` is one contract (fit / predict / score / save, scikit-learn
style) and most of the module is that class; the folding wrappers and helpers around it exist only for it.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import sys
import warnings
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from gaitforce.constants import (
    G,  # standard gravity: body weight (N) = mass (kg) x G, one value for training and metrics
)
from gaitforce.data.dataset import Dataset
from gaitforce.errors import GaitforceError, MissingChannelError
from gaitforce.learn.models import check_hyperparameters, create_model, model_class, model_defaults

TRAINING_DEFAULTS: dict[str, Any] = {
    "epochs": 200,
    "batch_size": 256,
    "lr": 1e-3,
    "weight_decay": 1e-4,
    "patience": 20,
}

_PREDICT_CHUNK = 65536
#: a network whose validation predictions vary less than this share of the validation target's SD is collapsed
COLLAPSE_SD_RATIO = 0.2
#: a best (early-stopping) epoch at or below this is a collapse sign: the network stopped learning at once
COLLAPSE_MAX_BEST_EPOCH = 2


class CollapseWarning(UserWarning):
    """A trained network looks collapsed (near-constant predictions, or its best epoch was 1-2)."""


def collapse_reasons(pred: np.ndarray, true: np.ndarray, best_epoch: int | None, *,
                     targets: Sequence[str] = ("target",)) -> list[str]:
    """Why predictions ``pred`` of validation targets ``true`` ((N, K) each) look collapsed; [] when sane.

    Rules: per target, SD of the finite predictions < ``COLLAPSE_SD_RATIO`` x SD of the truth; and a
    ``best_epoch`` in 1..``COLLAPSE_MAX_BEST_EPOCH`` (``None`` or 0: no epoch rule, e.g. a closed-form model)."""
    pred = np.asarray(pred, np.float64).reshape(len(pred), -1)
    true = np.asarray(true, np.float64).reshape(len(true), -1)
    out = []
    for k, name in enumerate(targets):
        ok = np.isfinite(pred[:, k]) & np.isfinite(true[:, k])
        if ok.sum() < 2:
            continue
        sd_p, sd_t = float(np.std(pred[ok, k])), float(np.std(true[ok, k]))
        if sd_t > 0 and sd_p < COLLAPSE_SD_RATIO * sd_t:
            out.append(f"{name}: validation predictions' SD is {100 * sd_p / sd_t:.0f} % of the target's "
                       f"(< {100 * COLLAPSE_SD_RATIO:.0f} %): near-constant output")
    if best_epoch is not None and 1 <= int(best_epoch) <= COLLAPSE_MAX_BEST_EPOCH:
        out.append(f"best epoch {int(best_epoch)} (<= {COLLAPSE_MAX_BEST_EPOCH}): it stopped learning at once")
    return out



@contextlib.contextmanager
def torch_threads(n: int | None):
    """Run a block with ``torch.set_num_threads(n)``, restoring the previous count after."""
    if n is None:
        n = min(4, os.cpu_count() or 1)
    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def resolve_device(device: str) -> torch.device:
    """``"auto"`` (CUDA when present, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:<index>"`` -> a torch device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not (device == "cpu" or (isinstance(device, str) and re.fullmatch(r"cuda(:\d+)?", device))):
        raise GaitforceError(f"device must be auto, cpu, cuda or cuda:<index>, not {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise GaitforceError(f"device {device!r} asked for, but no CUDA device is available")
    return torch.device(device)


class FoldedModel(nn.Module):
    """Networks plus normalisation as one module: raw features (N, F) -> targets (N, K) in their units.

    This is what is exported to ONNX and what :meth:`Estimator.predict` runs, so both give the same numbers.
    """

    def __init__(self, nets: Sequence[nn.Module], x_mean, x_scale, y_mean, y_scale):
        super().__init__()
        self.nets = nn.ModuleList(nets)
        for name, value in (("x_mean", x_mean), ("x_scale", x_scale), ("y_mean", y_mean), ("y_scale", y_scale)):
            self.register_buffer(name, torch.as_tensor(np.asarray(value), dtype=torch.float32).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xn = (x - self.x_mean) / self.x_scale
        outs = [net(xn) for net in self.nets]
        y = outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)
        return y * self.y_scale + self.y_mean


class BodyWeightFolded(nn.Module):
    """A :class:`FoldedModel` of a ``body_weight_norm`` estimator with the body weight as a second input:
    (features (N, F) in their units, body_weight (N, 1) in N) -> targets (N, K) in their units.

    The force inputs (``x_bw``) are divided by the row's body weight before the folded network and the targets
    in N (``y_bw``) multiplied by it after, exactly as :meth:`Estimator.predict_features` does."""

    def __init__(self, folded: FoldedModel, x_bw, y_bw):
        super().__init__()
        self.folded = folded
        self.register_buffer("x_bw", torch.as_tensor(np.asarray(x_bw, dtype=bool)).clone())
        self.register_buffer("y_bw", torch.as_tensor(np.asarray(y_bw, dtype=bool)).clone())

    def forward(self, x: torch.Tensor, body_weight: torch.Tensor) -> torch.Tensor:
        bw = body_weight.reshape(-1, 1)
        one = torch.ones_like(bw)
        y = self.folded(x / torch.where(self.x_bw, bw, one))
        return y * torch.where(self.y_bw, bw, one)


def _scale(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = values.mean(axis=0)
    std = values.std(axis=0)
    std = np.where(std > 1e-8 * np.maximum(1.0, np.abs(mean)), std, 1.0)
    return mean.astype(np.float32), std.astype(np.float32)


def _rmse(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    return torch.sqrt(torch.mean((pred - true) ** 2) + 1e-12)


def _check_positive(**values) -> None:
    for name, value in values.items():
        if not (isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0):
            raise GaitforceError(f"{name} must be positive, got {value!r}")


def _check_counts(**values) -> None:
    """Positive whole numbers (a float such as 2.5 would otherwise be truncated silently)."""
    _check_positive(**values)
    for name, value in values.items():
        if value != int(value):
            raise GaitforceError(f"{name} must be a whole number, got {value!r}")


def save_fitted(est, path, *, metrics: dict | None = None, dataset_manifest: dict | None = None,
                overwrite: bool = False):
    """The bundle of a fitted estimator (one network or an ensemble): its own dataset manifest unless one is given."""
    from gaitforce.learn.export import save_bundle

    est._check_fitted()
    manifest = est.manifest_ if dataset_manifest is None else dataset_manifest
    return save_bundle(est, path, dataset_manifest=manifest, metrics=metrics, overwrite=overwrite)


class Estimator:
    """A surrogate network with its normalisation, trained on a :class:`Dataset`.

    ``model`` is a registered architecture (see :func:`gaitforce.learn.models.list_models`); unknown keyword arguments
    are that model's hyperparameters (e.g. ``conv_layers=3`` for ``paper-cnn``). Learned state ends in ``_``.
    """

    def __init__(
        self,
        model: str = "paper-cnn",
        *,
        feature_set: str = "all",
        targets: Sequence[str] = ("knee_medial",),
        multi_target: bool = True,
        seed: int = 0,
        epochs: int = TRAINING_DEFAULTS["epochs"],
        batch_size: int = TRAINING_DEFAULTS["batch_size"],
        lr: float = TRAINING_DEFAULTS["lr"],
        weight_decay: float = TRAINING_DEFAULTS["weight_decay"],
        patience: int = TRAINING_DEFAULTS["patience"],
        device: str = "auto",
        threads: int | None = None,
        verbose: bool = True,
        body_weight_norm: bool = False,
        input_noise: float = 0.0,
        **hyperparameters,
    ):
        model_class(model)  # unknown name -> GaitforceError now, not after loading data
        check_hyperparameters(model, hyperparameters)  # unknown or impossible (layers=-3) -> one line now
        if isinstance(targets, str):
            targets = (targets,)
        if not targets:
            raise GaitforceError("no targets given")
        _check_counts(epochs=epochs, batch_size=batch_size, patience=patience)
        _check_positive(lr=lr)
        if not (isinstance(weight_decay, (int, float)) and weight_decay >= 0):
            raise GaitforceError(f"weight_decay must be >= 0, got {weight_decay!r}")
        if threads is not None and int(threads) < 1:
            raise GaitforceError(f"threads must be >= 1, got {threads}")
        if not (isinstance(input_noise, (int, float)) and input_noise >= 0):
            raise GaitforceError(f"input_noise must be >= 0, got {input_noise!r}")
        self.model = model
        self.feature_set = feature_set
        self.targets = tuple(targets)
        self.multi_target = bool(multi_target)
        self.seed = int(seed)
        self.epochs = int(epochs)
        self.batch_size = int(batch_size)
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.patience = int(patience)
        self.device = device
        self.threads = threads
        self.verbose = verbose
        self.body_weight_norm = bool(body_weight_norm)
        self.input_noise = float(input_noise)
        self.hyperparameters = dict(hyperparameters)

    # -- parameters ------------------------------------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        """The constructor arguments, so ``Estimator(**est.get_params())`` is an unfitted copy."""
        return {
            "model": self.model,
            "feature_set": self.feature_set,
            "targets": self.targets,
            "multi_target": self.multi_target,
            "seed": self.seed,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "patience": self.patience,
            "device": self.device,
            "threads": self.threads,
            "verbose": self.verbose,
            "body_weight_norm": self.body_weight_norm,
            "input_noise": self.input_noise,
            **self.hyperparameters,
        }

    def model_hyperparameters(self) -> dict[str, Any]:
        """The model's hyperparameters with defaults filled in."""
        return {**model_defaults(self.model), **self.hyperparameters}

    def training_parameters(self) -> dict[str, Any]:
        return {
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "patience": self.patience,
            "loss": "rmse",
            "optimizer": "adam",
            "multi_target": self.multi_target,
            "seed": self.seed,
            "body_weight_norm": self.body_weight_norm,
            "input_noise": self.input_noise,
        }

    # -- data ------------------------------------------------------------------------------------------
    def _columns(self, ds: Dataset) -> list[str]:
        return ds.feature_columns(self.feature_set)

    def _xy(self, ds: Dataset) -> tuple[np.ndarray, np.ndarray, int]:
        x, y, dropped, _ = self._xy_units(ds)
        return x, y, dropped

    def _xy_units(self, ds: Dataset) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
        """Usable rows: network inputs, network targets (in BW under ``body_weight_norm``), the number of rows
        dropped, and the targets of the kept rows in their own units."""
        x, y, _ = ds.arrays(self.feature_set, list(self.targets))
        y_units = y
        if self.body_weight_norm:
            bw = _body_weight(ds)
            x = x / np.where(self._force_inputs(self._columns(ds)), bw[:, None], 1.0).astype(np.float32)
            units = [str(ds.targets.get(t, "")) for t in self.targets]
            y = y / np.where(np.array([u == "N" for u in units]), bw[:, None], 1.0).astype(np.float32)
        keep = np.isfinite(x).all(axis=1) & np.isfinite(y).all(axis=1)
        return x[keep], y[keep], int((~keep).sum()), y_units[keep]

    @staticmethod
    def _force_inputs(columns: Sequence[str]) -> np.ndarray:
        """Which input columns are forces in N or knee moments in N m (``grf_*``, :data:`features.BW_SCALED_MOMENTS`,
        also as window columns ``<col>@-k``): scaled by body weight under ``body_weight_norm``."""
        from gaitforce.data.features import BW_SCALED_MOMENTS

        return np.array([str(c).startswith("grf_") or str(c).split("@")[0] in BW_SCALED_MOMENTS for c in columns],
                        dtype=bool)

    # -- fit -------------------------------------------------------------------------------------------
    def fit(self, train: Dataset, val: Dataset | None = None, *, snapshots: Sequence[int] = ()) -> "Estimator":
        """Learn normalisation and weights on ``train``; ``val`` drives early stopping (none: all epochs).

        ``snapshots``: epochs after which the weights are kept (:meth:`at_epoch`); with them, give no ``val``
        (or a large ``patience``) so training reaches the last one. After a fit with ``val``, ``collapsed_``
        lists collapse signs (:func:`collapse_reasons`) and a :class:`CollapseWarning` is issued for them."""
        self._snapshot_epochs = tuple(sorted({int(e) for e in snapshots}))
        self.snapshots_: list[dict] = []
        cls = model_class(self.model)
        kind = getattr(cls, "input_kind", "frame")
        if kind != "frame":
            raise GaitforceError(f"model {self.model!r} takes {kind!r} input, which this Estimator cannot feed yet")
        x, y, dropped, y_units = self._xy_units(train)
        if len(x) < 2:
            raise GaitforceError(f"training set has {len(x)} usable frames", source=train.path)
        has_val = val is not None and len(val) > 0
        xv, yv, dropped_val = self._xy(val) if has_val else (None, None, 0)
        if has_val and len(xv) == 0:
            has_val = False

        self.columns_ = self._columns(train)
        self.input_shape_ = tuple(int(v) for v in train.feature_shape(self.feature_set))
        self.target_units_ = [str(train.targets.get(t, "")) for t in self.targets]
        self.force_inputs_ = self._force_inputs(self.columns_) if self.body_weight_norm else None
        self.n_dropped_ = {"train": dropped, "val": dropped_val}
        self.x_mean_, self.x_scale_ = _scale(x)
        self.y_mean_, self.y_scale_ = _scale(y)
        # the targets' training SD in their own units (N, not BW, under body_weight_norm): the sweep's yardstick
        self.y_unit_scale_ = _scale(np.asarray(y_units, dtype=np.float64))[1]
        self.device_ = resolve_device(self.device)
        self.manifest_ = dict(train.manifest)
        self.training_data_ = _summary(train, val if has_val else None)
        # per input column, [min, max] over the training frames as the file gives them (before any body-weight
        # normalisation): bundles store it and predict/stream flag stances that leave it
        raw = train.frames[self.columns_].to_numpy(np.float64)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            lo, hi = np.nanmin(raw, axis=0), np.nanmax(raw, axis=0)
        self.feature_ranges_ = {c: [float(a), float(b)] for c, a, b in zip(self.columns_, lo, hi)
                                if np.isfinite(a) and np.isfinite(b)}

        xn = (x - self.x_mean_) / self.x_scale_
        yn = (y - self.y_mean_) / self.y_scale_
        xvn = (xv - self.x_mean_) / self.x_scale_ if has_val else None
        yvn = (yv - self.y_mean_) / self.y_scale_ if has_val else None

        groups = [list(range(len(self.targets)))] if self.multi_target else [[k] for k in range(len(self.targets))]
        self.nets_, self.history_, self.best_epoch_, self.val_rmse_ = [], [], [], []
        with torch_threads(self.threads):
            for gi, cols in enumerate(groups):
                torch.manual_seed(self.seed + gi)
                net = create_model(self.model, n_features=x.shape[1], n_targets=len(cols),
                                   input_shape=self.input_shape_, **self.hyperparameters)
                label = "+".join(self.targets[c] for c in cols)
                if hasattr(net, "fit_closed_form"):
                    net.fit_closed_form(xn, yn[:, cols], xvn, None if yvn is None else yvn[:, cols])
                    hist, best_epoch, best = [], 0, math.nan
                    if has_val:
                        best = self._eval_rmse(net.to(self.device_), xvn, yvn[:, cols])
                else:
                    hist, best_epoch, best = self._train_net(net, xn, yn[:, cols], xvn,
                                                             None if yvn is None else yvn[:, cols], gi, label)
                net.eval()
                self.nets_.append(net)
                self.history_.append(hist)
                self.best_epoch_.append(best_epoch)
                self.val_rmse_.append(best)
        self.collapsed_ = []
        if has_val:
            pv = self.predict(val)
            tv = val.frames[list(self.targets)].to_numpy(np.float64)
            trained = [e for e, h in zip(self.best_epoch_, self.history_) if h]
            self.collapsed_ = collapse_reasons(pv, tv, min(trained) if trained else None, targets=self.targets)
            if self.collapsed_:
                warnings.warn(f"{self.model} looks collapsed: " + "; ".join(self.collapsed_), CollapseWarning,
                              stacklevel=2)
        return self

    def at_epoch(self, epoch: int) -> "Estimator":
        """A copy of this estimator whose networks hold the weights kept after ``epoch`` (``fit(snapshots=)``)."""
        import copy

        self._check_fitted()
        if not self.snapshots_ or any(epoch not in snap for snap in self.snapshots_):
            kept = sorted(self.snapshots_[0]) if self.snapshots_ else []
            raise GaitforceError(f"no weights kept after epoch {epoch} (kept: {kept})")
        out = copy.copy(self)
        out.nets_ = []
        for net, snap in zip(self.nets_, self.snapshots_):
            twin = copy.deepcopy(net)
            twin.load_state_dict(snap[epoch])
            twin.eval()
            out.nets_.append(twin)
        return out

    def _eval_rmse(self, net: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
        """RMSE over all rows and targets, evaluated in chunks so a large validation set fits in memory."""
        net.eval()
        with torch.no_grad():
            xt = torch.as_tensor(x, device=self.device_)
            yt = torch.as_tensor(y, device=self.device_)
            sq = sum(float(((net(xt[i : i + _PREDICT_CHUNK]) - yt[i : i + _PREDICT_CHUNK]) ** 2).sum())
                     for i in range(0, len(xt), _PREDICT_CHUNK))
            return math.sqrt(sq / max(yt.numel(), 1) + 1e-12)

    def _train_net(self, net, x, y, xv, yv, index: int, label: str):
        dev = self.device_
        net.to(dev)
        gen = torch.Generator().manual_seed(self.seed + 1000 * index)
        opt = torch.optim.Adam(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        xt, yt = torch.as_tensor(x, device=dev), torch.as_tensor(y, device=dev)
        has_val = xv is not None
        if has_val:
            xvt, yvt = torch.as_tensor(xv, device=dev), torch.as_tensor(yv, device=dev)
        n, bs = len(xt), max(2, min(self.batch_size, len(xt)))
        best, best_epoch, best_state, bad = math.inf, 0, None, 0
        history = []
        snaps: dict[int, dict] = {}
        self.snapshots_.append(snaps)
        bar = _progress(self.epochs, f"{self.model} [{label}]", self.verbose)
        for epoch in range(1, self.epochs + 1):
            net.train()
            perm = torch.randperm(n, generator=gen).to(dev)
            total, count = 0.0, 0
            for i in range(0, n, bs):
                idx = perm[i : i + bs]
                if len(idx) < 2:  # batch norm cannot train on one row
                    continue
                xb = xt[idx]
                if self.input_noise > 0:
                    noise = torch.randn(xb.shape, generator=gen).to(dev)
                    xb = xb + self.input_noise * noise
                loss = _rmse(net(xb), yt[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach()) ** 2 * len(idx)
                count += len(idx)
            train_rmse = math.sqrt(total / max(count, 1))
            row = {"epoch": epoch, "train_rmse": train_rmse}
            if not math.isfinite(train_rmse):  # diverged: NaN/inf weights never become the model
                history.append({**row, "diverged": True})
                bar.close(best_epoch, best)
                if best_state is None:
                    raise GaitforceError(
                        f"{self.model} [{label}] diverged at epoch {epoch} (training RMSE not finite) before any "
                        f"finite validation score; lower the learning rate (lr={self.lr:g})")
                net.load_state_dict(best_state)
                return history, best_epoch, best
            if has_val:
                val_rmse = self._eval_rmse(net, xvt, yvt)
                row["val_rmse"] = val_rmse
                if val_rmse < best:
                    best, best_epoch, bad = val_rmse, epoch, 0
                    best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
                else:
                    bad += 1
            history.append(row)
            bar.update(row)
            if epoch in self._snapshot_epochs:
                snaps[epoch] = {k: v.detach().clone() for k, v in net.state_dict().items()}
            if has_val and bad >= self.patience:
                break
        bar.close(best_epoch, best)
        if best_state is not None:
            net.load_state_dict(best_state)
        else:
            best_epoch = len(history)
        return history, best_epoch, best

    # -- use -------------------------------------------------------------------------------------------
    def _check_fitted(self):
        if not hasattr(self, "nets_"):
            raise GaitforceError("the estimator is not fitted yet (call fit first)")

    def folded_module(self) -> FoldedModel:
        """Networks + normalisation as one CPU module in eval mode (what ONNX export takes)."""
        self._check_fitted()
        nets = [net.cpu().eval() for net in self.nets_]
        return FoldedModel(nets, self.x_mean_, self.x_scale_, self.y_mean_, self.y_scale_).eval()

    def export_module(self) -> nn.Module:
        """What a bundle's ONNX graph is exported from: :meth:`folded_module`, wrapped in
        :class:`BodyWeightFolded` (a second input, the body weight in N) under ``body_weight_norm``."""
        folded = self.folded_module()
        if getattr(self, "force_inputs_", None) is None:
            return folded
        per_target = np.array([u == "N" for u in self.target_units_], dtype=bool)
        return BodyWeightFolded(folded, self.force_inputs_, per_target).eval()

    def predict_features(self, x: np.ndarray, *, body_weight=None) -> np.ndarray:
        """(N, F) raw features in ``columns_`` order -> (N, K) predictions in target units (float64).

        ``body_weight`` (N; a scalar or one per row) is required by a ``body_weight_norm`` estimator and
        ignored otherwise."""
        self._check_fitted()
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != len(self.columns_):
            raise GaitforceError(f"features must be (N, {len(self.columns_)}), got {x.shape}")
        if getattr(self, "force_inputs_", None) is not None:
            if body_weight is None:
                raise GaitforceError("this estimator was trained on body-weight-normalised data: give body_weight (N)")
            bw = np.broadcast_to(np.asarray(body_weight, dtype=np.float64), (len(x),))
            bw = np.where(np.isfinite(bw) & (bw > 0), bw, np.nan)
            x = (x / np.where(self.force_inputs_, bw[:, None], 1.0)).astype(np.float32)
            y = self._predict_normalised(x)
            per_target = np.array([u == "N" for u in self.target_units_])
            return y * np.where(per_target, bw[:, None], 1.0)
        return self._predict_normalised(x)

    def _predict_normalised(self, x: np.ndarray) -> np.ndarray:
        out = np.full((len(x), len(self.targets)), np.nan)
        ok = np.isfinite(x).all(axis=1)
        folded = FoldedModel(self.nets_, self.x_mean_, self.x_scale_, self.y_mean_, self.y_scale_)
        folded.to(self.device_).eval()
        rows = np.flatnonzero(ok)
        with torch_threads(self.threads), torch.no_grad():
            for i in range(0, len(rows), _PREDICT_CHUNK):
                sel = rows[i : i + _PREDICT_CHUNK]
                xt = torch.as_tensor(x[sel], device=self.device_)
                out[sel] = folded(xt).cpu().numpy()
        return out

    def features_of(self, ds: Dataset) -> np.ndarray:
        """The (N, F) feature matrix of ``ds`` in this estimator's column order."""
        self._check_fitted()
        missing = [c for c in self.columns_ if c not in ds.frames]
        if missing:
            raise MissingChannelError(f"dataset lacks feature columns {missing[:5]}", source=ds.path)
        return ds.frames[self.columns_].to_numpy(np.float32)

    def predict(self, ds: Dataset) -> np.ndarray:
        """Predictions for every frame of ``ds``, (N, K) in target units."""
        bw = _body_weight(ds) if getattr(self, "force_inputs_", None) is not None else None
        return self.predict_features(self.features_of(ds), body_weight=bw)

    def score(self, ds: Dataset) -> dict[str, dict[str, float]]:
        """Per target: RMSE (target unit), Pearson r and frame count over the frames of ``ds`` with a finite
        prediction and truth."""
        pred = self.predict(ds)
        out = {}
        for k, name in enumerate(self.targets):
            if name not in ds.frames:
                raise MissingChannelError(f"dataset has no target {name!r}", source=ds.path)
            true = ds.frames[name].to_numpy(np.float64)
            ok = np.isfinite(true) & np.isfinite(pred[:, k])
            err = pred[ok, k] - true[ok]
            r = float(np.corrcoef(pred[ok, k], true[ok])[0, 1]) if ok.sum() > 1 else math.nan
            out[name] = {"rmse": float(np.sqrt(np.mean(err**2))) if ok.any() else math.nan, "r": r,
                         "n_frames": int(ok.sum()), "unit": self.target_units_[k]}
        return out

    def save(self, path, *, metrics: dict | None = None, dataset_manifest: dict | None = None,
             overwrite: bool = False):
        """Write a model bundle (``model.onnx`` + ``bundle.json``); see :func:`gaitforce.learn.export.save_bundle`."""
        return save_fitted(self, path, metrics=metrics, dataset_manifest=dataset_manifest, overwrite=overwrite)

    def __repr__(self) -> str:
        state = "fitted" if hasattr(self, "nets_") else "unfitted"
        return f"Estimator({self.model!r}, feature_set={self.feature_set!r}, targets={list(self.targets)}, {state})"


def _body_weight(ds: Dataset) -> np.ndarray:
    """Body weight (N) per frame from the ``mass`` column (kg); NaN where the mass is missing or not positive."""
    m = ds.frames["mass"].to_numpy(np.float64)
    return np.where(np.isfinite(m) & (m > 0), m * G, np.nan)


def _summary(train: Dataset, val: Dataset | None) -> dict[str, Any]:
    """Who and what the model was trained on (recorded in bundles)."""
    frames = train.frames
    out = {
        "subjects": sorted(str(s) for s in pd.unique(frames["subject"])),
        "stances": int(frames["stance_id"].nunique()),
        "frames": int(len(frames)),
        "sources": _training_sources(train),
        "sample_rate": _sample_rate(frames),
        "sample_rates": _stance_rates(frames),
    }
    if val is not None:
        out["validation"] = {
            "subjects": sorted(str(s) for s in pd.unique(val.frames["subject"])),
            "stances": int(val.frames["stance_id"].nunique()),
            "frames": int(len(val.frames)),
        }
    return out


def _training_sources(train: Dataset) -> list:
    """The manifest's source entries (path, sha256, marker map) of the trials in ``train``."""
    trials = set(map(str, pd.unique(train.frames["trial"])))
    out = []
    for src in train.manifest.get("sources", []) or []:
        if isinstance(src, dict):
            name = os.path.basename(str(src.get("path", "")))
            if {src.get("trial"), name, os.path.splitext(name)[0]} & trials:
                out.append({k: src[k] for k in ("path", "sha256", "stances", "marker_map") if k in src})
        elif {os.path.basename(str(src)), os.path.splitext(os.path.basename(str(src)))[0]} & trials:
            out.append(str(src))
    return out


def _stance_rates(frames: pd.DataFrame) -> list[float]:
    """The distinct frame rates (Hz, 2 decimals) of the stances: a dataset may mix labs' rates."""
    dt = frames.groupby("stance_id", sort=False)["time"].diff()
    per = dt[dt > 0].groupby(frames["stance_id"], sort=False).median()
    return sorted({round(float(1.0 / v), 2) for v in per.to_numpy(np.float64) if np.isfinite(v) and v > 0})


def _sample_rate(frames: pd.DataFrame) -> float | None:
    """Frame rate of the stances (Hz) from the median time step within each stance, or None."""
    dt = frames.groupby("stance_id", sort=False)["time"].diff().to_numpy(np.float64)
    dt = dt[np.isfinite(dt) & (dt > 0)]
    return float(round(1.0 / np.median(dt), 6)) if dt.size else None


class _progress:
    """A per-epoch progress line (tqdm on a terminal, a line every 10 epochs otherwise); silent if quiet."""

    def __init__(self, total: int, desc: str, verbose: bool):
        self.verbose, self.desc, self.bar = verbose, desc, None
        if verbose and sys.stderr.isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="epoch", leave=False)

    def update(self, row: dict):
        if not self.verbose:
            return
        text = f"train {row['train_rmse']:.4f}" + (f" val {row['val_rmse']:.4f}" if "val_rmse" in row else "")
        if self.bar is not None:
            self.bar.set_postfix_str(text, refresh=False)
            self.bar.update(1)
        elif row["epoch"] % 10 == 0 or row["epoch"] == 1:
            print(f"{self.desc} epoch {row['epoch']}: rmse (normalised) {text}", file=sys.stderr, flush=True)

    def close(self, best_epoch: int, best: float):
        if self.bar is not None:
            self.bar.close()
        if self.verbose and math.isfinite(best):
            print(f"{self.desc}: best epoch {best_epoch}, validation rmse (normalised) {best:.4f}",
                  file=sys.stderr, flush=True)
