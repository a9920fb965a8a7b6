"""gaitforce.evaluate.report: the files a report is made of, and what the figures pick."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from gaitforce import evaluate as ev
from gaitforce.errors import GaitforceError
from gaitforce.evaluate import report


def fake_results(n_stances=5, frames=51):
    """Stance k is predicted with a constant offset of 10 * (k + 1) N: RMSE 10, 20, ... by construction."""
    pct = np.linspace(0, 100, frames)
    ref = 800 * np.sin(np.pi * pct / 100) + 200
    sid, y_true, y_pred, p = [], [], [], []
    for k in [3, 0, 4, 1, 2]:  # stored out of RMSE order on purpose
        sid += [f"s{k}"] * frames
        y_true.append(ref)
        y_pred.append(ref + 10.0 * (k + 1))
        p.append(pct)
    y_true, y_pred, p = np.concatenate(y_true), np.concatenate(y_pred), np.concatenate(p)
    per = ev.per_trial_metrics(y_true, y_pred, sid, body_weight=700.0, target_names=["knee_medial"])
    per["subject"] = per["stance_id"].map(lambda s: "A" if s in ("s0", "s1") else "B")
    preds = ev.predictions_frame(sid, p, y_true, y_pred, ["knee_medial"])
    return per, preds


def test_representative_stances_are_best_median_worst_by_rmse():
    per, _ = fake_results()
    picks = report.representative_stances(per, "knee_medial")
    assert picks == [("best", "s0"), ("median", "s2"), ("worst", "s4")]


def test_resample_stances_interpolates_onto_percent_grid():
    preds = pd.DataFrame({"stance_id": ["a"] * 3, "stance_pct": [0.0, 50.0, 100.0], "y": [0.0, 5.0, 10.0]})
    out = report.resample_stances(preds, "y")
    assert out.shape == (1, 101) and out[0, 37] == pytest.approx(3.7)


def test_write_report_writes_linked_tables_figures_and_settings(tmp_path):
    per, preds = fake_results()
    index = report.write_report(tmp_path / "rep", per_trial=per, predictions=preds,
                                settings={"model": "ridge", "seed": 0, "splits": ("a", "b")},
                                title="Test report", by="subject")
    text = index.read_text()
    assert text.startswith("# Test report")
    for link in re.findall(r"\]\(([^)]+)\)", text):
        assert (index.parent / link).is_file(), link
    for name in ["knee_medial_representative.png", "knee_medial_ensemble.png", "knee_medial_scatter.png"]:
        data = (index.parent / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    summary = pd.read_csv(index.parent / "summary.csv")
    assert summary.loc[0, "RMSE (N)"] == "30 (16)"  # offsets 10..50: mean 30, sample SD 15.8
    by = pd.read_csv(index.parent / "summary_by_subject.csv").set_index("subject")
    assert by.loc["A", "RMSE (N)"] == "15 (7)"
    assert json.loads((index.parent / "settings.json").read_text())["splits"] == ["a", "b"]
    assert "| knee_medial |" in text


def test_write_report_rejects_predictions_without_the_target(tmp_path):
    per, preds = fake_results()
    with pytest.raises(GaitforceError, match="knee_medial"):
        report.write_report(tmp_path, per_trial=per, predictions=preds.drop(columns="knee_medial_pred"),
                            settings={}, title="x")


def test_markdown_table_escapes_pipes_and_dashes_nan():
    md = report.markdown_table(pd.DataFrame({"a": ["x|y"], "b": [np.nan]}))
    assert md.splitlines()[2] == "| x\\|y | - |"
