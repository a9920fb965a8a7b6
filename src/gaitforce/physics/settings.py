"""Settings of the physics labeller (stored with every result and part of its cache key)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from gaitforce.physics.split import DEFAULT_INTERCONDYLAR_DISTANCE


#: Maximum isometric force rules (``LabelSettings.strength``).
STRENGTH_RULES = ("generic", "handsfield2014")


@dataclass(frozen=True)
class LabelSettings:
    """Options of :func:`gaitforce.physics.label_trial`.

    ``lowpass_hz``: cutoff of OpenSim's zero-lag low-pass on IK coordinates before ID and SO;
    ``ik_accuracy``: IK solver accuracy; ``reserve_optimal_force``: N m of the reserve actuator on each
    muscle-driven coordinate (small = expensive, so muscles do the work); ``free_optimal_force``: N or N m of
    the actuators on coordinates no muscle crosses (pelvis residuals, hip rotation, lumbar);
    ``intercondylar_distance``: m, for the medial/lateral split; ``intercondylar_ratio``: when set (default 0.45),
    the split's distance is this fraction of the subject's measured knee (epicondyle) width instead: the
    tibial plateau spans about 0.9 of the epicondylar width and each compartment's contact centre lies about
    a quarter of the plateau from the midline, so d ~ 0.45 x width (about 45 mm for a 100 mm knee);
    ``centre_lumped_heads``: move the knee-crossing attachments of the model's lumped hamstrings and
    gastrocnemius to the force-weighted mid-line of the heads they stand for (see ``model.LUMPED_HEADS``); ``side``: knee to label, 'stance' (the
    trial's ``meta['side']`` or the limb bearing most load), 'right' or 'left'; ``muscle_physiology``: True (default)
    bounds each muscle by its force-length-velocity capacity; False makes SO minimise sum (F/Fmax)^3 with
    0 <= F <= Fmax;
    ``keep_files``: keep the OpenSim inputs/outputs and setup XML beside the results;
    ``so``: the static optimisation solver, 'batched' (default: :mod:`gaitforce.physics.so_batch`, all frames of
    a stance at once, the same problem as OpenSim's) or 'opensim' (OpenSim's ``StaticOptimization``, the
    reference: 64x slower on rajagopal2015, 18.6x on gait14dof22musc, CPU s in one run of benchmarks/so_speed.py);
    ``model``: the musculoskeletal model, a name in :data:`gaitforce.physics.model.MODELS` ('rajagopal2015', the
    default since issue 15's held-out choice, 40 muscles a leg; 'gait14dof22musc', lumped muscles, about 10x faster);
    ``grf_lowpass``: low-pass the ground reactions written for OpenSim (forces, free moment; CoP only where the
    plate carries more than ``constants.COP_THRESHOLD_N``) with the same zero-lag Butterworth cutoff
    ``lowpass_hz`` as the coordinates (Kristianslund et al. 2012: mismatched cutoffs make impact artefacts in
    joint moments; the default since the held-out choice of issue 15 preferred it, see docs/physics.md); ``pad_s``: label the stance with up to this many seconds of the trial before and after it
    (where the trial has those frames) and cut the stance after, so the filters' edges fall outside it;
    ``strength``: 'generic' keeps the model's maximum isometric forces, 'handsfield2014' scales them to the subject
    (see :func:`gaitforce.physics.model.strength_factor`);
    ``criterion``: the static optimisation cost, 'a3' (default: sum of cubed activations) or 'emg' (sum a^3 +
    ``emg_weight`` x sum over the muscles with an electrode of (a - s e(t))^2, scales s calibrated on the
    inverse-dynamics moments: :mod:`gaitforce.physics.emg_so`; batched SO only; a trial without EMG is an error,
    never a silent fall-back to 'a3');
    ``emg_weight``: ``w`` of the EMG criterion;
    ``muscle_curves``: the muscles' force-length-velocity curves in SO (rigid tendon either way): 'degroote'
    (default: every muscle replaced by OpenSim's DeGroote-Fregly 2016 muscle, its fixed curves) or 'model'
    (the model file's own muscle class and curve parameters kept, e.g. Rajagopal 2015's Millard 2012 muscles
    with their widened active force-length curve, 0.25-1.9 optimal lengths; see docs/physics.md, "GC5: what the
    difference is made of");
    ``knee_muscle_strength``: factor on the max isometric force of every muscle that crosses a knee joint (its
    path's end bodies on either side of the knee in the body tree: :mod:`gaitforce.physics.strength`; the GC5
    reference model used 0.6 on its left knee); 1.0: unchanged (the default: in the held-out grid of issue 15
    the rotations chose 0.3-0.4, no model and factor in a majority, at the grid's edge; docs/physics.md).
    """

    lowpass_hz: float = 6.0
    ik_accuracy: float = 1e-5
    reserve_optimal_force: float = 1.0
    free_optimal_force: float = 1000.0
    intercondylar_distance: float = DEFAULT_INTERCONDYLAR_DISTANCE
    intercondylar_ratio: float | None = 0.45
    centre_lumped_heads: bool = True
    side: str = "stance"
    muscle_physiology: bool = True
    keep_files: bool = True
    model: str = "rajagopal2015"  # issue 15: favoured by the held-out choice (docs/physics.md)
    so: str = "batched"
    # -- issue 15 (items 2, 3): consistent filtering, padded windows, subject-scaled strength --
    grf_lowpass: bool = True  # GRF, CoP (where loaded), free moment through the coordinates' lowpass_hz
    pad_s: float = 0.2  # s of the trial labelled on each side of the stance (where it has them), cut after
    strength: str = "generic"  # 'generic' or 'handsfield2014' (Fmax scaled by muscle volume / fibre length)
    criterion: str = "a3"
    emg_weight: float = 1.0
    muscle_curves: str = "degroote"
    knee_muscle_strength: float = 1.0

    def __post_init__(self):
        if self.side not in ("stance", "right", "left"):
            raise ValueError(f"side must be 'stance', 'right' or 'left', not {self.side!r}")
        if self.so not in ("batched", "opensim"):
            raise ValueError(f"so must be 'batched' or 'opensim', not {self.so!r}")
        if self.strength not in STRENGTH_RULES:
            raise ValueError(f"strength must be one of {', '.join(STRENGTH_RULES)}, not {self.strength!r}")
        if not self.pad_s >= 0:
            raise ValueError(f"pad_s must be >= 0 s, not {self.pad_s!r}")
        if self.criterion not in ("a3", "emg"):
            raise ValueError(f"criterion must be 'a3' or 'emg', not {self.criterion!r}")
        if self.criterion == "emg" and self.so != "batched":
            raise ValueError("criterion 'emg' needs so='batched'")
        if not (self.emg_weight >= 0 and self.emg_weight < float("inf")):
            raise ValueError(f"emg_weight must be finite and >= 0, not {self.emg_weight!r}")
        if self.muscle_curves not in ("degroote", "model"):
            raise ValueError(f"muscle_curves must be 'degroote' or 'model', not {self.muscle_curves!r}")
        if not (0 < self.knee_muscle_strength < float("inf")):
            raise ValueError(f"knee_muscle_strength must be finite and > 0, not {self.knee_muscle_strength!r}")
        from gaitforce.physics.model import MODELS

        if self.model not in MODELS:
            raise ValueError(f"model must be one of {', '.join(MODELS)}, not {self.model!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "LabelSettings":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
