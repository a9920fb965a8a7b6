"""Targets per frame: measured knee forces as the file gives them, and EMG envelopes of the paper's 8 muscles.

EMG targets ``emg_<muscle>`` (unit 1) on the kinematic frames of the whole trial: a file's own envelopes
(``emg_env_<name>`` signals, the Grand Challenge .mat) or :func:`~gaitforce.signal.emg.emg_envelope` of the raw
EMG, divided by **the trial maximum** (the paper's normalisation, ``emg_normalise='max'``, the default) or,
as a stated option, by the file's MVC value (``'mvc'``: a file without an MVC for that muscle is an error for
that target, never a silent switch to the trial maximum, so one column never mixes two scales). The
normalisation is recorded in the dataset manifest. Names map through ``emg_map`` (canonical -> lab names);
``semiten`` takes the medial hamstrings electrode, ``semimem`` in the Grand Challenge files (surface EMG cannot
separate semitendinosus from semimembranosus). A muscle whose channel is missing, flat or empty gets no
target (noted per source in the manifest as ``target_notes``).
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from gaitforce.errors import GaitforceError
from gaitforce.signal.emg import emg_envelope
from gaitforce.trial import Trial

#: The paper's 8 muscles (canonical names) and the lab names that feed them, tried in order.
DEFAULT_EMG_MAP = {
    "glut_med": ["gmed", "glut_med", "GluMed", "gluteus_medius"],
    "rect_fem": ["rf", "rect_fem", "RecFem", "rectus_femoris"],
    "vas_lat": ["vaslat", "vas_lat", "VasLat", "vastus_lateralis"],
    "vas_med": ["vasmed", "vas_med", "VasMed", "vastus_medialis"],
    "bic_fem": ["bifem", "bifeml", "bic_fem", "BFLH", "biceps_femoris"],
    "semiten": ["semiten", "semimem", "MedHam", "semitendinosus"],
    "soleus": ["soleus", "sol", "Soleus"],
    "tib_ant": ["tibant", "tib_ant", "TibAnt", "tibialis_anterior"],
}
KNEE_TARGETS = {"knee_medial": "N", "knee_lateral": "N", "knee_total": "N"}


def emg_targets(trial: Trial, settings,
                 wanted: Iterable[str] | None = None) -> tuple[Trial, str | None, list[str]]:
    """The trial with ``emg_<canonical>`` signals, how they were normalised (None: no EMG), and notes.

    Only the canonical muscles whose ``emg_<muscle>`` is in ``wanted`` (default: every muscle of
    ``settings.emg_map``) are built. A muscle whose channel is missing, flat, empty or has no positive
    maximum is left out and named in the notes: a target that cannot be measured is absent, never an error.
    """
    muscles = [c for c in settings.emg_map if wanted is None or f"emg_{c}" in set(wanted)]
    out, how, notes = {}, None, []
    if not muscles:
        return trial, None, notes
    file_env = {k[len("emg_env_"):]: v for k, v in trial.signals.items() if k.startswith("emg_env_")}
    mvc = dict(trial.meta.get("mvc") or {})
    if file_env:
        for canon in muscles:
            name = next((n for n in settings.emg_map[canon] if n in file_env), None)
            if name is None:
                continue
            env = np.asarray(file_env[name], float)
            if settings.emg_normalise == "mvc":
                if not mvc.get(name, 0) > 0:
                    notes.append(f"emg_{canon} left out: the file has no MVC value for {name} (emg_normalise='mvc')")
                    continue
                scale, how = mvc[name], "file envelope / MVC"
            else:
                scale = np.nanmax(env) if np.isfinite(env).any() else np.nan
                how = "file envelope / trial maximum"
            if not (np.isfinite(scale) and scale > 0):
                notes.append(f"emg_{canon} left out: envelope {name} is flat or empty")
                continue
            out[f"emg_{canon}"] = (env / scale, "1")
    elif trial.emg_names and trial.emg.shape[0] > 1:
        how = "emg_envelope / " + ("MVC" if settings.emg_normalise == "mvc" else "trial maximum")
        for canon in muscles:
            name = next((n for n in settings.emg_map[canon] if n in trial.emg_names), None)
            if name is None:
                continue
            by_mvc = None
            if settings.emg_normalise == "mvc":
                if not mvc.get(name, 0) > 0:
                    notes.append(f"emg_{canon} left out: the file has no MVC value for {name} (emg_normalise='mvc')")
                    continue
                by_mvc = {name: mvc[name]}
            k = trial.emg_names.index(name)
            one = trial.replace(emg=trial.emg[:, [k]], emg_names=(name,))
            try:
                env = emg_envelope(one, window=settings.emg_window, mvc=by_mvc).signals[f"emg_{name}"]
            except GaitforceError as err:
                notes.append(f"emg_{canon} left out: {err.message}")
                continue
            out[f"emg_{canon}"] = (env, "1")
    if not out:
        return trial, None, notes
    return trial.with_signals(note=f"EMG targets ({how}) for {', '.join(out)}", **out), how, notes


def unit_of(target: str) -> str:
    return KNEE_TARGETS.get(target, "1" if target.startswith("emg_") else "")
