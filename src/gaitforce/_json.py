"""JSON helpers shared by the writers of bundle.json, explain.json and dataset manifests."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np


def json_safe(obj):
    """``obj`` as plain JSON types: numpy scalars/arrays to Python, paths to str, NaN/inf to None (JSON has none)."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, Path):
        return str(obj)
    return obj
