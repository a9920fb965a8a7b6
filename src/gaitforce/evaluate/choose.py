"""Choosing settings without looking at the test subject: leave-one-subject-out over settings.

A table of figures per settings variant and subject (each a mean over that subject's stances) is turned into
rotations: each subject in turn chooses the variant that scores best on its own stances, and that variant's
figures on every other subject are the held-out result of the rotation. The overall held-out figure is the mean
over the rotations, so no reported number came from the data that chose it. Pure functions, no I/O.
"""

from __future__ import annotations

import math


def _mean(values) -> float:
    values = [float(v) for v in values]
    return sum(values) / len(values) if values else math.nan


def leave_one_subject_out(table: dict[str, dict[str, dict[str, float]]], *, criterion: str,
                          lower_is_better: bool = True) -> dict:
    """``table[variant][subject][metric]`` -> rotations and overall held-out figures.

    For each subject (sorted) the variant with the best ``criterion`` on that subject (lowest, or highest with
    ``lower_is_better=False``; ties go to the first name in sorted order) is chosen; the rotation holds, per
    held-out subject, every metric of that variant, and ``held_out_mean``: each metric's mean over the held-out
    subjects (each subject weighs alike). ``overall``: each metric's mean over the rotations' ``held_out_mean``;
    ``chosen``: how often each variant was chosen. Subjects missing from a variant's row make it ineligible for
    choosing on them (no figure) and are skipped in its held-out figures."""
    variants = sorted(table)
    subjects = sorted({s for row in table.values() for s in row})
    sign = 1.0 if lower_is_better else -1.0
    rotations = []
    for chooser in subjects:
        eligible = [v for v in variants if chooser in table[v] and math.isfinite(table[v][chooser][criterion])]
        if not eligible:
            continue
        best = min(eligible, key=lambda v: (sign * table[v][chooser][criterion], v))
        held = {s: dict(table[best][s]) for s in subjects if s != chooser and s in table[best]}
        metrics = sorted({m for figures in held.values() for m in figures})
        rotations.append({"choosing_subject": chooser, "variant": best,
                          "choosing_figure": table[best][chooser][criterion],
                          "held_out": held,
                          "held_out_mean": {m: _mean(f[m] for f in held.values() if m in f) for m in metrics}})
    metrics = sorted({m for r in rotations for m in r["held_out_mean"]})
    overall = {m: _mean(r["held_out_mean"][m] for r in rotations if m in r["held_out_mean"]) for m in metrics}
    chosen: dict[str, int] = {}
    for r in rotations:
        chosen[r["variant"]] = chosen.get(r["variant"], 0) + 1
    return {"criterion": criterion, "lower_is_better": lower_is_better, "rotations": rotations,
            "overall": overall, "chosen": chosen}


def scale_baseline(stances: dict[str, tuple[str, "object", "object"]]) -> dict:
    """The simple baseline beside the physics labels: target = k x input (e.g. medial force = k x vertical GRF),
    k fitted by least squares on the choosing subject's frames and applied to every other subject's stances.

    ``stances``: name -> (subject, input per frame, target per frame). Per rotation (choosing subject, sorted):
    ``k`` and, per held-out subject, the mean over its stances of the per-stance RMSE (target units) and Pearson
    r (undefined for a constant input: NaN); ``overall``: the mean over rotations of the held-out subjects' mean
    (as :func:`leave_one_subject_out`)."""
    import numpy as np

    subjects = sorted({s for s, _, _ in stances.values()})
    rotations = []
    for chooser in subjects:
        x = np.concatenate([np.asarray(v[1], float) for v in stances.values() if v[0] == chooser])
        y = np.concatenate([np.asarray(v[2], float) for v in stances.values() if v[0] == chooser])
        k = float(np.dot(x, y) / np.dot(x, x))
        held = {}
        for subject in subjects:
            if subject == chooser:
                continue
            rmse, r = [], []
            for s, xi, yi in stances.values():
                if s != subject:
                    continue
                xi, yi = np.asarray(xi, float), np.asarray(yi, float)
                rmse.append(float(np.sqrt(np.mean((k * xi - yi) ** 2))))
                r.append(float(np.corrcoef(xi, yi)[0, 1]) if np.ptp(xi) > 0 else math.nan)
            held[subject] = {"rmse": _mean(rmse), "r": _mean(r)}
        rotations.append({"choosing_subject": chooser, "k": k, "held_out": held,
                          "held_out_mean": {m: _mean(h[m] for h in held.values()) for m in ("rmse", "r")}})
    return {"rotations": rotations,
            "overall": {m: _mean(r["held_out_mean"][m] for r in rotations) for m in ("rmse", "r")}}
