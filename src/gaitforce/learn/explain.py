"""Network interrogation: which inputs drive a predicted force, and when in stance (the paper's Fig. 6).

:func:`explain` takes a trained model (a :class:`~gaitforce.learn.bundle.Bundle`, a fitted
:class:`~gaitforce.learn.training.Estimator`, or a torch module with its column names) and a
:class:`~gaitforce.data.dataset.Dataset`, and returns an :class:`Explanation` holding two maps of
features x % stance, both in the target's unit (e.g. N):

**Sensitivity map** (the paper's method). For every frame of every stance, the partial derivative of the
output with respect to each input, ``g[f] = dy/dx_f``. Each stance's gradient curves are resampled by linear
interpolation on ``stance_pct`` to ``points`` stance points (default 101: 0, 1, ..., 100 %), averaged over
stances, and multiplied at each point by the standard deviation across stances (``ddof=1``) of that feature,
itself resampled the same way::

    S[f, p] = mean_t g_t[f, p] * SD_t x_t[f, p]

It reads: "a one-SD change of this input at this point of stance moves the prediction by S".

**Integrated-gradients map** (Captum's :class:`~captum.attr.IntegratedGradients`, Gauss-Legendre, ``ig_steps``
points). Each stance's features are resampled to the stance points; the baseline at point ``p`` is the mean
stance (the mean over stances of the features at ``p``), so IG attributes each stance's departure from the
mean stance, ``y(x_t) - y(x_mean)``, to the inputs (completeness: the attributions sum to it; the largest
miss is reported as ``ig_delta``). Signed attributions averaged over stances would cancel (departures from a
mean sum to zero), so the map projects them on each feature's standardised departure::

    I[f, p] = sum_t A_t[f, p] * (x_t[f, p] - mean_t x[f, p]) / ((T - 1) * SD_t x[f, p])

Since ``A_t[f] = (x_t[f] - mean[f]) * gbar_t[f]`` with ``gbar`` IG's gradient averaged along the straight path
from the mean stance to stance ``t``, ``I`` is the sensitivity map with each stance's local gradient replaced by
the path-averaged gradient, stances weighted by their squared departure. For a linear model both maps equal
``w[f] * SD[f, p]`` exactly; where the network is curved over the range the stances span, ``I`` is the more
faithful of the two (it integrates over that range instead of probing one point). A feature constant across
stances at a point (SD = 0) gets 0 there in both maps.

Gradients: a torch model (Estimator, module) uses autograd. A bundle that holds its network's weights
(``model.safetensors``, hashed in ``bundle.json``; see :func:`bundle_module`) is rebuilt from its registered
architecture and also uses autograd (exact), after checking that the rebuilt network reproduces ``model.onnx``.
A bundle without weights (or ``gradients="fd"``) uses **central finite differences** in ONNX Runtime: step
``h_f = fd_step * SD_f`` (``SD_f`` the standard deviation of feature ``f`` over all frames explained; 1 if that is
0), divided by the step actually taken after rounding the inputs to float32. For IG the ONNX model is then wrapped
in a :class:`torch.autograd.Function` whose backward is that finite-difference Jacobian, so Captum runs unchanged.
For the ReLU networks used here (piecewise linear) a central difference is the exact gradient wherever no kink
lies within ``h`` and the average slope across one where it does; the stated tolerance against exact gradients
(tested): mean difference under 0.5 % and largest under 5 % of the map's peak.

Stability (:func:`explain_by_subject`, :func:`stability`, :func:`plot_stability`): the map per subject (each
subject's stances alone) or per network (e.g. seeds), and which features keep their sign and rank.

Rules: a stance with a non-finite input at any frame, or with fewer than two frames, is left out and listed
in ``excluded``; at least two stances must remain. ``target`` names one of the model's outputs (default:
``knee_medial`` when the model has it, else its first output).

Sign check (:meth:`Explanation.agreement`): for the features in :data:`EXPECTED_SIGNS` (for the medial knee
force: knee adduction angle and vertical GRF, both expected to raise the force), the stance-averaged sign of
each map, the expected sign, and the share of stance points at which the two maps agree in sign (among points
where both exceed 5 % of their map's largest magnitude).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from gaitforce._json import json_safe as _json_safe
from gaitforce.data.dataset import Dataset
from gaitforce.errors import GaitforceError, MissingChannelError

POINTS = 101
FD_STEP = 1e-3
IG_STEPS = 50
#: Expected direction of effect (sign of d target / d feature) from the paper's discussion and the knee-loading
#: literature: more knee adduction (varus, i.e. less abduction) and more vertical GRF load the medial compartment.
EXPECTED_SIGNS: dict[str, dict[str, int]] = {"knee_medial": {"knee_add": +1, "grf_y": +1}}
#: Stance points where either map is below this fraction of its largest magnitude are ignored by the sign check.
SIGN_FLOOR = 0.05
#: how a bundle's gradients are taken (see :func:`as_model`)
GRADIENTS = ("auto", "autograd", "fd")
_CHUNK = 65536
#: rows per torch call: bounds the memory of a convolutional network's saved activations (~0.5 GB for paper-cnn)
_TORCH_CHUNK = 8192
#: largest dense matrix (elements) :func:`dense_equivalent` builds for one convolution block (64 MB of float32)
_DENSE_MAX = 16 * 2**20

_JOINT_AXES = {"flex": "flexion", "add": "adduction", "rot": "internal rotation"}
_AXIS_NAMES = {"x": "anterior", "y": "vertical", "z": "lateral"}


def feature_label(column: str) -> str:
    """A readable name with unit for a feature column: ``knee_add`` -> "knee adduction (deg)",
    ``grf_y`` -> "GRF vertical (N)", ``knee_lat_x`` -> "knee lat anterior (m)"."""
    joint, _, axis = column.rpartition("_")
    if joint in ("hip", "knee", "ankle") and axis in _JOINT_AXES:
        name = "dorsiflexion" if (joint, axis) == ("ankle", "flex") else _JOINT_AXES[axis]
        return f"{joint} {name} (deg)"
    if joint in ("grf", "cop") and axis in _AXIS_NAMES:
        return f"{joint.upper() if joint == 'grf' else 'CoP'} {_AXIS_NAMES[axis]} ({'N' if joint == 'grf' else 'm'})"
    if axis in _AXIS_NAMES and joint:
        return f"{joint.replace('_', ' ')} {_AXIS_NAMES[axis]} (m)"
    return column


# ---------------------------------------------------------------------------------------------------------
# model adapters: predict and differentiate any model the same way
# ---------------------------------------------------------------------------------------------------------
class TorchModel:
    """A torch module mapping raw features (N, F) to targets (N, K); gradients by autograd."""

    def __init__(self, module, columns: Sequence[str], targets: Sequence[str], units: Sequence[str] | None = None):
        self.module = module.eval()
        self.columns, self.targets = list(columns), list(targets)
        self.units = list(units) if units is not None else [""] * len(self.targets)
        self.method = "autograd"

    def _dtype(self):
        import torch

        p = next(iter(self.module.parameters()), None)
        return p.dtype if p is not None else torch.float32

    def predict(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            xt = torch.as_tensor(np.asarray(x), dtype=self._dtype())
            return np.concatenate([self.module(xt[i : i + _TORCH_CHUNK]).double().numpy()
                                   for i in range(0, len(xt), _TORCH_CHUNK)]) if len(xt) else \
                np.zeros((0, len(self.targets)))

    def gradient(self, x: np.ndarray, k: int) -> np.ndarray:
        """d y_k / d x for each row: (N, F)."""
        import torch

        out = []
        for i in range(0, len(x), _TORCH_CHUNK):
            xt = torch.as_tensor(np.asarray(x[i : i + _TORCH_CHUNK]), dtype=self._dtype()).requires_grad_(True)
            (g,) = torch.autograd.grad(self.module(xt)[:, k].sum(), xt)
            out.append(g.double().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.columns)))

    def forward_func(self):
        """A torch callable for Captum."""
        return self.module


class OnnxModel:
    """A bundle's ONNX graph; gradients by central finite differences of step ``steps`` (F,) in input units."""

    def __init__(self, bundle, steps: np.ndarray | None = None):
        self.bundle = bundle
        self.columns, self.targets = bundle.columns, bundle.targets
        self.units = [bundle.units[t] for t in self.targets]
        self.steps = None if steps is None else np.asarray(steps, np.float64)
        self.method = "central finite differences (ONNX Runtime)"

    def predict(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float32)
        out = [self.bundle.predict_features(x[i : i + _CHUNK]) for i in range(0, len(x), _CHUNK)]
        return np.concatenate(out).astype(np.float64) if out else np.zeros((0, len(self.targets)))

    def jacobian(self, x: np.ndarray) -> np.ndarray:
        """(N, K, F) central-difference Jacobian at the rows of ``x``."""
        if self.steps is None:
            raise GaitforceError("finite-difference steps are not set")
        x = np.asarray(x, np.float64)
        n, f = x.shape
        jac = np.empty((n, len(self.targets), f))
        for j in range(f):
            up, down = x.copy(), x.copy()
            up[:, j] += self.steps[j]
            down[:, j] -= self.steps[j]
            up32, down32 = up.astype(np.float32), down.astype(np.float32)
            taken = up32[:, j].astype(np.float64) - down32[:, j].astype(np.float64)  # the step after rounding
            y = self.predict(np.concatenate([up32, down32]))
            jac[:, :, j] = (y[:n] - y[n:]) / taken[:, None]
        return jac

    def gradient(self, x: np.ndarray, k: int) -> np.ndarray:
        return self.jacobian(x)[:, k, :]

    def forward_func(self):
        import torch

        model = self

        class _OnnxFn(torch.autograd.Function):
            @staticmethod
            def forward(ctx, xt):
                ctx.save_for_backward(xt)
                return torch.as_tensor(model.predict(xt.detach().cpu().numpy()), dtype=xt.dtype)

            @staticmethod
            def backward(ctx, grad_out):
                (xt,) = ctx.saved_tensors
                jac = model.jacobian(xt.detach().cpu().numpy())
                g = np.einsum("nk,nkf->nf", grad_out.detach().double().numpy(), jac)
                return torch.as_tensor(g, dtype=xt.dtype)

        return _OnnxFn.apply


def bundle_module(bundle, *, check_rows: np.ndarray | None = None):
    """The bundle's network rebuilt in torch from its registered architecture (``model.name``,
    ``model.hyperparameters``, ``input.shape``, one net for all targets or one per target) and its
    ``model.safetensors`` weights: a :class:`~gaitforce.learn.training.FoldedModel` mapping raw features to
    targets like ``model.onnx``. ``None`` when the bundle holds no weights (older bundles), needs the body weight or
    is an ensemble.

    The architecture is first built on torch's ``meta`` device (no memory) and every tensor's name and shape
    compared with the file, so a bundle.json naming a huge network fails before anything is allocated. With
    ``check_rows`` (N, F), the rebuilt network must reproduce ``model.onnx`` on them to 1e-3 x max(1, |y|)."""
    import torch

    from gaitforce.learn.bundle import BundleError, load_weights
    from gaitforce.learn.models import create_model
    from gaitforce.learn.training import FoldedModel

    if bundle.needs_body_weight or getattr(bundle, "is_ensemble", False):  # ensemble: gradients via ONNX
        return None
    tensors = load_weights(bundle)
    if tensors is None:
        return None
    spec = bundle.spec
    src = bundle.path / spec["weights"]["file"]
    n_f, n_k = len(bundle.columns), len(bundle.targets)
    multi = (spec["model"].get("training") or {}).get("multi_target", True)
    groups = [n_k] if multi is not False else [1] * n_k
    hyper = dict(spec["model"]["hyperparameters"])

    def build():
        nets = [create_model(spec["model"]["name"], n_features=n_f, n_targets=g, input_shape=spec["input"]["shape"],
                             **hyper) for g in groups]
        return FoldedModel(nets, np.zeros(n_f), np.ones(n_f), np.zeros(n_k), np.ones(n_k))

    try:
        with torch.device("meta"):
            shell = build()
    except GaitforceError as err:
        raise BundleError(f"cannot rebuild the network from bundle.json: {err}", source=src) from None
    want = {k: tuple(v.shape) for k, v in shell.state_dict().items()}
    have = {k: tuple(v.shape) for k, v in tensors.items()}
    if want != have:
        diff = sorted(set(want) ^ set(have)) or [k for k in want if want[k] != have[k]]
        raise BundleError(f"weights do not fit the architecture in bundle.json (e.g. {diff[:3]})", source=src)
    module = build()
    module.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in tensors.items()}, strict=True)
    module = module.float().eval()
    for i, net in enumerate(module.nets):
        module.nets[i] = dense_equivalent(net)
    if check_rows is not None and len(check_rows):
        x = np.asarray(check_rows, np.float32)
        with torch.no_grad():
            y_t = module(torch.from_numpy(x)).double().numpy()
        y_o = bundle.predict_features(x).astype(np.float64)
        tol = 1e-3 * max(1.0, float(np.nanmax(np.abs(y_o))))
        worst = float(np.nanmax(np.abs(y_t - y_o)))
        if not worst <= tol:
            raise BundleError(f"the weights do not reproduce model.onnx (largest difference {worst:.3g}, allowed "
                              f"{tol:.3g})", source=src)
    return module


def dense_equivalent(net):
    """A paper-cnn (eval mode) as the same function with its convolutions as dense matrices: on a 20 x 3 image a
    (19, 3) kernel with "same" padding touches nearly every pixel, so each pad + conv + batch-norm block is an
    affine map ``Linear(C*H*W, C'*H*W)``, found by passing the identity basis through it. One GEMM per block
    instead of a small-image convolution: the same numbers (to float32 rounding) in about a third of the time.
    Any other network, or one whose dense matrices would exceed 16 M elements, is returned unchanged."""
    import torch
    from torch import nn

    from gaitforce.learn.models.paper_cnn import PaperCNN

    if not isinstance(net, PaperCNN) or net.training:
        return net
    width = int(np.prod(net.input_shape)) * max([1] + [m.out_channels for m in net.conv if isinstance(m, nn.Conv2d)])
    if width * width > _DENSE_MAX:  # a wide network: its dense matrices would not pay (nor fit) - keep the convs
        return net
    layers: list = []
    segment: list = []
    shape = (1, *net.input_shape)

    def flush():
        nonlocal segment, shape
        if not segment:
            return
        block = nn.Sequential(*segment).eval()
        n = int(np.prod(shape))
        with torch.no_grad():
            bias = block(torch.zeros((1, *shape)))
            weight = block(torch.eye(n).reshape((n, *shape))).flatten(1) - bias.flatten(1)
        lin = nn.Linear(n, weight.shape[1])
        with torch.no_grad():
            lin.weight.copy_(weight.T)
            lin.bias.copy_(bias.flatten())
        layers.append(lin)
        shape, segment = tuple(bias.shape[1:]), []

    for mod in net.conv:
        if isinstance(mod, nn.ReLU):
            flush()
            layers.append(nn.ReLU())
        elif isinstance(mod, (nn.ZeroPad2d, nn.Conv2d, nn.BatchNorm2d)):
            segment.append(mod)
        else:
            return net
    flush()
    return nn.Sequential(nn.Flatten(), *layers, *net.fc, net.out).eval()


def as_model(model, *, columns: Sequence[str] | None = None, targets: Sequence[str] | None = None,
             gradients: str = "auto", check_rows: np.ndarray | None = None):
    """A :class:`TorchModel` or :class:`OnnxModel` for a Bundle, a fitted Estimator or a torch module.

    ``gradients`` (bundles only): ``"auto"`` (autograd on the bundle's weights when it has them, else finite
    differences), ``"autograd"`` (refuse a bundle without weights) or ``"fd"`` (finite differences always)."""
    from gaitforce.learn.bundle import Bundle

    if gradients not in GRADIENTS:
        raise GaitforceError(f"gradients must be one of {', '.join(GRADIENTS)}, not {gradients!r}")
    if isinstance(model, (TorchModel, OnnxModel)):
        return model
    if isinstance(model, Bundle):
        module = None if gradients == "fd" else bundle_module(model, check_rows=check_rows)
        if module is None:
            if gradients == "autograd":
                raise GaitforceError("this bundle holds no network weights (model.safetensors; bundles written "
                                     "before gaitforce wrote them); use finite differences", source=model.path)
            return OnnxModel(model)
        m = TorchModel(module, model.columns, model.targets, [model.units[t] for t in model.targets])
        m.method = "autograd on the bundle's weights (model.safetensors, checked against model.onnx)"
        return m
    if hasattr(model, "folded_module") and hasattr(model, "nets_"):
        if getattr(model, "force_inputs_", None) is not None:
            raise GaitforceError("a body-weight-normalised estimator cannot be explained yet (its network works in "
                                 "body weights, not in the dataset's units)")
        module = model.mean_module() if hasattr(model, "mean_module") else model.folded_module()  # ensemble: mean
        return TorchModel(module, model.columns_, model.targets, model.target_units_)
    import torch

    if isinstance(model, torch.nn.Module):
        if columns is None or targets is None:
            raise GaitforceError("a torch module needs columns= and targets= to be explained")
        return TorchModel(model, columns, targets)
    raise GaitforceError(f"cannot explain a {type(model).__name__} (give a Bundle, an Estimator or a torch module)")


# ---------------------------------------------------------------------------------------------------------
# the maps
# ---------------------------------------------------------------------------------------------------------
@dataclass
class Explanation:
    """Sensitivity and integrated-gradients maps (features x stance points), in the target's unit."""

    target: str
    unit: str
    features: list[str]
    stance_pct: np.ndarray  # (P,)
    sensitivity: np.ndarray  # (F, P): mean gradient x SD (the paper's map)
    integrated: np.ndarray  # (F, P): integrated-gradients map
    mean_gradient: np.ndarray  # (F, P), target unit per feature unit
    feature_mean: np.ndarray  # (F, P)
    feature_sd: np.ndarray  # (F, P)
    stance_ids: list
    excluded: dict = field(default_factory=dict)
    method: dict = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        return [feature_label(c) for c in self.features]

    def wide(self, kind: str = "sensitivity") -> pd.DataFrame:
        """``stance_pct`` + one column per feature, for ``kind`` sensitivity / integrated / mean_gradient /
        feature_mean / feature_sd."""
        values = getattr(self, kind)
        df = pd.DataFrame(values.T, columns=self.features)
        df.insert(0, "stance_pct", self.stance_pct)
        return df

    def table(self) -> pd.DataFrame:
        """Long form: one row per feature and stance point with every quantity."""
        f, p = self.sensitivity.shape
        return pd.DataFrame({
            "feature": np.repeat(self.features, p),
            "label": np.repeat(self.labels, p),
            "stance_pct": np.tile(self.stance_pct, f),
            "sensitivity": self.sensitivity.ravel(),
            "integrated_gradients": self.integrated.ravel(),
            "mean_gradient": self.mean_gradient.ravel(),
            "feature_mean": self.feature_mean.ravel(),
            "feature_sd": self.feature_sd.ravel(),
        })

    def summary(self) -> pd.DataFrame:
        """Per feature: mean |map| over stance for both maps, and the stance % of each map's largest magnitude,
        ranked by the sensitivity map."""
        rows = []
        for i, col in enumerate(self.features):
            s, g = self.sensitivity[i], self.integrated[i]
            rows.append({"feature": col, "label": feature_label(col),
                         "sensitivity_mean_abs": float(np.mean(np.abs(s))),
                         "sensitivity_peak_pct": float(self.stance_pct[int(np.argmax(np.abs(s)))]),
                         "sensitivity_mean": float(np.mean(s)),
                         "integrated_mean_abs": float(np.mean(np.abs(g))),
                         "integrated_peak_pct": float(self.stance_pct[int(np.argmax(np.abs(g)))]),
                         "integrated_mean": float(np.mean(g))})
        df = pd.DataFrame(rows).sort_values("sensitivity_mean_abs", ascending=False, kind="stable")
        df.insert(0, "rank", np.arange(1, len(df) + 1))
        return df.reset_index(drop=True)

    def agreement(self) -> pd.DataFrame:
        """The sign check for the features of :data:`EXPECTED_SIGNS` (see the module docstring)."""
        rows = []
        for col, expected in EXPECTED_SIGNS.get(self.target, {}).items():
            if col not in self.features:
                continue
            i = self.features.index(col)
            s, g = self.sensitivity[i], self.integrated[i]
            big = (np.abs(s) > SIGN_FLOOR * np.abs(self.sensitivity).max()) & \
                  (np.abs(g) > SIGN_FLOOR * np.abs(self.integrated).max())
            agree = float(np.mean(np.sign(s[big]) == np.sign(g[big]))) if big.any() else math.nan
            sign_s, sign_g = int(np.sign(np.mean(s))), int(np.sign(np.mean(g)))
            rows.append({"feature": col, "label": feature_label(col), "expected_sign": expected,
                         "sensitivity_sign": sign_s, "integrated_sign": sign_g,
                         "points_compared": int(big.sum()), "sign_agreement": agree,
                         "as_expected": bool(sign_s == expected and sign_g == expected)})
        return pd.DataFrame(rows, columns=["feature", "label", "expected_sign", "sensitivity_sign", "integrated_sign",
                                           "points_compared", "sign_agreement", "as_expected"])

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "unit": self.unit, "features": self.features, "labels": self.labels,
                "stances": len(self.stance_ids), "stance_ids": [str(s) for s in self.stance_ids],
                "excluded": {str(k): v for k, v in self.excluded.items()}, "method": self.method,
                "agreement": self.agreement().to_dict(orient="records")}

    def save(self, out_dir, *, figure: bool = True, title: str | None = None) -> list[Path]:
        """Write ``sensitivity.csv``, ``integrated_gradients.csv`` (wide), ``explain.csv`` (long),
        ``summary.csv``, ``agreement.csv``, ``explain.json`` and (``figure``) ``explain.png`` into ``out_dir``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for name, df in (("sensitivity", self.wide("sensitivity")),
                         ("integrated_gradients", self.wide("integrated")),
                         ("explain", self.table()), ("summary", self.summary()), ("agreement", self.agreement())):
            df.to_csv(out / f"{name}.csv", index=False)
            written.append(out / f"{name}.csv")
        (out / "explain.json").write_text(json.dumps(_json_safe(self.to_dict()), indent=2) + "\n")
        written.append(out / "explain.json")
        if figure:
            written.append(plot_maps(self, out / "explain.png", title=title))
        return written


def explain(model, dataset: Dataset, *, target: str | None = None, points: int = POINTS, fd_step: float = FD_STEP,
            ig_steps: int = IG_STEPS, columns: Sequence[str] | None = None, targets: Sequence[str] | None = None,
            threads: int | None = 1, gradients: str = "auto") -> Explanation:
    """The sensitivity and integrated-gradients maps of ``model`` over the stances of ``dataset``.

    ``model``: a Bundle (autograd on its weights, or finite differences for a bundle without them; see
    ``gradients`` and :func:`as_model`), a fitted Estimator or a torch module (autograd; a module needs
    ``columns=`` and ``targets=``). See the module docstring for the method and rules."""
    from gaitforce.learn.bundle import Bundle
    from gaitforce.learn.training import torch_threads

    if int(points) < 2:
        raise GaitforceError(f"points must be at least 2, got {points}")
    if not (fd_step > 0) or int(ig_steps) < 1:
        raise GaitforceError(f"fd_step must be positive and ig_steps >= 1 (got {fd_step}, {ig_steps})")
    if isinstance(model, Bundle):
        cols = model.columns  # the model is built after the frames are known: its weights are checked on them
    else:
        m = as_model(model, columns=columns, targets=targets)
        cols = m.columns
    missing = [c for c in cols if c not in dataset.frames]
    if missing:
        raise MissingChannelError(f"dataset lacks the model's input columns {missing[:5]}", source=dataset.path)
    ids, curves, excluded = _stances(dataset, cols)
    if len(ids) < 2:
        raise GaitforceError(f"needs at least 2 usable stances, found {len(ids)}"
                             + (f" ({len(excluded)} left out)" if excluded else ""), source=dataset.path)
    frames = np.concatenate([x for _, x in curves])
    if isinstance(model, Bundle):
        m = as_model(model, gradients=gradients, check_rows=frames[:: max(1, len(frames) // 256)])
    k = _target_index(m, target)
    if isinstance(m, OnnxModel):
        sd = frames.std(axis=0)
        m.steps = fd_step * np.where(sd > 0, sd, 1.0)
    grid = np.linspace(0.0, 100.0, int(points))
    with torch_threads(threads):
        grads = m.gradient(frames, k)
        g_curves, x_curves, start = [], [], 0
        for pct, x in curves:
            n = len(x)
            g_curves.append(_resample(pct, grads[start : start + n], grid))
            x_curves.append(_resample(pct, x, grid))
            start += n
        g_all, x_all = np.stack(g_curves), np.stack(x_curves)  # (T, P, F)
        mean_g = g_all.mean(axis=0)
        x_mean, x_sd = x_all.mean(axis=0), x_all.std(axis=0, ddof=1)
        sensitivity = mean_g * x_sd
        attributions, delta = _integrated_gradients(m, x_all, x_mean, k, ig_steps)
    dev = x_all - x_mean
    with np.errstate(invalid="ignore", divide="ignore"):
        integrated = np.where(x_sd > 0, (attributions * dev).sum(axis=0) / ((len(ids) - 1) * x_sd), 0.0)
    method = {"sensitivity": "mean over stances of d target/d feature x SD over stances (ddof=1), per stance "
                             "point", "gradient": m.method, "points": int(points),
              "resampling": "linear in stance_pct", "integrated_gradients": {
                  "library": "captum", "method": "gausslegendre", "n_steps": int(ig_steps),
                  "baseline": "mean stance (mean over stances of the features at each stance point)",
                  "aggregation": "sum_t A_t (x_t - mean) / ((T-1) SD)", "max_completeness_error": delta}}
    if isinstance(m, OnnxModel):
        method["fd_step"] = {"relative": float(fd_step), "steps": dict(zip(m.columns, map(float, m.steps)))}
    return Explanation(target=m.targets[k], unit=m.units[k], features=list(m.columns), stance_pct=grid,
                       sensitivity=sensitivity.T, integrated=integrated.T, mean_gradient=mean_g.T,
                       feature_mean=x_mean.T, feature_sd=x_sd.T, stance_ids=ids, excluded=excluded, method=method)


def _target_index(m, target: str | None) -> int:
    if target is None:
        target = "knee_medial" if "knee_medial" in m.targets else m.targets[0]
    if target not in m.targets:
        raise GaitforceError(f"the model has no output {target!r} (it gives: {', '.join(m.targets)})")
    return m.targets.index(target)


def _stances(ds: Dataset, columns: list[str]):
    """Stance ids kept, [(stance_pct (n,), features (n, F))] and {stance_id: reason} for those left out."""
    ids, curves, excluded = [], [], {}
    fr = ds.frames
    for sid, rows in fr.groupby("stance_id", sort=False):
        rows = rows.sort_values("stance_pct", kind="stable")
        x = rows[columns].to_numpy(np.float64)
        pct = rows["stance_pct"].to_numpy(np.float64)
        if len(rows) < 2:
            excluded[sid] = "fewer than 2 frames"
        elif not np.isfinite(x).all() or not np.isfinite(pct).all():
            excluded[sid] = "non-finite input at some frame"
        else:
            ids.append(sid)
            curves.append((pct, x))
    return ids, curves, excluded


def _resample(pct: np.ndarray, values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """(n, F) on ``pct`` -> (P, F) on ``grid`` by linear interpolation (ends held beyond the data)."""
    return np.stack([np.interp(grid, pct, values[:, j]) for j in range(values.shape[1])], axis=1)


def _integrated_gradients(m, x_all: np.ndarray, x_mean: np.ndarray, k: int, steps: int):
    """Captum IG of every (stance, point) from the mean stance at that point: (T, P, F) and the largest
    completeness error |sum_f A - (y(x) - y(baseline))| in target units."""
    import torch
    from captum.attr import IntegratedGradients

    t, p, f = x_all.shape
    inputs = x_all.reshape(t * p, f)
    base = np.broadcast_to(x_mean, (t, p, f)).reshape(t * p, f)
    dtype = m._dtype() if isinstance(m, TorchModel) else torch.float64
    ig = IntegratedGradients(m.forward_func())
    rows = max(1, (_TORCH_CHUNK if isinstance(m, TorchModel) else _CHUNK) // max(1, steps))
    out = []
    for i in range(0, len(inputs), rows):
        xi = torch.as_tensor(inputs[i : i + rows], dtype=dtype)
        bi = torch.as_tensor(np.ascontiguousarray(base[i : i + rows]), dtype=dtype)
        out.append(ig.attribute(xi, baselines=bi, target=k, n_steps=int(steps), method="gausslegendre")
                   .detach().double().numpy())
    attr = np.concatenate(out)
    y = m.predict(np.concatenate([inputs, base]))[:, k]
    delta = float(np.max(np.abs(attr.sum(axis=1) - (y[: len(inputs)] - y[len(inputs):])))) if len(attr) else 0.0
    return attr.reshape(t, p, f), delta


# ---------------------------------------------------------------------------------------------------------
# stability: the map per subject and per network seed
# ---------------------------------------------------------------------------------------------------------
def explain_by_subject(model, dataset: Dataset, **kwargs) -> tuple[dict[str, Explanation], dict[str, str]]:
    """:func:`explain` on each subject's stances alone (the baseline and SD are then that subject's): returns
    ``{subject: Explanation}`` and ``{subject: why left out}`` for subjects with fewer than 2 usable stances."""
    st = dataset.stances()
    out, skipped = {}, {}
    for subject, rows in st.groupby("subject", sort=True, dropna=False):
        name = str(subject)
        if len(rows) < 2:
            skipped[name] = f"{len(rows)} stance(s)"
            continue
        try:
            out[name] = explain(model, dataset.subset(list(rows["stance_id"])), **kwargs)
        except GaitforceError as err:
            if "usable stances" not in str(err):
                raise
            skipped[name] = "fewer than 2 usable stances"
    return out, skipped


def stability(maps, *, top: int = 5) -> pd.DataFrame:
    """Which features keep their sign and rank across maps (``{name: Explanation}``, e.g. per subject or per
    network seed; same features). One row per feature: per map the stance-mean of the sensitivity map
    (``mean_<name>``) and its rank by mean |sensitivity| (``rank_<name>``, 1 = largest); ``sign_kept``: the
    stance-mean sensitivity has one sign (non-zero) in every map, ``sign_kept_integrated`` the same for the
    integrated-gradients map; ``rank_best`` / ``rank_worst``; ``top_in_all``: ranked within the first ``top``
    in every map. Rows ordered by median rank."""
    maps = dict(maps)
    if len(maps) < 2:
        raise GaitforceError(f"stability needs at least 2 maps, got {len(maps)}")
    names = list(maps)
    features = maps[names[0]].features
    for n in names[1:]:
        if maps[n].features != features:
            raise GaitforceError(f"map {n!r} has other features than map {names[0]!r}")
    df = pd.DataFrame({"feature": features, "label": [feature_label(c) for c in features]})
    signs, signs_ig, ranks = [], [], []
    for n in names:
        ex = maps[n]
        mean = ex.sensitivity.mean(axis=1)
        order = np.argsort(-np.abs(ex.sensitivity).mean(axis=1), kind="stable")
        rank = np.empty(len(features), int)
        rank[order] = np.arange(1, len(features) + 1)
        df[f"mean_{n}"] = mean
        df[f"rank_{n}"] = rank
        signs.append(np.sign(mean))
        signs_ig.append(np.sign(ex.integrated.mean(axis=1)))
        ranks.append(rank)
    signs, signs_ig, ranks = np.array(signs), np.array(signs_ig), np.array(ranks)
    df["sign_kept"] = (np.abs(signs.sum(axis=0)) == len(names))
    df["sign_kept_integrated"] = (np.abs(signs_ig.sum(axis=0)) == len(names))
    df["rank_best"], df["rank_worst"] = ranks.min(axis=0), ranks.max(axis=0)
    df["top_in_all"] = ranks.max(axis=0) <= int(top)
    df["_median"] = np.median(ranks, axis=0)
    return df.sort_values(["_median", "rank_best"], kind="stable").drop(columns="_median").reset_index(drop=True)


def groups_table(maps) -> pd.DataFrame:
    """Long form of several maps: group, feature, stance %, sensitivity and integrated gradients."""
    parts = []
    for name, ex in dict(maps).items():
        t = ex.table()[["feature", "stance_pct", "sensitivity", "integrated_gradients"]]
        t.insert(0, "group", str(name))
        parts.append(t)
    return pd.concat(parts, ignore_index=True)


def plot_stability(reference: Explanation, maps, path, *, title: str | None = None, dpi: int = 110,
                   top: int | None = 20) -> Path:
    """The reference sensitivity map beside the same map per group (subject or network seed), one panel each,
    every panel on its own symmetric colour scale (its peak in the panel title): signs and ranks are what is
    compared, and a subject's within-subject SD makes its map smaller than the pooled one. With more than
    ``top`` inputs only the ``top`` largest of the reference map (by mean |sensitivity|) are drawn."""
    from gaitforce._plot import subplots

    rows = np.argsort(-np.abs(reference.sensitivity).mean(axis=1), kind="stable")
    rows = np.sort(rows[:top]) if top and len(rows) > top else np.arange(len(reference.features))
    panels = [("all stances", reference)] + [(str(k), v) for k, v in dict(maps).items()]
    n_f = len(rows)
    fig, axes = subplots(1, len(panels), figsize=(2.3 + 2.2 * len(panels), 1.2 + 0.3 * n_f), sharey=True,
                         constrained_layout=True, squeeze=False)
    pct = reference.stance_pct
    step = pct[1] - pct[0] if len(pct) > 1 else 1.0
    extent = (pct[0] - step / 2, pct[-1] + step / 2, n_f - 0.5, -0.5)
    for ax, (name, ex) in zip(axes[0], panels):
        lim = float(max(np.abs(ex.sensitivity).max(), 1e-12))
        ax.imshow(ex.sensitivity[rows], aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim, extent=extent,
                  interpolation="nearest")
        ax.set_title(f"{name}\n(peak {lim:.3g} {ex.unit})".replace(" )", ")"), fontsize=8)
        ax.set_xticks([0, 50, 100])
        ax.set_xlabel("% stance", fontsize=8)
    axes[0][0].set_yticks(np.arange(n_f))
    axes[0][0].set_yticklabels([reference.labels[i] for i in rows], fontsize=7)
    shown = "" if n_f == len(reference.features) else f" ({n_f} largest of {len(reference.features)} inputs)"
    fig.suptitle(title or f"Sensitivity map (gradient x SD) of {reference.target}{shown}, pooled and per group; "
                          "red raises, blue lowers", fontsize=10)
    path = Path(path)
    fig.savefig(path, dpi=dpi)
    return path


# ---------------------------------------------------------------------------------------------------------
# figure
# ---------------------------------------------------------------------------------------------------------
def plot_maps(ex: Explanation, path, *, title: str | None = None, dpi: int = 110) -> Path:
    """Two heat maps side by side (sensitivity | integrated gradients): features x % stance, a diverging colour
    scale centred on zero and shared by both maps, in the target's unit."""
    from matplotlib.colors import TwoSlopeNorm

    from gaitforce._plot import subplots

    lim = float(max(np.abs(ex.sensitivity).max(), np.abs(ex.integrated).max(), 1e-12))
    norm = TwoSlopeNorm(vcenter=0.0, vmin=-lim, vmax=lim)
    n_f = len(ex.features)
    fig, axes = subplots(1, 2, figsize=(12, 1.2 + 0.38 * n_f), sharey=True, constrained_layout=True)
    pct = ex.stance_pct
    step = pct[1] - pct[0] if len(pct) > 1 else 1.0
    extent = (pct[0] - step / 2, pct[-1] + step / 2, n_f - 0.5, -0.5)
    names = ("sensitivity: mean gradient x SD (seed)", "integrated gradients (baseline: mean stance)")
    for ax, values, name in zip(axes, (ex.sensitivity, ex.integrated), names):
        im = ax.imshow(values, aspect="auto", cmap="RdBu_r", norm=norm, extent=extent, interpolation="nearest")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("% stance")
        ax.set_xticks(np.arange(0, 101, 20))
    axes[0].set_yticks(np.arange(n_f))
    axes[0].set_yticklabels(ex.labels, fontsize=9)
    unit = f" ({ex.unit})" if ex.unit else ""
    cbar = fig.colorbar(im, ax=axes, shrink=0.9, pad=0.01)
    cbar.set_label(f"effect on {ex.target}{unit} of a 1-SD input change")
    fig.suptitle(title or f"What drives predicted {ex.target}: {len(ex.stance_ids)} stances", fontsize=11)
    path = Path(path)
    fig.savefig(path, dpi=dpi)
    return path


