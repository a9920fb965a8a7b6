"""Batched static optimisation: OpenSim's ``StaticOptimization`` problem, solved for all frames of a stance at
once in numpy.

What OpenSim 4.6 solves per frame (``StaticOptimization`` + ``StaticOptimizationTarget``, as configured in
:func:`pipeline.static_optimisation_and_reaction`: model force set, activation exponent 3, muscle physiology
per ``LabelSettings.muscle_physiology``), and what this module reproduces:

- one control ``x_j`` per actuator of the model (every muscle, every reserve/residual coordinate actuator),
  bounded by the actuator's min/max control (muscles 0.01..1 here, coordinate actuators unbounded);
- actuator force ``x_j * g_j``: a coordinate actuator's optimal force, a muscle's
  ``calcInextensibleTendonActiveFiberForce(s, 1)`` (DeGroote-Fregly 2016, rigid tendon: max isometric force x
  active force-length x force-velocity multipliers at the frame's fibre length and velocity; no
  cos(pennation) factor, checked against OpenSim) with muscle physiology, else its max isometric force. SO
  *overrides* the muscle's actuation with that force, so its passive fibre force is not applied (and not
  added here either);
- equality of the resulting accelerations of every unconstrained coordinate (locked and coupled coordinates
  excluded) with SO's target accelerations, which is the same as equality of generalised forces on those
  coordinates, projected through the coordinate couplers (Rajagopal's patella follows the knee angle):
  ``sum_j N^T r_j x_j g_j = N^T tau``, ``tau`` the inverse dynamics at those accelerations;
- minimise ``sum |x_j|^3``.

Taken from OpenSim without a tool run (:func:`extract`), one model in one loop over the frames:

- the states as OpenSim's AnalyzeTool and SO form them (:func:`_states`): the IK coordinates in radians,
  padded, IIR low-passed at ``settings.lowpass_hz``; speeds and target accelerations from natural quintic
  splines (what OpenSim's GCV splines are here); coupled coordinates from their coupler function;
- the demand ``tau``: ``InverseDynamicsSolver`` at those states and accelerations, the model's external loads
  applied (``ext_xml``, the ones the route's ID tool applies) and the actuators not applying force, as the ID
  tool excludes them (matches the ID tool's ``id.sto`` to ~0.002 N m on the marker, one-leg and
  given-kinematics routes);
- moment arms (the generalised force of a unit tension along every muscle path:
  ``GeometryPath.addInEquivalentForces`` + the system Jacobian transpose) every ``ARM_STRIDE``-th frame,
  interpolated between (cubic in time); muscle capacities from OpenSim at those key frames and from the same
  DeGroote-Fregly formula in between (:func:`_capacities_between_keys`), OpenSim's every frame for a muscle
  where the formula does not reproduce OpenSim at the keys.

The solver (:func:`solve`) is a primal-dual interior point method on all frames at once: one small
(coordinates x coordinates) Newton system per frame and iteration, fraction-to-the-boundary steps; it stops
when every frame's moment residual is below ``tol`` (N m) and the optimality conditions hold. Every
``stride``-th frame is solved first from a cold start; the others start from the solved frame before them.
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


def _column(sto, name) -> np.ndarray:
    """One column of an OpenSim Storage as a numpy array."""
    import opensim as osim

    arr = osim.ArrayDouble()
    sto.getDataColumn(name, arr, -np.inf)  # the default start time is 0: a padded file has earlier rows
    return arr.getAsVector().to_numpy().copy()


def _states(model, coordinates_file: Path, lowpass_hz: float):
    """Time and q, u, u-dot per model coordinate (radians/metres) at the frames of an IK file, as OpenSim's
    AnalyzeTool and StaticOptimization form them: the file converted to radians (rotational coordinates only:
    IK writes a *coupled* coordinate such as Rajagopal's ``knee_angle_r_beta`` in radians even in a file in
    degrees), padded by half its length, IIR low-passed (OpenSim's ``Storage``); q the filtered values, u the
    derivative of their GCV spline (degree 5), u-dot the derivative of a GCV spline of u (SO's target
    accelerations). Coordinates the file lacks sit at their default value, at rest.

    OpenSim's ``GCVSplineSet`` (error variance 0) is the natural interpolating spline of degree 5 (3rd and 4th
    derivatives zero at both ends): :func:`natural_quintic_derivative` computes the same (to ~1e-12, tested)
    for all columns at once, ~100x faster than two ``GCVSplineSet`` fits and evaluations."""
    import opensim as osim

    sto = osim.Storage(str(coordinates_file))
    times = osim.ArrayDouble()
    sto.getTimeColumn(times)
    t = times.getAsVector().to_numpy().copy()
    if sto.isInDegrees():
        model.getSimbodyEngine().convertDegreesToRadians(sto)
    if lowpass_hz is not None and lowpass_hz >= 0:
        sto.pad(sto.getSize() // 2)
        sto.lowpassIIR(float(lowpass_hz))
    knots = osim.ArrayDouble()
    sto.getTimeColumn(knots)
    knots = knots.getAsVector().to_numpy().copy()
    if len(knots) < 6:  # a quintic spline needs 6 points (OpenSim's GCV spline of degree 5 too)
        raise GaitforceError(f"{coordinates_file}: {len(t)} frame(s) are too few for the splines of static "
                             "optimisation (6 needed)")
    rows = np.clip(np.searchsorted(knots, t - 1e-6), 0, len(knots) - 1)
    if np.abs(knots[rows] - t).max() > 1e-6:
        raise GaitforceError(f"{coordinates_file}: the filtered coordinates lost the file's frame times")
    labels = sto.getColumnLabels()
    have = {labels.get(i) for i in range(labels.getSize())}
    cs = model.getCoordinateSet()
    names = [cs.get(i).getName() for i in range(cs.getSize())]
    cols = [j for j, name in enumerate(names) if name in have]
    values = np.stack([_column(sto, names[j]) for j in cols], axis=1)
    speeds = natural_quintic_derivative(knots, values)
    accelerations = natural_quintic_derivative(knots, speeds)
    q = np.array([[cs.get(n).getDefaultValue() for n in names]] * len(t))
    u, udot = np.zeros_like(q), np.zeros_like(q)
    q[:, cols], u[:, cols], udot[:, cols] = values[rows], speeds[rows], accelerations[rows]
    return t, names, q, u, udot


def natural_quintic_derivative(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """First derivative at the knots ``x`` of the natural quintic interpolating spline through ``y`` (one
    column per signal): what OpenSim's ``GCVSplineSet(5, storage).constructStorage(1)`` gives."""
    from scipy.interpolate import make_interp_spline

    zero = np.zeros(y.shape[1:])
    natural = [(3, zero), (4, zero)]
    return make_interp_spline(x, y, k=5, bc_type=(natural, natural)).derivative(1)(x)


def _couplings(model, state, names):
    """(dependent, independent, function, scale) for each CoordinateCouplerConstraint (one independent each).
    The function takes the independent coordinate in radians (metres): OpenSim evaluates it on the state's
    q."""
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


def _demand_model(model_path: Path, ext_xml: Path | None):
    """The model as OpenSim's inverse dynamics tool runs it: the external loads of ``ext_xml`` added, muscles
    and other actuators not applying force (the tool's excluded groups 'Muscles' and 'Actuators'); every other
    force (e.g. gait14dof22musc's coordinate limit forces) applies, as in SO. Paths and muscle capacities are
    computed from it too (neither depends on whether a force applies)."""
    import opensim as osim

    model = osim.Model(str(model_path))
    fs = model.updForceSet()
    for i in range(fs.getSize()):
        if osim.Actuator.safeDownCast(fs.get(i)) is not None:
            fs.get(i).set_appliesForce(False)
    if ext_xml is not None:
        loads = osim.ExternalLoads(str(ext_xml), True)
        model.addModelComponent(loads)
    state = model.initSystem()
    return model, state


#: Moment arms (path generalised forces) are taken every ``ARM_STRIDE``-th frame (and the last) and
#: interpolated between them (cubic in time): they are smooth functions of the coordinates, which change
#: little in 4 frames. Capacities, which depend on fibre velocity, are taken every frame.
ARM_STRIDE = 4


def extract(model_path: Path, coordinates_file: Path, id_file: Path | None, settings, *,
            ext_xml: Path | None = None, arm_stride: int = ARM_STRIDE,
            capacities_every_frame: bool = False) -> SOProblem:
    """The stance's SO problem from the finished model file and the IK coordinates. The demand: with
    ``id_file`` the inverse dynamics tool's output interpolated to the frames; without it (``ext_xml`` then
    names the external loads) computed here, frame by frame, by OpenSim's ``InverseDynamicsSolver`` at SO's
    states and target accelerations (:func:`_states`) with the loads applied."""
    import opensim as osim

    from gaitforce.physics.pipeline import read_sto

    seconds = {}
    tic = _time.perf_counter()
    model, state = _demand_model(model_path, None if id_file is not None else ext_xml)
    seconds["load"] = _time.perf_counter() - tic

    tic = _time.perf_counter()
    t, names, q, u, udot = _states(model, coordinates_file, settings.lowpass_hz)
    seconds["states"] = _time.perf_counter() - tic

    tic = _time.perf_counter()
    cs = model.getCoordinateSet()
    coords = [cs.get(n) for n in names]
    nu = state.getNU()
    if state.getNQ() != nu:
        raise GaitforceError(f"batched SO: the model has {state.getNQ()} q but {nu} u (quaternions?); "
                             "use --so opensim")
    uidx = []
    for c in coords:  # the mobility (u) index of each coordinate; q shares it (nq == nu, no quaternions)
        state.updU().setToZero()
        c.setSpeedValue(state, 1.0)
        uidx.append(int(np.argmax(np.abs(state.getU().to_numpy()))))
    uidx = np.array(uidx)
    state.updU().setToZero()
    free = [j for j, c in enumerate(coords) if not c.isConstrained(state)]
    couplers = _couplings(model, state, names)
    # dependent coordinates follow their independent one through the coupler function (f', f'' by central
    # differences), whatever the file holds for them
    T = len(t)
    arg = osim.Vector(1, 0.0)
    slopes = {}
    for dep, ind, fn, scale in couplers:
        val, d1, d2 = np.zeros(T), np.zeros(T), np.zeros(T)
        for i in range(T):
            val[i], d1[i], d2[i] = _value_slope_curvature(fn, arg, float(q[i, ind]))
        q[:, dep] = scale * val
        u[:, dep] = scale * d1 * u[:, ind]
        udot[:, dep] = scale * (d1 * udot[:, ind] + d2 * u[:, ind] ** 2)
        slopes[dep] = scale * d1
    Q, U, UDOT = (np.zeros((T, nu)) for _ in range(3))
    Q[:, uidx], U[:, uidx], UDOT[:, uidx] = q, u, udot

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

    nb = model.getNumBodies() + 1
    stride = max(int(arm_stride), 1)
    keys = np.unique(np.r_[np.arange(0, T, stride), T - 1]) if T else np.zeros(0, int)
    is_key = np.zeros(T, bool)
    is_key[keys] = True
    full = np.zeros((len(keys), nu, n))  # generalised force per unit tension / per unit actuation, by u index
    length = np.zeros((len(keys), len(muscles)))  # muscle-tendon length at the key frames
    physiology = bool(settings.muscle_physiology)
    # capacities between key frames from the DeGroote-Fregly curves (checked against OpenSim at the keys); any
    # other muscle type: OpenSim's every frame
    every_frame = (capacities_every_frame or not physiology
                   or any(osim.DeGrooteFregly2016Muscle.safeDownCast(m) is None for _, m, _, _ in muscles))
    gain = np.zeros((T, n))
    for j, k, fopt in coord_acts:
        full[:, uidx[k], j] = 1.0
        gain[:, j] = fopt
    matter = model.getMatterSubsystem()
    zero = osim.SpatialVec(osim.Vec3(0.0), osim.Vec3(0.0))
    solver = osim.InverseDynamicsSolver(model) if id_file is None else None
    tau = np.zeros((T, nu))
    key = 0
    for i in range(T):
        state.setTime(float(t[i]))
        state.setQ(osim.Vector.createFromMat(Q[i]))
        state.setU(osim.Vector.createFromMat(U[i]))
        model.realizeVelocity(state)
        if is_key[i] or every_frame:
            for j, mus, path, fmax in muscles:
                gain[i, j] = mus.calcInextensibleTendonActiveFiberForce(state, 1.0) if physiology else fmax
        if is_key[i]:
            for c, (j, mus, path, fmax) in enumerate(muscles):
                length[key, c] = mus.getLength(state)
                body = osim.VectorOfSpatialVec(nb, zero)
                mob = osim.Vector(nu, 0.0)
                path.addInEquivalentForces(state, 1.0, body, mob)
                gen = osim.Vector()
                matter.multiplyBySystemJacobianTranspose(state, body, gen)
                full[key, :, j] = gen.to_numpy() + mob.to_numpy()
            key += 1
        if solver is not None:
            tau[i] = solver.solve(state, osim.Vector.createFromMat(UDOT[i])).to_numpy()
    if len(keys) < T:
        full = _interpolate(keys, full, np.arange(T))
        if not every_frame:
            exact = _capacities_between_keys(muscles, keys, full, U, _interpolate(keys, length, np.arange(T)), gain)
            if exact:  # muscles the formula does not describe: OpenSim's value at every frame
                for i in np.flatnonzero(~is_key):
                    state.setTime(float(t[i]))
                    state.setQ(osim.Vector.createFromMat(Q[i]))
                    state.setU(osim.Vector.createFromMat(U[i]))
                    model.realizeVelocity(state)
                    for c in exact:
                        j, mus = muscles[c][:2]
                        gain[i, j] = mus.calcInextensibleTendonActiveFiberForce(state, 1.0)
    N = np.zeros((T, nu, len(free)))  # du_full / du_free
    for col, k in enumerate(free):
        N[:, uidx[k], col] = 1.0
    for dep, ind, fn, scale in couplers:
        if ind in free:
            N[:, uidx[dep], free.index(ind)] = slopes[dep]
    arms = np.einsum("tuf,tun->tfn", N, full)
    seconds["arms"] = _time.perf_counter() - tic

    tic = _time.perf_counter()
    if id_file is not None:
        id_table = read_sto(id_file)
        id_t = id_table["time"].to_numpy()
        for k, name in enumerate(names):
            col = next((f"{name}_{s}" for s in ("moment", "force") if f"{name}_{s}" in id_table), None)
            if col is not None:
                tau[:, uidx[k]] = np.interp(t, id_t, id_table[col].to_numpy())
    demand = np.einsum("tuf,tu->tf", N, tau)
    seconds["demand"] = _time.perf_counter() - tic
    return SOProblem(time=t, actuators=act_names, muscle=muscle, coordinates=[names[k] for k in free], arms=arms,
                     gain=gain, demand=demand, lower=lower, upper=upper, seconds=seconds)


def _capacities_between_keys(muscles, keys, full, U, length, gain) -> list[int]:
    """Muscle capacities (``gain``, filled at ``keys`` by OpenSim's ``calcInextensibleTendonActiveFiberForce``)
    at the other frames, computed as that DeGroote-Fregly 2016 method does for a rigid tendon: fibre length
    along the tendon = muscle-tendon length - tendon slack length, fibre length with the constant fibre width
    (optimal length x sin(pennation at optimal)), normalised fibre velocity = lengthening speed x cos(pennation)
    / (max contraction velocity x optimal length), capacity = max isometric force x active force-length x
    force-velocity multipliers (the muscle's own curve methods; no cos(pennation) factor). The muscle-tendon
    length is interpolated between the keys (cubic), its lengthening speed is minus the moment arms
    (interpolated) times the frame's speeds. Returns the muscles (indices into ``muscles``) for which the formula
    at the key frames is not OpenSim's value to 1e-9 of the max isometric force (their gains are left for the
    caller to take from OpenSim): a wrapping path whose lengthening speed OpenSim forms otherwise than from the
    moment arms (Rajagopal's gastrocnemii, by ~2 mm/s)."""
    import opensim as osim

    T = len(gain)
    is_key = np.zeros(T, bool)
    is_key[keys] = True
    order = np.r_[keys, np.flatnonzero(~is_key)]  # the keys first: a muscle failing there is skipped
    speed = -np.einsum("tun,tu->tn", full, U)
    exact = []
    for c, (j, mus, path, fmax) in enumerate(muscles):
        dg = osim.DeGrooteFregly2016Muscle.safeDownCast(mus)
        lopt, slack = dg.getOptimalFiberLength(), dg.getTendonSlackLength()
        width = lopt * np.sin(dg.getPennationAngleAtOptimalFiberLength())
        vmax = dg.get_max_contraction_velocity() * lopt
        along = length[:, c] - slack
        fibre = np.sqrt(along ** 2 + width ** 2)
        v_norm = speed[:, j] * along / fibre / vmax
        fl = dg.calcActiveForceLengthMultiplier
        fv = dg.calcForceVelocityMultiplier
        for i in order:
            g = fmax * fl(float(fibre[i] / lopt)) * fv(float(v_norm[i]))
            if not is_key[i]:
                gain[i, j] = g
            elif abs(g - gain[i, j]) > 1e-9 * fmax:
                exact.append(c)
                break
    return exact


def _interpolate(keys, values, at):
    """``values`` (len(keys), ...) at the frames ``at``: a cubic spline in the frame index (not-a-knot) with 4
    keys or more, else linear."""
    if len(keys) >= 4:
        from scipy.interpolate import CubicSpline

        return CubicSpline(keys, values, axis=0)(at)
    out = np.empty((len(at),) + values.shape[1:])
    flat = values.reshape(len(keys), -1)
    for c in range(flat.shape[1]):
        out.reshape(len(at), -1)[:, c] = np.interp(at, keys, flat[:, c])
    return out


def run_id_for_so(model_path: Path, ext_xml: Path, t0: float, t1: float, dt: float, work: Path, settings) -> Path:
    """Inverse dynamics by OpenSim's tool for every frame of the stance, ``work/id_so.sto``: the reference the
    in-process demand of :func:`extract` is tested against (``extract(..., id_file=...)`` takes it as the
    demand). As :func:`pipeline.run_id`, but asked for one frame more: OpenSim's ID tool reports from one frame
    before the requested start to one frame before the requested end (checked on DM og1), so the last frame
    would otherwise have no demand."""
    from gaitforce.physics.pipeline import run_id

    run_id(model_path, work / "ik.mot", ext_xml, t0, t1 + dt, work, settings, name="id_so")
    return work / "id_so.sto"


def static_optimisation(model_path: Path, ext_xml: Path, t0: float, t1: float, work: Path, settings, *,
                        tol: float = 1e-6, emg=None) -> dict:
    """Batched SO of the stance in ``work`` (``ik.mot``): writes ``so_so_activation.sto`` and
    ``so_so_force.sto`` (the actuator columns OpenSim's SO writes, same names) and returns seconds per part
    (``load``, ``states``, ``arms``, ``demand``, ``solve``, ``write``; the demand is computed in the ``arms``
    loop) and ``cpu`` (process seconds of the whole call). Raises if a frame does not converge. ``emg``: an
    :class:`emg_so.EMGInput`, needed by ``settings.criterion == 'emg'`` (its calibration goes to
    ``work/emg_calibration.json``)."""
    from gaitforce.physics import files

    work = Path(work)
    cpu = _time.process_time()
    problem = extract(model_path, work / "ik.mot", None, settings, ext_xml=ext_xml)
    seconds = dict(problem.seconds)
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
    seconds["cpu"] = _time.process_time() - cpu
    seconds["frames"] = len(problem.time)
    seconds["iterations"] = sol.iterations
    seconds["max_residual"] = float(sol.residual.max())
    return seconds


#: Step (s for the coordinate splines, rad or m for the couplers) of the central differences in
#: :func:`_value_and_slope`.
DERIVATIVE_STEP = 1e-5


def _value_slope_curvature(fn, arg, x: float) -> tuple[float, float, float]:
    """Value, first and second derivative of a one-argument OpenSim Function at ``x`` (central differences,
    see :func:`_value_and_slope`)."""
    h = DERIVATIVE_STEP * 100  # 1e-3: the second difference needs a larger step against rounding
    arg.set(0, x + h)
    fp = fn.calcValue(arg)
    arg.set(0, x - h)
    fm = fn.calcValue(arg)
    arg.set(0, x)
    f0 = fn.calcValue(arg)
    value, slope = _value_and_slope(fn, arg, x)
    return value, slope, (fp - 2 * f0 + fm) / h ** 2


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
