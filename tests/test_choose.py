"""Leave-one-subject-out choice of settings (gaitforce.evaluate.choose), on a tiny made-up table."""

import math

import pytest

from gaitforce.evaluate.choose import leave_one_subject_out

# medial RMSE (BW) and r per variant and subject; 'a' is best on S1 and S2, 'b' on S3
TABLE = {
    "a": {"S1": {"rmse": 0.50, "r": 0.9}, "S2": {"rmse": 0.40, "r": 0.8}, "S3": {"rmse": 0.90, "r": 0.5}},
    "b": {"S1": {"rmse": 0.60, "r": 0.7}, "S2": {"rmse": 0.70, "r": 0.6}, "S3": {"rmse": 0.30, "r": 0.9}},
    "c": {"S1": {"rmse": 0.55, "r": 0.8}, "S2": {"rmse": 0.45, "r": 0.7}, "S3": {"rmse": 0.80, "r": 0.6}},
}


def test_each_subject_chooses_and_is_then_left_out():
    out = leave_one_subject_out(TABLE, criterion="rmse")
    rot = {r["choosing_subject"]: r for r in out["rotations"]}
    assert [rot[s]["variant"] for s in ("S1", "S2", "S3")] == ["a", "a", "b"]
    assert set(rot["S1"]["held_out"]) == {"S2", "S3"}  # the chooser's own figure is never reported held out
    assert rot["S1"]["choosing_figure"] == 0.50
    assert rot["S1"]["held_out_mean"]["rmse"] == pytest.approx((0.40 + 0.90) / 2)
    assert rot["S2"]["held_out_mean"]["rmse"] == pytest.approx((0.50 + 0.90) / 2)
    assert rot["S3"]["held_out_mean"]["rmse"] == pytest.approx((0.60 + 0.70) / 2)
    assert out["overall"]["rmse"] == pytest.approx((0.65 + 0.70 + 0.65) / 3)
    assert out["overall"]["r"] == pytest.approx(((0.8 + 0.5) / 2 + (0.9 + 0.5) / 2 + (0.7 + 0.6) / 2) / 3)
    assert out["chosen"] == {"a": 2, "b": 1}
    # choosing on everything would have reported variant a's 0.60 mean; held out the figure is worse
    assert out["overall"]["rmse"] > (0.5 + 0.4 + 0.9) / 3


def test_higher_is_better_ties_and_missing_subjects():
    out = leave_one_subject_out(TABLE, criterion="r", lower_is_better=False)
    assert [r["variant"] for r in out["rotations"]] == ["a", "a", "b"]
    tie = {"z": {"S1": {"m": 1.0}, "S2": {"m": 2.0}}, "y": {"S1": {"m": 1.0}, "S2": {"m": 3.0}}}
    assert leave_one_subject_out(tie, criterion="m")["rotations"][0]["variant"] == "y"  # tie: first name
    gap = {"p": {"S1": {"m": math.nan}, "S2": {"m": 1.0}}, "q": {"S1": {"m": 5.0}}}
    rot = leave_one_subject_out(gap, criterion="m")["rotations"]
    assert rot[0]["variant"] == "q" and rot[0]["held_out"] == {}  # q has no S2 figure to report
    assert rot[1]["variant"] == "p" and rot[1]["held_out"]["S1"]["m"] != rot[1]["held_out"]["S1"]["m"]  # NaN kept


def test_scale_baseline_fits_on_the_chooser_and_scores_the_others():
    import numpy as np

    from gaitforce.evaluate.choose import scale_baseline

    x = np.array([1.0, 2.0, 3.0])
    stances = {"a": ("S1", x, 2 * x), "b": ("S1", 2 * x, 4 * x), "c": ("S2", x, 3 * x)}
    out = scale_baseline(stances)
    rot = {r["choosing_subject"]: r for r in out["rotations"]}
    assert rot["S1"]["k"] == pytest.approx(2.0) and rot["S2"]["k"] == pytest.approx(3.0)
    # S1's k = 2 on S2 (y = 3x): error x, RMSE sqrt(14/3); S2's k = 3 on S1's two stances: errors x and 2x
    assert rot["S1"]["held_out"]["S2"]["rmse"] == pytest.approx(np.sqrt(14 / 3))
    assert rot["S2"]["held_out"]["S1"]["rmse"] == pytest.approx((np.sqrt(14 / 3) + np.sqrt(56 / 3)) / 2)
    assert out["overall"]["rmse"] == pytest.approx((np.sqrt(14 / 3) + (np.sqrt(14 / 3) + np.sqrt(56 / 3)) / 2) / 2)
    assert out["overall"]["r"] == pytest.approx(1.0)
