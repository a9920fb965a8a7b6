"""Column classification of OpenSim tables: ground-reaction families, units of coordinates and forces."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

# ------------------------------------------------------------------------------------------------------
# Column classification
# ------------------------------------------------------------------------------------------------------
#: A GRF family column: prefix, the force/torque word, an optional infix (plate id), component, axis.
_GRF_RE = re.compile(
    r"^(?P<pre>(?:[A-Za-z0-9]+_)*?)(?P<word>ground_force|ground_torque|ground_moment|force|torque|moment)"
    r"(?P<mid>(?:_[A-Za-z0-9]+)*?)_(?P<comp>[vpm]?)(?P<axis>[xyz])$",
    re.IGNORECASE,
)
_TRANSLATION_RE = re.compile(r"_t[xyz]$|^(?:.*_)?(?:tx|ty|tz)$", re.IGNORECASE)
#: Roots of coordinate names of the common gait models; a force-file column starting with one is an actuator.
_COORD_ROOTS = (
    "pelvis_", "hip_", "knee_", "ankle_", "subtalar_", "mtp_", "lumbar_", "arm_", "elbow_", "pro_sup",
    "wrist_", "patfem_", "back_", "neck_",
)
_RESIDUALS = {"fx": "N", "fy": "N", "fz": "N", "mx": "N m", "my": "N m", "mz": "N m"}


@dataclass
class _Family:
    key: str
    force: dict = field(default_factory=dict)  # axis -> column
    point: dict = field(default_factory=dict)
    torque: dict = field(default_factory=dict)
    torque_is_m: bool = False  # columns named ..._m[xyz] inside the force family


def _grf_family(label: str) -> tuple[str, str, str, bool] | None:
    """``label`` -> (family key, kind 'v'/'p'/'t', axis, from an _m column) or None when not a GRF column."""
    m = _GRF_RE.match(label)
    if not m:
        return None
    word = m["word"].lower()
    comp = m["comp"].lower()
    pre = m["pre"].rstrip("_")
    mid = m["mid"].lstrip("_")
    if word.endswith("force"):
        if comp not in ("v", "p", "m"):
            return None
        kind = "t" if comp == "m" else comp
    else:  # torque / moment columns have no component letter
        if comp:
            return None
        kind = "t"
    if word in ("force", "torque", "moment") and not pre:
        return None  # a bare "force_vx" names no body: not a family we know
    key = "_".join(s for s in (pre, mid) if s)
    return key or "ground", kind, m["axis"].lower(), comp == "m"


def side_of(key: str) -> str | None:
    """'right' / 'left' when a family key names a side (``r``, ``L``, ``calcn_r``, ``right``), else None."""
    tokens = [t.lower() for t in re.split(r"[_\W]+", key) if t]
    if any(t in ("r", "right") for t in tokens):
        return "right"
    if any(t in ("l", "left") for t in tokens):
        return "left"
    return None


def _file_kind(header: dict, path: Path) -> str:
    text = f"{header.get('name', '')} {path.stem}".lower()
    tokens = set(re.split(r"[_\W]+", text))
    if "electromyography" in tokens or "emg" in tokens:
        return "emg"
    if "modelforces" in tokens or "so_force" in text or "forcereporter" in tokens:
        return "forces"
    if tokens & {"coordinates", "kinematics", "ik"}:
        return "coordinates"
    if "inverse dynamics" in text or "id" in tokens:
        return "dynamics"
    if header.get("inDegrees") is True:
        return "coordinates"
    return "other"


def column_unit(label: str, *, kind: str = "other") -> tuple[str, str, bool]:
    """``(signal name, unit, is_angle)`` for a non-GRF column of a file of ``kind``.

    Rules, first match wins:
      1. joint-reaction ``*_on_*_in_*_f[xyz]`` "N", ``_m[xyz]`` "N m", ``_p[xyz]`` "m";
      2. reported external forces ``*_F[xyz]`` "N", ``*_T[xyz]`` "N m", ``*_p[xyz]`` "m";
      3. inverse dynamics ``*_moment`` "N m", ``*_force`` "N";
      4. OpenSim 4 state paths ``/jointset/<joint>/<coord>/value|speed`` become ``<coord>`` / ``<coord>_speed``;
         ``/activation`` and ``.activation`` "1", ``fiber_length`` "m";
      5. speeds (``*_u``, ``/speed``): "m/s" for translations, else "rad/s";
      6. translations (``*_tx/_ty/_tz``): "m"; in a force file, their actuators "N";
      7. EMG files: ``emg_<name>`` unit "1"; force files (static optimisation): residuals FX..MZ,
         actuators of coordinates (names starting with a gait-model coordinate root) "N m", muscles "N";
         coordinate files: "rad" (angles);
      8. anything else "unknown".
    """
    low = label.lower()
    name = label
    m = re.match(r"^/(?:jointset|forceset)/[^/]+/(?P<coord>[^/]+)/(?P<what>value|speed|activation)$", label)
    if m is None:
        m = re.match(r"^/(?:forceset)/(?P<coord>[^/]+)/(?P<what>activation)$", label)
    if m is not None:
        coord, what = m["coord"], m["what"]
        if what == "activation":
            return f"{coord}_activation", "1", False
        translation = bool(_TRANSLATION_RE.search(coord))
        if what == "speed":
            return f"{coord}_speed", "m/s" if translation else "rad/s", not translation
        return coord, "m" if translation else "rad", not translation
    if re.search(r"_on_.+_in_.+_[fmp][xyz]$", low):
        return name, {"f": "N", "m": "N m", "p": "m"}[low[-2]], False
    if re.search(r"_[FT][xyz]$", label) or (kind == "forces" and re.search(r"_p[xyz]$", label)):
        return name, {"F": "N", "T": "N m", "p": "m"}[label[-2]], False
    if low.endswith("_moment"):
        return name, "N m", False
    if low.endswith("_force") and kind != "forces":
        return name, "N", False
    if low.endswith((".activation", "_activation")):
        return name, "1", False
    if low.endswith(".fiber_length"):
        return name, "m", False
    if low.endswith("_u") or low.endswith("_speed"):
        base = re.sub(r"_(u|speed)$", "", label)
        translation = bool(_TRANSLATION_RE.search(base))
        return name, "m/s" if translation else "rad/s", not translation
    if kind == "emg":
        return f"emg_{name}", "1", False
    if kind == "forces":
        if low in _RESIDUALS:
            return name, _RESIDUALS[low], False
        base = re.sub(r"_(coordact|reserve|actuator|act)$", "", low)
        if base.startswith(_COORD_ROOTS) or base != low:
            return name, "N" if _TRANSLATION_RE.search(base) else "N m", False
        return name, "N", False
    if _TRANSLATION_RE.search(low):
        return name, "m", False
    if kind == "coordinates":
        return name, "rad", True
    return name, "unknown", False


