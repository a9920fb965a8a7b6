"""Muscle strength changes applied to a model before static optimisation (``LabelSettings.knee_muscle_strength``).

Which muscles cross the knee is read from the body tree, not from moment arms: a muscle crosses the knee joint
``<knee>_<side>`` when exactly one of its path's two end bodies lies at or below the joint's child body (the
tibia). That is the rule of the GC5 reference model's script (modenaxe/femoral-anteversion-paper,
``make_knee_muscle_weaker.m``: muscles whose attachment bodies span ``walker_knee_l``; re-implemented here, not
copied). In Rajagopal 2015 it selects 13 muscles a leg: the four quadriceps (their last path point is on the
tibia), the four hamstrings, gastrocnemius medial and lateral, gracilis, sartorius and TFL; in gait14dof22musc
hamstrings, biceps short head, rectus femoris, vasti and gastrocnemius.
"""

from __future__ import annotations


def _below(body, child_name: str) -> bool:
    """Whether ``body`` is ``child_name`` or hangs below it in the model's tree."""
    while True:
        if body.getName() == child_name:
            return True
        joints = body.getModel().getJointSet()
        parent = None
        for i in range(joints.getSize()):
            j = joints.get(i)
            if j.getChildFrame().findBaseFrame().getName() == body.getName():
                parent = j.getParentFrame().findBaseFrame()
                break
        if parent is None or parent.getName() == "ground":
            return False
        body = body.getModel().getBodySet().get(parent.getName())


def knee_crossing_muscles(model, knee_joint: str, sides=("r", "l")) -> list[str]:
    """Names of the muscles of ``model`` whose path's end bodies lie on either side of ``<knee_joint>_<side>``."""
    joints = model.getJointSet()
    out = []
    for side in sides:
        name = f"{knee_joint}_{side}"
        if not joints.contains(name):
            continue
        child = joints.get(name).getChildFrame().findBaseFrame().getName()
        muscles = model.getMuscles()
        for i in range(muscles.getSize()):
            m = muscles.get(i)
            points = m.getGeometryPath().getPathPointSet()
            first = points.get(0).getParentFrame().findBaseFrame()
            last = points.get(points.getSize() - 1).getParentFrame().findBaseFrame()
            bodies = model.getBodySet()
            if _below(bodies.get(first.getName()), child) != _below(bodies.get(last.getName()), child):
                out.append(m.getName())
    return out


def scale_knee_muscles(model, knee_joint: str, factor: float, sides=("r", "l")) -> list[str]:
    """Multiply the max isometric force of every muscle crossing the knee (:func:`knee_crossing_muscles`) by
    ``factor``; returns their names."""
    names = knee_crossing_muscles(model, knee_joint, sides)
    for n in names:
        m = model.updMuscles().get(n)
        m.setMaxIsometricForce(m.getMaxIsometricForce() * float(factor))
    return names
