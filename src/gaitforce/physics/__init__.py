"""Physics labels: internal forces from OpenSim 4.6 (scale -> IK -> ID -> static optimisation -> knee joint
reaction, split medial/lateral by moment balance). The only part of gaitforce that imports ``opensim``, and
only inside functions, so ``import gaitforce.physics`` works without it."""

from gaitforce.physics.label import (
           TARGETS,
           cache_key,
           label_dataset,
           label_trial,
           targets_from_tables,
)
from gaitforce.physics.settings import LabelSettings
from gaitforce.physics.split import medial_lateral_split

__all__ = ["TARGETS", "LabelSettings", "cache_key", "label_dataset", "label_trial", "medial_lateral_split",
           "targets_from_tables"]
