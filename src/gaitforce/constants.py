"""Physical constants and the rules that decide what a stance is, in one place.

Every reader, the segmentation, the features, the physics layer and the stream take their defaults from here,
and :class:`gaitforce.signal.stances.StanceRules` (the subset that decides stance boundaries) is stored in
every dataset manifest and model bundle, so a bundle predicts with the rules it was trained with.
"""

from __future__ import annotations

#: Standard gravity (m s^-2): body weight (N) = mass (kg) x G.
G = 9.81

#: Vertical GRF (N) above which a plate is loaded: a stance runs while the force exceeds it.
STANCE_THRESHOLD_N = 20.0
#: A stance shorter than this (s) is rejected (a toe touch, a step half on the plate).
MIN_STANCE_S = 0.25
#: Force dropouts at most this long (s) inside a stance are merged into it (noise around the threshold).
MAX_DROPOUT_S = 0.02
#: Vertical GRF (N) below which a plate's centre of pressure is undefined (NaN): readers, filters, writers.
COP_THRESHOLD_N = 20.0
#: Vertical GRF (N) from which the CoP fixes the stance-frame origin (below ~80 N a plate's CoP is
#: noise-dominated: Grand Challenge JW GC4 og3, 13 cm behind the heel marker at 39 N, 2 cm at 100 N).
ORIGIN_MIN_FORCE_N = 80.0
#: Largest horizontal distance (m) between a foot and a plate's CoP for that foot to be on that plate.
FOOT_ON_PLATE_M = 0.3
#: Largest distance (s) between a heel-strike event and a force onset for the event to name the stance's side.
EVENT_TOLERANCE_S = 0.05


def body_weight(mass_kg: float | None) -> float | None:
    """Body weight in N of a mass in kg (None stays None)."""
    return None if mass_kg is None else float(mass_kg) * G
