"""The EMG-informed static optimisation criterion (``LabelSettings(criterion="emg")``; issue 15, item 4).

Minimise, per frame, ``sum_j a_j^3 + w * sum_{j tracked} (a_j - s_j e_j(t))^2`` under the same moment equality
and bounds as plain SO (the hybrid idea of CEINMS: Sartori et al. 2014, PLoS ONE 9:e93625; the muscles without
an electrode stay on ``sum a^3``). Here:

- ``e_j(t)``: the envelope of the electrode(s) that drive model muscle ``j`` (:data:`EMG_MUSCLES`), each
  electrode's envelope divided by its own maximum over the labelled window (so ``0 <= e <= 1``); a lumped
  muscle driven by two electrodes takes their mean. The Grand Challenge files' own linear envelopes
  (``emg_env_<muscle>``) are used; a trial with raw EMG only gets :func:`gaitforce.signal.emg.emg_envelope`.
  The files' MVC values are not used: they give EMG/MVC up to 3.6 (docs/physics.md), so they cannot set a scale.
- ``s_j`` (EMG-to-activation scale, ``0 <= s <= 1``): calibrated on the stance's **inverse-dynamics joint
  moments only** (never on a measured contact force), by :func:`calibrate_scales`: bounded least squares so that
  the tracked muscles at ``s_j e_j(t)`` plus the untracked muscles of the leg (free per frame, within their
  bounds) best reproduce the ID moments of the stance leg's muscle-driven coordinates over the stance, with a
  small ridge on the activations (``ridge``) so the split between them is unique.
- ``w``: ``LabelSettings.emg_weight``. Chosen on other subjects than the one reported (see
  ``benchmarks/physics_gc_emg.py``).

The scales are calibrated per labelled stance (one task = one stance in :func:`gaitforce.physics.label_dataset`),
unless the trial's ``meta['emg_scales']`` gives them (and ``meta['emg_norm']`` the envelope normalisers), e.g.
pooled over a subject's or a session's stances by the caller with :func:`stack_problems` and
:func:`calibrate_scales` (``benchmarks/physics_gc_emg.py --pooled``).

Electrodes to muscles. gait14dof22musc is lumped: ``hamstrings`` <- semimembranosus + biceps femoris (mean),
``vasti`` <- vastus medialis + lateralis, ``gastroc`` <- medial + lateral gastrocnemius, ``rect_fem`` <- rf,
``soleus``, ``tib_ant``, ``glut_max`` <- gmax, ``abd`` (gluteus medius + minimus) <- gmed, ``add`` <- adductor
magnus; no electrode for ``iliopsoas`` and ``bifemsh`` (short head: surface EMG of the biceps is the long
head's), and the file's tfl, peroneus and sartorius have no muscle in that model. Rajagopal 2015 one by one:
semimem, bflh <- bifem, vasmed, vaslat, recfem <- rf, gasmed <- medgas, gaslat <- latgas, tfl, tibant,
perlong <- peronl, soleus, addmag{Dist,Isch,Mid,Prox} <- addmagnus, glmax1-3 <- gmax, glmed1-3 <- gmed,
sart <- sartorius; the heads without an electrode (semiten, bfsh, vasint, glmin, iliacus, psoas, ...) are
untracked.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gaitforce.errors import GaitforceError, MissingChannelError

#: model -> muscle (one leg, no side suffix) -> electrode names (Grand Challenge spelling) whose normalised
#: envelopes (mean, if several) drive it.
EMG_MUSCLES: dict[str, dict[str, tuple[str, ...]]] = {
    "gait14dof22musc": {
        "hamstrings": ("semimem", "bifem"),
        "vasti": ("vasmed", "vaslat"),
        "rect_fem": ("rf",),
        "gastroc": ("medgas", "latgas"),
        "soleus": ("soleus",),
        "tib_ant": ("tibant",),
        "glut_max": ("gmax",),
        "abd": ("gmed",),
        "add": ("addmagnus",),
    },
    "rajagopal2015": {
        "semimem": ("semimem",), "bflh": ("bifem",), "vasmed": ("vasmed",), "vaslat": ("vaslat",),
        "recfem": ("rf",), "gasmed": ("medgas",), "gaslat": ("latgas",), "tfl": ("tfl",), "tibant": ("tibant",),
        "perlong": ("peronl",), "soleus": ("soleus",),
        **{f"addmag{p}": ("addmagnus",) for p in ("Dist", "Isch", "Mid", "Prox")},
        **{f"glmax{i}": ("gmax",) for i in (1, 2, 3)},
        **{f"glmed{i}": ("gmed",) for i in (1, 2, 3)},
        "sart": ("sartorius",),
    },
}

#: Ridge (relative to the moments' mean square) on the activations of the calibration's least squares.
RIDGE = 1e-3


@dataclass(frozen=True)
class EMGInput:
    """Envelopes of one trial's electrodes on its frames, and the leg they are on ('r'/'l')."""

    time: np.ndarray  # (T,) s
    envelopes: dict  # electrode name -> (T,) envelope, any unit (normalised here)
    side: str
    #: electrode -> the value that maps to 1 (default: the envelope's maximum over the labelled window)
    norm: dict | None = None
    #: actuator name (e.g. 'gastroc_r') -> EMG-to-activation scale given by the caller (e.g. calibrated on all
    #: of a subject's stances: :func:`calibrate_scales` on their stacked problems); None: calibrated per stance
    scales: dict | None = None


def from_trial(trial, side: str) -> EMGInput:
    """The trial's EMG envelopes: the file's own (``emg_env_<name>`` signals), else envelopes of its raw EMG.
    A trial without EMG is a one-line error (the EMG criterion has nothing to track: use ``criterion='a3'``)."""
    env = {k[len("emg_env_"):]: np.asarray(v, float) for k, v in trial.signals.items() if k.startswith("emg_env_")}
    if not env:
        if not trial.emg_names:
            raise MissingChannelError("criterion 'emg' needs EMG and the trial has none (use criterion='a3')",
                                      source=trial.source)
        from gaitforce.signal.emg import emg_envelope

        done = emg_envelope(trial)
        env = {n: np.asarray(done.signals[f"emg_{n}"], float) for n in trial.emg_names}
    norm, scales = trial.meta.get("emg_norm"), trial.meta.get("emg_scales")
    return EMGInput(time=np.asarray(trial.time, float), envelopes=env, side=side,
                    norm=None if norm is None else {k: float(v) for k, v in norm.items()},
                    scales=None if scales is None else {k: float(v) for k, v in scales.items()})


def muscle_targets(emg: EMGInput, actuators, time, model: str):
    """(columns, targets (T, k), mapping): the actuator columns of the tracked muscles of ``emg.side`` and their
    normalised envelopes on ``time`` (mean of the muscle's electrodes, each divided by its maximum over
    ``time``). Electrodes that are absent, flat or not finite over the window are skipped; a trial none of whose
    electrodes maps to the model is an error."""
    mapping = EMG_MUSCLES.get(model)
    if mapping is None:
        raise GaitforceError(f"criterion 'emg': no electrode-to-muscle map for model {model}")
    norm = {}
    time = np.asarray(time, float)
    half = 0.5 * float(np.median(np.diff(emg.time))) if len(emg.time) > 1 else 0.0
    if time.min() < emg.time[0] - half or time.max() > emg.time[-1] + half:
        raise GaitforceError(f"criterion 'emg': the EMG spans {emg.time[0]:.3f}-{emg.time[-1]:.3f} s, the "
                             f"stance {time.min():.3f}-{time.max():.3f} s")
    for name, env in emg.envelopes.items():
        # SO's times are the trial's frames as written to ik.mot (rounded): the ends are held, not NaN
        y = np.interp(time, emg.time, np.asarray(env, float))
        peak = (np.nanmax(y) if np.isfinite(y).any() else np.nan) if not emg.norm or name not in emg.norm \
            else emg.norm[name]
        if not np.isfinite(y).all() or not (np.isfinite(peak) and peak > 0):
            continue
        norm[name] = np.clip(y / peak, 0.0, 1.0)
    cols, targets, used = [], [], {}
    index = {a: j for j, a in enumerate(actuators)}
    for muscle, electrodes in mapping.items():
        have = [e for e in electrodes if e in norm]
        col = index.get(f"{muscle}_{emg.side}")
        if not have or col is None:
            continue
        cols.append(col)
        targets.append(np.mean([norm[e] for e in have], axis=0))
        used[f"{muscle}_{emg.side}"] = have
    if not cols:
        raise GaitforceError(f"criterion 'emg': none of the electrodes ({', '.join(sorted(emg.envelopes))}) "
                             f"drives a muscle of {model}")
    return np.array(cols), np.stack(targets, axis=1), used


def calibrate_scales(problem, cols, targets, side: str, *, ridge: float = RIDGE):
    """EMG-to-activation scales ``s`` (k,) in [0, 1] from the inverse-dynamics moments only.

    Rows: the stance leg's coordinates that carry a reserve (muscle-driven, ``reserve_<coord>`` ending in
    ``_<side>``). Unknowns: ``s`` and, per frame, the activations of the leg's untracked muscles with a moment
    arm on those rows (within their bounds). Minimise ``sum_t |A_trk(t) (s * e(t)) + A_unt(t) x(t) - tau(t)|^2
    + ridge * mean(tau^2) * (|s|^2 + |x|^2)`` (bounded linear least squares). Returns ``(s, info)``."""
    from scipy.optimize import lsq_linear

    acts = list(problem.actuators)
    rows = [i for i, c in enumerate(problem.coordinates)
            if c.endswith(f"_{side}") and f"reserve_{c}" in acts]
    if not rows:
        raise GaitforceError(f"criterion 'emg': no muscle-driven coordinate of the {side} leg to calibrate on")
    A = problem.A[:, rows, :]  # (T, r, n)
    tau = problem.demand[:, rows]  # (T, r)
    T, r, n = A.shape
    tracked = set(int(c) for c in cols)
    crosses = (np.abs(A).max(axis=(0, 1)) > 1e-6 * max(np.abs(A).max(), 1e-12))
    untracked = [j for j in range(n) if problem.muscle[j] and crosses[j] and j not in tracked]
    k, u = len(cols), len(untracked)
    # columns: s (k), then x[t, j] for each frame t and untracked muscle j (block diagonal in t: sparse when large)
    from scipy import sparse

    y = tau.reshape(-1)
    lam = np.sqrt(ridge * max(np.mean(y ** 2), 1e-12))
    left = (A[:, :, cols] * targets[:, None, :]).reshape(T * r, k)
    blocks = sparse.block_diag([A[t][:, untracked] for t in range(T)], format="csr") if u else None
    nv = k + T * u
    if nv <= 400:
        M = np.zeros((T * r, nv))
        M[:, :k] = left
        if u:
            M[:, k:] = blocks.toarray()
        M = np.vstack([M, lam * np.eye(nv)])
        method = "bvls"
    else:
        M = sparse.vstack([sparse.hstack([sparse.csr_matrix(left), blocks]), lam * sparse.identity(nv)],
                          format="csr")
        method = "trf"
    y = np.r_[y, np.zeros(nv)]
    lo = np.r_[np.zeros(k), np.tile(problem.lower[untracked], T)] if u else np.zeros(k)
    hi = np.r_[np.ones(k), np.tile(problem.upper[untracked], T)] if u else np.ones(k)
    fit = lsq_linear(M, y, bounds=(lo, hi), method=method, lsmr_tol="auto")
    s = fit.x[:k]
    pred = np.einsum("trk,tk->tr", A[:, :, cols], s * targets)
    if u:
        x = fit.x[k:].reshape(T, u)
        pred = pred + np.einsum("tru,tu->tr", A[:, :, untracked], x)
    rms = float(np.sqrt(np.mean((pred - tau) ** 2)))
    info = {"rows": [problem.coordinates[i] for i in rows], "untracked": [acts[j] for j in untracked],
            "moment_rms_Nm": round(rms, 3), "id_rms_Nm": round(float(np.sqrt(np.mean(tau ** 2))), 3)}
    return s, info


def tracking(problem, emg: EMGInput, settings):
    """``(track_weight (n,), track_target (T, n), info)`` for :func:`so_batch.solve` on ``problem``."""
    cols, targets, used = muscle_targets(emg, problem.actuators, problem.time, settings.model)
    if emg.scales is None:
        s, info = calibrate_scales(problem, cols, targets, emg.side)
    else:  # given (pooled over stances by the caller); a tracked muscle without one is an error
        missing = [problem.actuators[c] for c in cols if problem.actuators[c] not in emg.scales]
        if missing:
            raise GaitforceError(f"criterion 'emg': no given EMG scale for {', '.join(missing)}")
        s = np.array([emg.scales[problem.actuators[c]] for c in cols])
        info = {"given_scales": True}
    n = len(problem.actuators)
    w = np.zeros(n)
    w[cols] = float(settings.emg_weight)
    e = np.zeros((len(problem.time), n))
    e[:, cols] = np.clip(targets * s, problem.lower[cols], problem.upper[cols])
    info = {**info, "weight": float(settings.emg_weight), "electrodes": used,
            "scales": {problem.actuators[c]: round(float(v), 4) for c, v in zip(cols, s)}}
    return w, e, info


def stack_problems(problems):
    """Several stances' SO problems (same model, same actuators and coordinates) as one, frames one after the
    other, so :func:`calibrate_scales` fits one set of scales to all of them."""
    from gaitforce.physics.so_batch import SOProblem

    first = problems[0]
    for p in problems[1:]:
        if list(p.actuators) != list(first.actuators) or list(p.coordinates) != list(first.coordinates):
            raise GaitforceError("criterion 'emg': stances with different actuators or coordinates cannot pool")
    cat = lambda name: np.concatenate([getattr(p, name) for p in problems], axis=0)  # noqa: E731
    return SOProblem(time=cat("time"), actuators=list(first.actuators), muscle=first.muscle,
                     coordinates=list(first.coordinates), arms=cat("arms"), gain=cat("gain"), demand=cat("demand"),
                     lower=first.lower, upper=first.upper)
