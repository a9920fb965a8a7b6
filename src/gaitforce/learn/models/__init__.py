"""Surrogate network architectures, one module per architecture, found by name in a registry.

Every model is a :class:`torch.nn.Module` built as ``cls(n_features=F, n_targets=K, input_shape=(rows, cols),
**hyperparameters)``. Its ``forward`` takes normalised features ``(B, F)`` float32 (one frame per row, columns
in the dataset's model-input order) and returns normalised targets ``(B, K)``. The :class:`gaitforce.learn.training.
Estimator` owns normalisation, so a model never sees physical units.

Class attributes a model may set:

- ``input_kind``: ``"frame"`` (one row per frame, the default). A model over a whole stance phase would declare
  another kind; the Estimator checks it so such a model can be added without changing per-frame ones.
- ``defaults``: the hyperparameters and their default values (recorded in bundles).
- ``fit_closed_form(x, y, x_val, y_val)``: if present the Estimator calls it instead of gradient training
  (used by ``ridge``).

``create_model("paper-cnn", n_features=60, n_targets=1, input_shape=(20, 3), conv_layers=3)`` builds one;
``list_models()`` names the registered ones; ``@register_model("name")`` adds a class.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

from torch import nn

from gaitforce.errors import GaitforceError

_REGISTRY: dict[str, type[nn.Module]] = {}

#: modules imported on first use of the registry, each registering its architecture(s)
_BUILTIN = ("paper_cnn", "ridge", "mlp", "tcn")


def register_model(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: make ``cls`` available to :func:`create_model` as ``name``."""

    def decorate(cls: type[nn.Module]) -> type[nn.Module]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"model name {name!r} already registered by {_REGISTRY[name].__qualname__}")
        cls.model_name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def _load_builtin() -> None:
    for mod in _BUILTIN:
        importlib.import_module(f"{__name__}.{mod}")


def list_models() -> list[str]:
    """Names of the registered architectures, sorted."""
    _load_builtin()
    return sorted(_REGISTRY)


def model_class(name: str) -> type[nn.Module]:
    _load_builtin()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise GaitforceError(f"unknown model {name!r} (known: {', '.join(sorted(_REGISTRY))})") from None


def model_defaults(name: str) -> dict[str, Any]:
    """The hyperparameters ``name`` takes, with their default values."""
    return dict(getattr(model_class(name), "defaults", {}))


#: the smallest value of a count hyperparameter; a count whose default is 0 may be 0 ("none")
_AT_LEAST_ONE = ("layers", "conv_layers", "fc_layers", "channels", "width", "kernel", "fc_width")


def check_hyperparameters(name: str, hyperparameters: dict[str, Any]) -> None:
    """Refuse unknown or impossible hyperparameters of architecture ``name`` in one line, before any data are
    read: counts (a default that is an integer) must be integers, >= 1 (>= 0 where the default is 0); dropout in
    [0, 1); ridge's alpha None or > 0 and its alphas positive numbers."""
    known = model_defaults(name)
    unknown = sorted(set(hyperparameters) - set(known))
    if unknown:
        raise GaitforceError(
            f"model {name!r} has no hyperparameter(s) {unknown} (it takes: {', '.join(sorted(known)) or 'none'})"
        )
    for key, value in hyperparameters.items():
        default = known[key]

        def bad(rule: str):
            return GaitforceError(f"model {name!r}: {key}={value!r}: {rule}")

        if isinstance(default, int) and not isinstance(default, bool):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
                raise bad("must be a whole number")
            low = 0 if default == 0 or key not in _AT_LEAST_ONE else 1
            if value < low:
                raise bad(f"must be >= {low}")
            if value > 1_000_000:
                raise bad("is implausibly large (> 1e6)")
        elif key == "dropout":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise bad("must be a number in [0, 1)")
        elif key == "alpha":
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not (value > 0 and value < float("inf"))):
                raise bad("must be null or a positive number")
        elif key == "alphas":
            ok = isinstance(value, (list, tuple)) and len(value) > 0 and all(
                isinstance(a, (int, float)) and not isinstance(a, bool) and 0 < a < float("inf") for a in value)
            if not ok:
                raise bad("must be a non-empty list of positive numbers")


def create_model(name: str, *, n_features: int, n_targets: int, input_shape=None, **hyperparameters) -> nn.Module:
    """Build architecture ``name``; unknown or impossible hyperparameters are a :class:`GaitforceError`."""
    cls = model_class(name)
    known = model_defaults(name)
    check_hyperparameters(name, hyperparameters)
    if input_shape is None:
        input_shape = (n_features // 3, 3) if n_features % 3 == 0 else (n_features, 1)
    input_shape = tuple(int(v) for v in input_shape)
    if input_shape[0] * input_shape[1] != n_features:
        raise GaitforceError(f"input shape {input_shape} does not hold {n_features} features")
    try:
        return cls(n_features=int(n_features), n_targets=int(n_targets), input_shape=input_shape,
                   **{**known, **hyperparameters})
    except (TypeError, ValueError) as err:  # e.g. layers="abc" from the CLI's --param
        raise GaitforceError(f"model {name!r}: a hyperparameter has an unusable value "
                             f"({', '.join(f'{k}={v!r}' for k, v in hyperparameters.items())}): {err}") from None


__all__ = ["create_model", "list_models", "register_model", "model_class", "model_defaults", "check_hyperparameters"]
