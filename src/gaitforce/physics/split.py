"""Medial/lateral split of the tibiofemoral contact force by frontal-plane moment balance.

The knee of the model has one degree of freedom, so the joint reaction analysis returns, at the knee centre
and in the tibia's frame, the compressive force ``F`` along the tibial axis and the frontal-plane moment
``M`` that the joint (i.e. the condyles) must carry after the muscle forces are accounted for. Treating the
two condyles as point contacts ``d`` apart, symmetric about the knee centre, force and moment balance give
(Schipplein & Andriacchi 1991, J Orthop Res 9:113-119; Winby et al. 2009, J Biomech 42:2294-2300)::

    F_med = F/2 + M/d,   F_lat = F/2 - M/d        (M > 0 loads the medial side)

A compartment cannot pull: where a result is negative it is set to 0 and the whole ``F`` is carried by the
other compartment (lift-off).
"""

from __future__ import annotations

import numpy as np

#: Distance between the medial and lateral contact points, m (compartment centres about 20 mm either side
#: of the knee centre, as assumed in moment-balance splits; a setting, scaled nowhere).
DEFAULT_INTERCONDYLAR_DISTANCE = 0.040


def medial_lateral_split(total, moment, *, distance: float = DEFAULT_INTERCONDYLAR_DISTANCE):
    """(medial, lateral) contact force in N from the compressive force (N) and the medial-loading moment (N m)."""
    if distance <= 0:
        raise ValueError("intercondylar distance must be positive")
    total = np.asarray(total, dtype=float)
    moment = np.asarray(moment, dtype=float)
    medial = total / 2 + moment / distance
    lateral = total / 2 - moment / distance
    medial, lateral = np.where(lateral < 0, total, medial), np.where(lateral < 0, 0.0, lateral)
    medial, lateral = np.where(medial < 0, 0.0, medial), np.where(medial < 0, total, lateral)
    return medial, lateral
