"""OpenSim text formats: STO/MOT tables and TRC marker files, read into and written from :class:`Trial`.

Readers
-------
- :func:`read_sto_table` -> ``(DataFrame, header)``: any OpenSim storage file (``.sto``/``.mot``), header
  versions 1-3 and the older SIMM style (``datacolumns``/``datarows``/``range``), tab or whitespace separated.
- :func:`read_mot` -> :class:`Trial`: ground-reaction families become force plates, every other column a
  per-frame signal with a unit (rules in :func:`column_unit`); the time base is the file's own.
- :func:`read_trc` -> :class:`Trial`: markers in m, header fields taken from the file (never guessed),
  optionally merged with a GRF file resampled onto the marker frames.

Writers
-------
:func:`write_sto`, :func:`write_trc`, :func:`write_mot_grf` write files OpenSim 4.6 loads
(``TimeSeriesTable``, ``TimeSeriesTableVec3``, ``ExternalLoads``).

Conventions (stated once, applied everywhere here)
--------------------------------------------------
- Axes: OpenSim files are Y-up. A file is kept ``up_axis='y'`` unless the data clearly say otherwise:
  for markers, when the median per-frame marker spread along Z exceeds twice that along Y and Z is the
  largest spread; for GRF, when the loaded plates' median |Fz| exceeds three times their median |Fy|.
- Force sign: ``Trial.forces`` is the force *on the body*. A plate whose loaded vertical force is mostly
  negative (a raw "force on the plate" export) has its force and torque negated, and the step is recorded.
- Torques: a plate's torque columns are taken as the free moment about the CoP, as ExternalLoads applies
  them. When they are instead moments about the lab origin (they match ``p x F`` to within half their
  size on loaded samples, as AddBiomechanics' ``_m[xyz]`` columns do) the free moment ``T - p x F`` is used.
- Centre of pressure is NaN where the plate's vertical force is below ``cop_threshold`` (default 10 N).
"""

from gaitforce.io.columns import column_unit, side_of
from gaitforce.io.grf import merge_grf
from gaitforce.io.sto import read_mot, read_sto_table
from gaitforce.io.trc import find_grf_sibling, read_trc
from gaitforce.io.writers import write_mot_grf, write_sto, write_trc

__all__ = ["read_sto_table", "read_mot", "read_trc", "write_sto", "write_trc", "write_mot_grf", "column_unit",
           "side_of", "find_grf_sibling", "merge_grf"]
