"""Splits of stance phases into train / val / test: pure functions of the stance table.

Splits
------
Each splitter takes the stance table (:meth:`gaitforce.data.dataset.Dataset.stances`: one row per stance with
``stance_id``, ``subject`` and any group columns) and returns ``{"train": [...], "val": [...], "test": [...]}``
of stance ids, each list in the order of the stance table. The same ``seed`` gives the same split.

- :func:`subject_naive_split`: no subject appears in two sets (generalisation to new people).
- :func:`subject_exposed_split`: a random split of walks (the stances of one ``trial`` stay together), then
  each held-out stance's subject is given at least one walk in training (the paper's "subject-exposed"
  setting).
- :func:`leave_one_group_out`: one split per value of a column (e.g. ``year``: the Grand Challenge setting),
  optionally dropping from training the stances an ``exclude`` predicate names (:func:`same_subject` gives
  the "strict" variant that also hides the test subject's other year).

"""

from __future__ import annotations

from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from gaitforce.errors import GaitforceError

Split = dict[str, list]
SET_NAMES = ("train", "val", "test")
# ---------------------------------------------------------------------------------------------------------
# splits
# ---------------------------------------------------------------------------------------------------------
def _check_stances(stances: pd.DataFrame, columns: Iterable[str]) -> None:
    missing = [c for c in ["stance_id", *columns] if c not in stances.columns]
    if missing:
        raise GaitforceError(f"stance table lacks columns {missing} (has {list(stances.columns)})")
    if stances["stance_id"].duplicated().any():
        dup = stances.loc[stances["stance_id"].duplicated(), "stance_id"].iloc[0]
        raise GaitforceError(f"stance table lists stance {dup!r} twice")
    if len(stances) == 0:
        raise GaitforceError("no stances to split")
    if "subject" in columns:
        unknown = stances["subject"].isna() | stances["subject"].astype(str).isin(["unknown", ""])
        if unknown.any():
            raise GaitforceError(
                f"{int(unknown.sum())} of {len(stances)} stances have no subject ('unknown'): a subject split would "
                "treat them as one person; name subjects at ingest (--subject/--mass, or a subjects.csv sidecar)")


def _check_fractions(fractions: Sequence[float]) -> np.ndarray:
    f = np.asarray(fractions, dtype=float)
    if f.shape != (3,) or not np.all(np.isfinite(f)) or np.any(f < 0) or f[0] <= 0:
        raise GaitforceError(
            f"fractions must be three non-negative numbers (train, val, test) with train > 0, got {fractions!r}"
        )
    return f / f.sum()


def _ordered(stances: pd.DataFrame, mask) -> list:
    """Stance ids where ``mask`` holds, in the order of the stance table."""
    return stances.loc[np.asarray(mask, dtype=bool), "stance_id"].tolist()


def _nearest_prefix(counts: np.ndarray, target: float, max_k: int) -> int:
    """The k in [1, max_k] whose first-k count sum is nearest ``target`` (ties: the smaller k)."""
    sums = np.cumsum(counts[:max_k])
    return int(np.argmin(np.abs(sums - target))) + 1


def subject_naive_split(
    stances: pd.DataFrame, *, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0, column: str = "subject"
) -> Split:
    """Split stances so that no subject (or other ``column`` value) is in two sets.

    Rule, for few subjects as in the Grand Challenge (4 subjects):

    1. The subjects are sorted, then shuffled with ``numpy.random.default_rng(seed)``.
    2. Test takes the first k subjects of that order, k >= 1 chosen so that their stance count is nearest
       ``fractions[2] * n_stances`` (ties: fewer subjects), leaving enough subjects for the other sets.
    3. Val takes the next subjects by the same rule against ``fractions[1] * n_stances``.
    4. Train takes the rest (always at least one subject).

    A set whose fraction is 0 stays empty; every other set gets at least one subject, so at least
    1 + (val > 0) + (test > 0) subjects are needed, else :class:`GaitforceError`.
    """
    _check_stances(stances, [column])
    f = _check_fractions(fractions)
    subj = stances[column].astype(str)
    counts = subj.value_counts()
    names = np.array(sorted(counts.index))
    names = names[np.random.default_rng(seed).permutation(len(names))]
    n_counts = counts.reindex(names).to_numpy()
    needed = 1 + int(f[1] > 0) + int(f[2] > 0)
    if len(names) < needed:
        raise GaitforceError(
            f"a {column}-naive split with fractions {tuple(fractions)} needs at least {needed} distinct "
            f"{column} values, the data have {len(names)} ({', '.join(names)})"
        )
    n_total, pos = len(stances), 0
    chosen: dict[str, set] = {}
    for name, frac, reserve in (("test", f[2], 1 + int(f[1] > 0)), ("val", f[1], 1)):
        if frac == 0:
            chosen[name] = set()
            continue
        k = _nearest_prefix(n_counts[pos:], frac * n_total, len(names) - pos - reserve)
        chosen[name] = set(names[pos : pos + k])
        pos += k
    chosen["train"] = set(names[pos:])
    return {s: _ordered(stances, subj.isin(chosen[s])) for s in SET_NAMES}


def subject_exposed_split(
    stances: pd.DataFrame, *, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0, column: str = "subject",
    walk: str = "trial",
) -> Split:
    """A random split of walks in which every held-out stance's subject also has a stance in training.

    The unit is the **walk** (the ``walk`` column, ``trial``: the stances of one recording, e.g. its left and
    right stance phases): the stances of one walk always land in the same set, so a walk never trains and
    tests at once. Without that column each stance is its own walk. Rule:

    1. The walks (in order of first appearance) are shuffled with ``numpy.random.default_rng(seed)``; test takes
       the first k walks, k >= 0 chosen so that their stance count is nearest ``round(fractions[2] * n)``
       (ties: fewer walks), val the next walks by the same rule for ``round(fractions[1] * n)``, train the rest.
       With one stance per walk that is exactly the first ``round(fractions[2] * n)`` stances of the shuffle.
    2. For each subject with no stance in train, its held-out walk that came first in the shuffle is moved to
       train. One moved walk is enough: afterwards every val and test stance has at least one stance of the
       same subject in training. (A subject with a single walk therefore always trains.)

    Test and val may so end up smaller than asked; a split whose test set ends empty raises
    :class:`GaitforceError` (too few walks per subject).
    """
    _check_stances(stances, [column])
    f = _check_fractions(fractions)
    n = len(stances)
    walks = (stances[walk].astype(str) if walk in stances.columns else stances["stance_id"].astype(str)).to_numpy()
    units, unit_of = np.unique(walks, return_inverse=True)
    first = np.array([np.flatnonzero(unit_of == u)[0] for u in range(len(units))])
    units_in_order = np.argsort(first, kind="stable")  # walks in order of first appearance
    order = units_in_order[np.random.default_rng(seed).permutation(len(units))]
    sizes = np.bincount(unit_of, minlength=len(units))[order]
    n_test, n_val = int(round(f[2] * n)), int(round(f[1] * n))
    cum = np.concatenate([[0], np.cumsum(sizes)])
    k_test = int(np.argmin(np.abs(cum - n_test)))
    k_val = k_test + int(np.argmin(np.abs(cum[k_test:] - cum[k_test] - n_val)))
    unit_label = np.full(len(units), "train", dtype=object)
    unit_label[order[:k_test]] = "test"
    unit_label[order[k_test:k_val]] = "val"
    subj = stances[column].astype(str).to_numpy()
    label = unit_label[unit_of]
    trained = set(subj[label == "train"])
    for u in order:  # shuffle order: the first held-out walk of an untrained subject moves
        if unit_label[u] != "train":
            who = set(subj[unit_of == u]) - trained
            if who:
                unit_label[u] = "train"
                trained |= set(subj[unit_of == u])
    label = unit_label[unit_of]
    if n_test > 0 and not np.any(label == "test"):
        raise GaitforceError("subject-exposed split left no test stance: each subject needs at least two walks")
    return {s: _ordered(stances, label == s) for s in SET_NAMES}


def same_subject(pool: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
    """``exclude`` predicate for :func:`leave_one_group_out`: the pool's stances of the test subjects.

    With ``column="year"`` on the Grand Challenge this is the "strict" variant: predicting DM's 2011 trials,
    DM's 2015 trials are left out of training too.
    """
    return pool["subject"].isin(set(test["subject"])).to_numpy()


def leave_one_group_out(
    stances: pd.DataFrame,
    column: str,
    *,
    val_fraction: float = 0.1,
    seed: int = 0,
    exclude: Callable[[pd.DataFrame, pd.DataFrame], np.ndarray] | None = None,
) -> dict[str, Split]:
    """One split per value of ``column``: that value's stances are the test set.

    Returns ``{str(value): {"train", "val", "test"}}`` in sorted order of the values. For each value:

    - test: the stances whose ``column`` equals it;
    - the pool: all other stances, less those ``exclude(pool, test)`` marks True (a boolean array over the
      pool's rows; e.g. :func:`same_subject`);
    - val: ``round(val_fraction * len(pool))`` stances of the pool drawn at random (at least one when
      ``val_fraction > 0`` and the pool has two or more), train the rest.

    Stances with a missing ``column`` value are never tested; they stay in the pools. The random draws use one
    ``numpy.random.default_rng(seed)`` in fold order, so the same seed gives the same folds.
    """
    _check_stances(stances, [column])
    if not 0 <= val_fraction < 1:
        raise GaitforceError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    values = stances[column]
    groups = sorted(values.dropna().unique(), key=str)
    if len(groups) < 2:
        raise GaitforceError(f"leave-one-{column}-out needs at least two {column} values, found {len(groups)}")
    rng = np.random.default_rng(seed)
    folds: dict[str, Split] = {}
    for g in groups:
        is_test = (values == g).to_numpy()
        pool = stances[~is_test]
        keep = np.ones(len(pool), dtype=bool)
        if exclude is not None:
            keep = ~np.asarray(exclude(pool, stances[is_test]), dtype=bool)
        pool = pool[keep]
        if len(pool) == 0:
            raise GaitforceError(f"leaving out {column}={g!r} leaves no stance to train on")
        n_val = int(round(val_fraction * len(pool)))
        if val_fraction > 0 and len(pool) >= 2:
            n_val = min(max(n_val, 1), len(pool) - 1)
        val_ids = set(pool["stance_id"].to_numpy()[rng.permutation(len(pool))[:n_val]])
        ids = stances["stance_id"]
        folds[str(g)] = {
            "train": _ordered(stances, ids.isin(set(pool["stance_id"]) - val_ids)),
            "val": _ordered(stances, ids.isin(val_ids)),
            "test": _ordered(stances, is_test),
        }
    return folds


def _scheme_naive(stances, seed):
    return {"subject-naive": subject_naive_split(stances, seed=seed)}


def _scheme_exposed(stances, seed):
    return {"subject-exposed": subject_exposed_split(stances, seed=seed)}


def _scheme_logo(column, exclude=None):
    def scheme(stances, seed):
        folds = leave_one_group_out(stances, column, seed=seed, exclude=exclude)
        return {f"{column}={k}": v for k, v in folds.items()}

    return scheme


#: Named split schemes for the CLI: name -> f(stances, seed) -> {fold name: split}.
SCHEMES: dict[str, Callable[[pd.DataFrame, int], dict[str, Split]]] = {
    "subject-naive": _scheme_naive,
    "subject-exposed": _scheme_exposed,
    "leave-subject-out": _scheme_logo("subject"),
    "leave-year-out": _scheme_logo("year"),
    "leave-year-out-strict": _scheme_logo("year", exclude=same_subject),
}


def make_splits(scheme: str, stances: pd.DataFrame, *, seed: int = 0) -> dict[str, Split]:
    """The folds of a named split scheme (see :data:`SCHEMES`): {fold name: split}."""
    try:
        fn = SCHEMES[scheme]
    except KeyError:
        raise GaitforceError(f"unknown split {scheme!r} (known: {', '.join(SCHEMES)})") from None
    return fn(stances, seed)


