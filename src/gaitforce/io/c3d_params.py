"""Small helpers shared by the C3D reader, its plate conversion and its writer."""

from __future__ import annotations

import numpy as np


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def _values(params, group: str, name: str, default=None):
    try:
        value = params[group][name]["value"]
    except (KeyError, TypeError):
        return default
    if isinstance(value, np.ndarray):
        return value.reshape(-1).tolist() if value.size else default
    return list(value) if len(value) else default
