"""Imports on first use, so that a command's parser (``gaitforce CMD --help``) is built without numpy, pandas
or torch: ``np = lazy_module("numpy")`` imports numpy at the first ``np.<name>``;
``Dataset = lazy_attr("gaitforce.data.dataset", "Dataset")`` stands for the class until it is used (attribute
access or a call). Only for names used inside functions; annotations stay strings (``from __future__ import
annotations``)."""

from __future__ import annotations

import importlib
from typing import Any


class _LazyModule:
    def __init__(self, name: str):
        object.__setattr__(self, "_name", name)

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self._name), attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


class _LazyAttr:
    def __init__(self, module: str, attr: str):
        self._module, self._attr = module, attr

    def _target(self):
        return getattr(importlib.import_module(self._module), self._attr)

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return getattr(self._target(), attr)

    def __call__(self, *args, **kwargs):
        return self._target()(*args, **kwargs)

    def __instancecheck__(self, obj) -> bool:
        return isinstance(obj, self._target())

    def __repr__(self) -> str:
        return f"<lazy {self._module}.{self._attr}>"


def lazy_module(name: str) -> Any:
    """A stand-in for module ``name`` that imports it at the first attribute access."""
    return _LazyModule(name)


def lazy_attr(module: str, attr: str) -> Any:
    """A stand-in for ``module.attr`` (a function or class) that imports ``module`` when used."""
    return _LazyAttr(module, attr)
