"""Batched static optimisation: OpenSim's ``StaticOptimization`` problem, solved for all frames of a stance at
once in numpy.

What OpenSim 4.6 solves per frame (``StaticOptimization`` + ``StaticOptimizationTarget``, as configured in
:func:`pipeline.static_optimisation_and_reaction`: model force set, activation exponent 3, muscle physiology
per ``LabelSettings.muscle_physiology``), and what this module reproduces:

- one control ``x_j`` per actuator of the model (every muscle, every reserve/residual coordinate actuator),
  bounded by the actuator's min/max control (muscles 0.01..1 here, coordinate actuators unbounded);
- actuator force ``x_j * g_j``: a coordinate actuator's optimal force, a muscle's
  ``calcInextensibleTendonActiveFiberForce(s, 1)`` (max isometric force x active force-length x
  force-velocity x cos(pennation) at the frame's fibre length and velocity, rigid tendon) with muscle
  physiology, else its max isometric force. SO *overrides* the muscle's actuation with that force, so its
  passive fibre force is not applied (and not added here either);
- equality of the resulting accelerations of every unconstrained coordinate with the kinematics', which is
  the same as equality of generalised forces on those coordinates, projected through the coordinate couplers
  (Rajagopal's patella follows the knee angle): ``sum_j N^T r_j x_j g_j = N^T tau_ID``;
- minimise ``sum |x_j|^3``.

Per frame we take from OpenSim (no tool run): the generalised force of a unit tension along every muscle path
(``GeometryPath.addInEquivalentForces`` + the system Jacobian transpose: the moment arm about every
coordinate), each muscle's capacity ``g_j`` and the coupler slopes; the demand ``tau_ID`` is the inverse
dynamics tool's output (``id.sto``). The states are formed as OpenSim's AnalyzeTool forms them: the IK
coordinates padded, IIR low-passed at ``settings.lowpass_hz`` and GCV-splined (degree 5) for the speeds.

The solver (:func:`solve`) is Newton's method on the Lagrange dual: for multipliers ``lam`` (one per
coordinate) each control minimises ``|x|^3 - x (A^T lam)_j`` in closed form (``x = sign(c) sqrt(|c|/3)``
clipped to its bounds), the dual gradient is the moment residual ``A x - b`` and its Hessian ``A D A^T``
(``D = dx/dc``), so one Newton step is one small (coordinates x coordinates) solve per frame, batched over the
frames, with a backtracking line search on the (convex) dual. It stops when every frame's moment residual is
below ``tol`` (N m). Frames are warm-started from solved neighbours: every ``stride``-th frame is solved
first (from a least-squares start), the others start from the interpolated multipliers of their neighbours.
"""

from __future__ import annotations

import time as _time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gaitforce.errors import GaitforceError


# -- the solver (numpy only) --------------------------------------------------------------------------------
@dataclass
class SOSolution:
    x: np.ndarray  # (T, n) controls (muscle activations, coordinate-actuator controls)
    y: np.ndarray  # (T, m) multipliers of the moment equality
    residual: np.ndarray  # (T,) max |A x - b| per frame, N m
    iterations: int  # interior-point iterations of the last (all-frame) pass
    converged: np.ndarray  # (T,) bool


#: Floor on |x| in the curvature p (p-1) |x|^(p-2) of |x|^p, which is 0 at x = 0 for p > 2 (an unbounded
#: reserve or residual with nothing to do): it keeps the Newton matrix regular and only shapes the steps.
X_FLOOR = 1e-6


def _ipm(A, b, lower, upper, p, x, y, mu0, tol, max_iter, w=None, e=None):
    """Primal-dual interior point (fraction to the boundary 0.995, centring 0.1) on every frame at once.
    ``w``/``e`` (T, n): the tracking term ``sum w (x - e)^2`` added to the cost (None: none)."""
    T, m, n = A.shape
    track = w is not None
    hl, hu = np.isfinite(lower), np.isfinite(upper)
    lo, up = np.where(hl, lower, 0.0), np.where(hu, upper, 0.0)
    x = np.where(hl, np.maximum(x, lo + 1e-3 * np.where(hu, up - lo, 1.0)), x)
    x = np.where(hu, np.minimum(x, up - 1e-3 * np.where(hl, up - lo, 1.0)), x)
    zl = np.where(hl, mu0 / np.where(hl, x - lo, 1.0), 0.0)
    zu = np.where(hu, mu0 / np.where(hu, up - x, 1.0), 0.0)
    nb = max(int(hl.sum() + hu.sum()), 1)
    it = 0
    done = np.zeros(T, bool)
    while it < max_iter:
        sl = np.where(hl, np.maximum(x - lo, 1e-14), 1.0)  # a rounding step may land on a bound
        su = np.where(hu, np.maximum(up - x, 1e-14), 1.0)
        g = p * np.abs(x) ** (p - 1) * np.sign(x)
        H = p * (p - 1) * np.maximum(np.abs(x), X_FLOOR) ** (p - 2)
        if track:  # + w (x - e)^2: gradient 2 w (x - e), curvature 2 w
            g, H = g + 2.0 * w * (x - e), H + 2.0 * w
        rd = g - np.einsum("tmn,tm->tn", A, y) - zl + zu
        rp = np.einsum("tmn,tn->tm", A, x) - b
        mu = ((zl * sl * hl).sum(-1) + (zu * su * hu).sum(-1)) / nb
        scale = 1.0 + np.maximum(np.abs(g).max(-1), np.abs(zl - zu).max(-1))  # optimality, relative
        done = (np.abs(rp).max(-1) <= tol) & (np.abs(rd).max(-1) <= 1e-8 * scale) & (mu <= 1e-10 * scale)
        if done.all():
            break
        it += 1
        mut = (0.1 * mu)[:, None]
        sig = H + zl / sl * hl + zu / su * hu
        r1 = -rd + np.where(hl, mut / sl - zl, 0.0) - np.where(hu, mut / su - zu, 0.0)
        M = np.einsum("tmn,tn,tkn->tmk", A, 1.0 / sig, A)
        rhs = -rp - np.einsum("tmn,tn->tm", A, r1 / sig)
        dy = np.linalg.solve(M + 1e-14 * np.einsum("tmm->t", M)[:, None, None] * np.eye(m), rhs[..., None])[..., 0]
        dx = (r1 + np.einsum("tmn,tm->tn", A, dy)) / sig
        dzl = np.where(hl, (mut - sl * zl - zl * dx) / sl, 0.0)
        dzu = np.where(hu, (mut - su * zu + zu * dx) / su, 0.0)
        alpha = np.ones(T)
        for s_, ds in ((sl, dx), (su, -dx), (zl, dzl), (zu, dzu)):
            mask = (ds < 0) & (hl if s_ is sl or s_ is zl else hu)
            ratio = np.where(mask, -0.995 * s_ / np.where(mask, ds, -1.0), np.inf)
            alpha = np.minimum(alpha, ratio.min(-1))
        alpha = np.where(done, 0.0, alpha)[:, None]
        x, y, zl, zu = x + alpha * dx, y + alpha * dy, zl + alpha * dzl, zu + alpha * dzu
    res = np.abs(np.einsum("tmn,tn->tm", A, x) - b).max(-1)
    return x, y, res, it, done


def solve(A, b, lower, upper, *, exponent: float = 3.0, tol: float = 1e-6, max_iter: int = 200,
          x0=None, y0=None, stride: int = 8, track_weight=None, track_target=None) -> SOSolution:
    """min sum_j |x_j|^exponent [+ sum_j w_j (x_j - e_j[t])^2] s.t. A[t] x[t] = b[t], lower <= x <= upper,
    for every frame t.

    ``A``: (T, m, n) generalised force per unit control; ``b``: (T, m); ``lower``/``upper``: (n,) (may be
    +-inf). ``tol``: N m on every row of every frame. Warm start: ``x0``/``y0`` (T, n)/(T, m), e.g. a previous
    solve; by default every ``stride``-th frame is solved first from a cold start and every frame then starts
    from the solution of the nearest solved frame before it (``stride=1``: all frames cold).
    ``track_weight`` ``w`` ((n,) or (T, n), >= 0; 0 for a control not tracked) and ``track_target`` ``e``
    ((T, n), e.g. EMG-derived activations; ignored where ``w`` is 0): the EMG-informed criterion
    (:mod:`gaitforce.physics.emg_so`). The cost stays convex, so the same interior point solves it; ``w = 0``
    is the plain ``sum |x|^exponent``."""
    A = np.asarray(A, dtype=float)
    b = np.asarray(b, dtype=float)
    T, m, n = A.shape
    lower = np.broadcast_to(np.asarray(lower, float), (n,)).copy()
    upper = np.broadcast_to(np.asarray(upper, float), (n,)).copy()
    p = float(exponent)
    w = e = None
    if track_weight is not None:
        w = np.broadcast_to(np.asarray(track_weight, float), (T, n)).copy()
        if (w < 0).any() or not np.isfinite(w).all():
            raise ValueError("tracking weights must be finite and >= 0")
        if track_target is None:
            raise ValueError("track_weight needs track_target")
        e = np.broadcast_to(np.asarray(track_target, float), (T, n))
        e = np.where(w > 0, e, 0.0)
        if not np.isfinite(e).all():
            raise ValueError("tracking targets must be finite where their weight is > 0")
    if x0 is None and stride > 1 and T > 2:
        keys = np.unique(np.r_[np.arange(0, T, stride), T - 1])
        xk, yk, _, _, _ = _ipm(A[keys], b[keys], lower, upper, p, np.zeros((len(keys), n)),
                               np.zeros((len(keys), m)), 1.0, tol, max_iter,
                               None if w is None else w[keys], None if e is None else e[keys])
        prev = np.searchsorted(keys, np.arange(T), side="right") - 1
        x0, y0, mu0 = xk[prev], yk[prev], 1e-4
    elif x0 is None:
        x0, y0, mu0 = np.zeros((T, n)), np.zeros((T, m)), 1.0
    else:
        mu0 = 1e-4
        y0 = np.zeros((T, m)) if y0 is None else y0
    x, y, res, it, done = _ipm(A, b, lower, upper, p, np.array(x0, float), np.array(y0, float), mu0, tol,
                               max_iter, w, e)
    return SOSolution(x=x, y=y, residual=res, iterations=it, converged=done & (res <= tol))


# -- the problem from OpenSim --------------------------------------------------------------------------------
@dataclass
class SOProblem:
    """One stance's static optimisation: ``A = arms * gain`` (generalised force per unit control on each
    unconstrained coordinate), ``demand`` (generalised forces the actuators must give), bounds."""

    time: np.ndarray  # (T,)
    actuators: list  # n names, the model's actuator order (as OpenSim's SO writes them)
    muscle: np.ndarray  # (n,) bool
    coordinates: list  # m unconstrained coordinates
    arms: np.ndarray  # (T, m, n): moment arm (m or 1) about each coordinate, coupler-projected
    gain: np.ndarray  # (T, n): force per unit control (muscle capacity, actuator optimal force)
    demand: np.ndarray  # (T, m)
    lower: np.ndarray
    upper: np.ndarray
    seconds: dict = field(default_factory=dict)

    @property
    def A(self) -> np.ndarray:
        return self.arms * self.gain[:, None, :]


def _states(model, coordinates_file: Path, lowpass_hz: float):
    """Time and q, u per model coordinate (radians/metres) as OpenSim's AnalyzeTool forms them from an IK
    file: padded by half its length, IIR low-passed, GCV-splined (degree 5), speeds from the spline."""
    import opensim as osim

    sto = osim.Storage(str(coordinates_file))
    times = osim.ArrayDouble()
    sto.getTimeColumn(times)
    t = np.array([times.get(i) for i in range(times.getSize())])
    if not sto.isInDegrees():
        model.getSimbodyEngine().convertRadiansToDegrees(sto)
    if lowpass_hz is not None and lowpass_hz >= 0:
        sto.pad(sto.getSize() // 2)
        sto.lowpassIIR(float(lowpass_hz))
    splines = osim.GCVSplineSet(5, sto)
    cs = model.getCoordinateSet()
    names = [cs.get(i).getName() for i in range(cs.getSize())]
    q = np.zeros((len(t), len(names)))
    u = np.zeros_like(q)
    arg = osim.Vector(1, 0.0)
    for j, name in enumerate(names):
        c = cs.get(name)
        if not splines.contains(name):
            q[:, j] = c.getDefaultValue()
            continue
        f = splines.get(name)
        k = 1.0 if c.getMotionType() == 2 else np.pi / 180  # 2: translational
        for i, ti in enumerate(t):
            value, slope = _value_and_slope(f, arg, float(ti))
            q[i, j] = value * k
            u[i, j] = slope * k
    return t, names, q, u


def _couplings(model, state, names):
    """(dependent, independent, function, scale) for each CoordinateCouplerConstraint (one independent each)."""
    import opensim as osim

    out = []
    cons = model.getConstraintSet()
    for i in range(cons.getSize()):
        c = cons.get(i)
        if not c.isEnforced(state):
            continue
        cc = osim.CoordinateCouplerConstraint.safeDownCast(c)
        if cc is None:
            raise GaitforceError(f"batched SO: constraint {c.getName()} ({c.getConcreteClassName()}) is not a "
                                 "coordinate coupler; use --so opensim")
        indep = cc.getIndependentCoordinateNames()
        if indep.getSize() != 1:
            raise GaitforceError(f"batched SO: coupler {c.getName()} has {indep.getSize()} independent "
                                 "coordinates (1 supported); use --so opensim")
        scale = cc.get_scale_factor() if hasattr(cc, "get_scale_factor") else 1.0
        out.append((names.index(cc.getDependentCoordinateName()), names.index(indep.get(0)), cc.getFunction(),
                    float(scale)))
    return out


def extract(model_path: Path, coordinates_file: Path, id_file: Path, settings) -> SOProblem:
    """The stance's SO problem from the finished model file, the IK coordinates and the ID output."""
    import opensim as osim

    from gaitforce.physics.pipeline import read_sto

    seconds = {}
    tic = _time.perf_counter()
    model = osim.Model(str(model_path))
    state = model.initSystem()
    seconds["load"] = _time.perf_counter() - tic

    tic = _time.perf_counter()
    t, names, q, u = _states(model, coordinates_file, settings.lowpass_hz)
    seconds["states"] = _time.perf_counter() - tic

    tic = _time.perf_counter()
    cs = model.getCoordinateSet()
    coords = [cs.get(n) for n in names]
    nu = state.getNU()
    uidx = []
    for c in coords:  # the mobility (u) index of each coordinate
        state.updU().setToZero()
        c.setSpeedValue(state, 1.0)
        uidx.append(int(np.argmax(np.abs(state.getU().to_numpy()))))
    uidx = np.array(uidx)
    free = [j for j, c in enumerate(coords) if not c.isConstrained(state)]
    couplers = _couplings(model, state, names)

    acts = model.getActuators()
    n = acts.getSize()
    act_names, muscle, lower, upper = [], np.zeros(n, bool), np.zeros(n), np.zeros(n)
    muscles, coord_acts = [], []  # (column, Muscle), (column, coordinate index, optimal force)
    for j in range(n):
        a = acts.get(j)
        act_names.append(a.getName())
        mus = osim.Muscle.safeDownCast(a)
        sa = osim.ScalarActuator.safeDownCast(a)
        if sa is None:
            raise GaitforceError(f"batched SO: actuator {a.getName()} is not scalar; use --so opensim")
        lower[j], upper[j] = sa.getMinControl(), sa.getMaxControl()
        if mus is not None:
            muscle[j] = True
            muscles.append((j, mus, mus.getGeometryPath(), mus.getMaxIsometricForce()))
            continue
        ca = osim.CoordinateActuator.safeDownCast(a)
        if ca is None:
            raise GaitforceError(f"batched SO: actuator {a.getName()} ({a.getConcreteClassName()}) is neither a "
                                 "muscle nor a coordinate actuator; use --so opensim")
        coord_acts.append((j, names.index(ca.get_coordinate()), ca.getOptimalForce()))

    T, nb = len(t), model.getNumBodies() + 1
    full = np.zeros((T, nu, n))  # generalised force per unit tension / per unit actuation, by u index
    gain = np.zeros((T, n))
    for j, k, fopt in coord_acts:
        full[:, uidx[k], j] = 1.0
        gain[:, j] = fopt
    N = np.zeros((T, nu, len(free)))  # du_full / du_free
    for col, k in enumerate(free):
        N[:, uidx[k], col] = 1.0
    matter = model.getMatterSubsystem()
    zero = osim.SpatialVec(osim.Vec3(0.0), osim.Vec3(0.0))
    physiology = bool(settings.muscle_physiology)
    arg = osim.Vector(1, 0.0)
    for i in range(T):
        for j, c in enumerate(coords):
            c.setValue(state, float(q[i, j]), False)
            c.setSpeedValue(state, float(u[i, j]))
        model.realizeVelocity(state)
        for dep, ind, fn, scale in couplers:
            if ind in free:
                N[i, uidx[dep], free.index(ind)] = scale * _value_and_slope(fn, arg, float(q[i, ind]))[1]
        for j, mus, path, fmax in muscles:
            gain[i, j] = mus.calcInextensibleTendonActiveFiberForce(state, 1.0) if physiology else fmax
            body = osim.VectorOfSpatialVec(nb, zero)
            mob = osim.Vector(nu, 0.0)
            path.addInEquivalentForces(state, 1.0, body, mob)
            gen = osim.Vector()
            matter.multiplyBySystemJacobianTranspose(state, body, gen)
            full[i, :, j] = gen.to_numpy() + mob.to_numpy()
    arms = np.einsum("tuf,tun->tfn", N, full)
    seconds["arms"] = _time.perf_counter() - tic

    tic = _time.perf_counter()
    id_table = read_sto(id_file)
    tau = np.zeros((T, nu))
    id_t = id_table["time"].to_numpy()
    for k, name in enumerate(names):
        col = next((f"{name}_{s}" for s in ("moment", "force") if f"{name}_{s}" in id_table), None)
        if col is not None:
            tau[:, uidx[k]] = np.interp(t, id_t, id_table[col].to_numpy())
    demand = np.einsum("tuf,tu->tf", N, tau)
    seconds["demand"] = _time.perf_counter() - tic
    return SOProblem(time=t, actuators=act_names, muscle=muscle, coordinates=[names[k] for k in free], arms=arms,
                     gain=gain, demand=demand, lower=lower, upper=upper, seconds=seconds)


def run_id_for_so(model_path: Path, ext_xml: Path, t0: float, t1: float, dt: float, work: Path, settings) -> Path:
    """Inverse dynamics for the batched SO, ``work/id_so.sto``: as :func:`pipeline.run_id`, but asked for one
    frame more. OpenSim's ID tool reports from one frame before the requested start to one frame before the
    requested end (checked on DM og1: its rows carry the right times, the first lies outside the IK file and
    the last IK frame is missing), so the last frame would otherwise have no demand."""
    from gaitforce.physics.pipeline import run_id

    run_id(model_path, work / "ik.mot", ext_xml, t0, t1 + dt, work, settings, name="id_so")
    return work / "id_so.sto"


def static_optimisation(model_path: Path, ext_xml: Path, t0: float, t1: float, work: Path, settings, *,
                        tol: float = 1e-6, emg=None) -> dict:
    """Batched SO of the stance in ``work`` (``ik.mot``): writes ``so_so_activation.sto`` and
    ``so_so_force.sto`` (the actuator columns OpenSim's SO writes, same names) and returns seconds per part
    (``id``, ``load``, ``states``, ``arms``, ``demand``, ``solve``, ``write``). Raises if a frame does not
    converge. ``emg``: an :class:`emg_so.EMGInput`, needed by ``settings.criterion == 'emg'`` (its calibration
    goes to ``work/emg_calibration.json``)."""
    from gaitforce.physics import files
    from gaitforce.physics.pipeline import read_sto

    work = Path(work)
    seconds = {}
    tic = _time.perf_counter()
    t_ik = read_sto(work / "ik.mot")["time"].to_numpy()
    dt = float(np.median(np.diff(t_ik))) if len(t_ik) > 1 else 0.01
    id_file = run_id_for_so(model_path, ext_xml, t0, t1, dt, work, settings)
    seconds["id"] = _time.perf_counter() - tic
    problem = extract(model_path, work / "ik.mot", id_file, settings)
    seconds.update(problem.seconds)
    tic = _time.perf_counter()
    track = {}
    if getattr(settings, "criterion", "a3") == "emg":  # the EMG-informed criterion (physics/emg_so.py)
        import json

        from gaitforce.physics import emg_so

        if emg is None:
            raise GaitforceError("criterion 'emg' needs the trial's EMG and none was given (use criterion='a3')")
        w, e, info = emg_so.tracking(problem, emg, settings)
        track = {"track_weight": w, "track_target": e}
        (work / "emg_calibration.json").write_text(json.dumps(info, indent=1))
    sol = solve(problem.A, problem.demand, problem.lower, problem.upper, exponent=3.0, tol=tol, **track)
    seconds["solve"] = _time.perf_counter() - tic
    if not sol.converged.all():
        bad = np.flatnonzero(~sol.converged)
        raise GaitforceError(f"batched SO did not converge at {len(bad)} frame(s) (first t = "
                             f"{problem.time[bad[0]]:.3f} s, moment residual {sol.residual[bad[0]]:.2g} N m)")
    tic = _time.perf_counter()
    force = sol.x * problem.gain
    files.write_mot(work / "so_so_activation.sto", problem.time,
                    {a: sol.x[:, j] for j, a in enumerate(problem.actuators)}, name="so_activation")
    files.write_mot(work / "so_so_force.sto", problem.time,
                    {a: force[:, j] for j, a in enumerate(problem.actuators)}, name="so_force")
    seconds["write"] = _time.perf_counter() - tic
    seconds["frames"] = len(problem.time)
    seconds["iterations"] = sol.iterations
    seconds["max_residual"] = float(sol.residual.max())
    return seconds


#: Step (s for the coordinate splines, rad or m for the couplers) of the central differences in
#: :func:`_value_and_slope`.
DERIVATIVE_STEP = 1e-5


def _value_and_slope(fn, arg, x: float) -> tuple[float, float]:
    """Value and first derivative of a one-argument OpenSim Function at ``x``, the derivative by central
    differences of ``calcValue`` (the models' splines are smooth: error ~1e-9). ``Function.calcDerivative``
    takes a ``std::vector<int>`` whose SWIG type another SWIG-wrapped package of the process (ezc3d) may have
    registered first, which made the call fail with a TypeError depending on import order; ``calcValue`` takes
    a SimTK Vector only."""
    h = DERIVATIVE_STEP
    arg.set(0, x + h)
    fp = fn.calcValue(arg)
    arg.set(0, x - h)
    fm = fn.calcValue(arg)
    arg.set(0, x)
    return fn.calcValue(arg), (fp - fm) / (2 * h)
