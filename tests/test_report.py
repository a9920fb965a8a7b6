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


def test_write_report_writes_a_self_contained_html_twin(tmp_path):
    per, preds = fake_results()
    index = report.write_report(tmp_path / "rep", per_trial=per, predictions=preds, settings={}, title="T <x>",
                                by="subject")
    page = (index.parent / "index.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "<title>T &lt;x&gt;</title>" in page
    imgs = re.findall(r'<img alt="[^"]*" src="([^"]+)"', page)
    assert len(imgs) == 3
    import base64

    for src in imgs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert 'href="per_trial.csv"' in page and page.count("<table>") == 2  # summary + by subject


def test_markdown_to_html_tables_code_links_and_md_twins(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "index.md").write_text("# x")
    (tmp_path / "sub" / "index.html").write_text("<html>")
    md = ("# Title\n\nA `a<b` and **bold** [sub](sub/index.md), [other](other.md), "
          "[web](https://example.org/x.md).\n\n| a | b |\n|---|---|\n| 1 \\| 2 | - |\n\n- one\n- two\n")
    page = report.markdown_to_html(md, tmp_path)
    assert "<h1>Title</h1>" in page and "<code>a&lt;b</code>" in page and "<strong>bold</strong>" in page
    assert 'href="sub/index.html"' in page  # the twin exists
    assert 'href="other.md"' in page and 'href="https://example.org/x.md"' in page  # no twin / not local
    assert "<td>1 | 2</td><td>-</td>" in page and "<th>a</th><th>b</th>" in page
    assert "<ul><li>one</li><li>two</li></ul>" in page


def test_figures_use_body_weights_only_when_every_stance_has_a_mass():
    per, preds = fake_results()
    assert report.stance_body_weights(per) == {}
    per["mass"] = [70.0, 70.0, np.nan, 80.0, 80.0]
    bw = report.stance_body_weights(per)
    assert set(bw) == set(per["stance_id"]) - {per["stance_id"].iloc[2]}
    assert bw[per["stance_id"].iloc[0]] == pytest.approx(70.0 * 9.81)
    assert report._Scale("N", bw, list(bw)).unit == "BW"
    assert report._Scale("N", bw, list(per["stance_id"])).unit == "N"  # one stance without a mass
    assert report._Scale("%MVC", bw, list(bw)).unit == "%MVC"


def test_plausibility_note_counts_stance_peaks_outside_1_to_4_bw():
    per, preds = fake_results()  # reference peak 1000 N in every stance, predictions 1010-1050 N
    bw = {sid: 200.0 for sid in per["stance_id"]}  # reference peaks 5 BW
    note = report.plausibility_note(preds, "knee_medial", "N", bw, reference="OpenSim", model="cnn")
    assert "OpenSim: 5 above 4 BW of 5 stance peaks (range 5.00-5.00 BW)" in note
    assert "cnn: 5 above 4 BW of 5 stance peaks (range 5.05-5.25 BW)" in note
    assert report.plausibility_note(preds, "knee_medial", "N", {s: 400.0 for s in bw}) == ""  # 2.5 BW
    low = report.plausibility_note(preds, "knee_medial", "N", {s: 2000.0 for s in bw}, reference="r")
    assert "r: 5 below 1 BW" in low
    assert report.plausibility_note(preds, "grf_resultant_standin", "N", bw) == ""  # not a knee force


def test_evidence_sentence_claims_better_only_with_a_significant_paired_test():
    weak = report.evidence_sentence({"n": 4, "delta": -12.0, "wins": 0.75, "p": 0.625}, model="cnn",
                                    baseline="ridge", unit="N", n_subjects=1, n_stances=4)
    assert weak.startswith("Test set: 4 stances of 1 subject. cnn - ridge RMSE over 4 paired stances: -12 N")
    assert "p = 0.625" in weak and "no difference" in weak and "better on these" not in weak
    strong = report.evidence_sentence({"n": 40, "delta": 30.0, "wins": 0.1, "p": 0.001}, model="cnn",
                                      baseline="ridge", unit="N", n_subjects=8, n_stances=40)
    assert "ridge is better on these stances (p < 0.05)." in strong
    none = report.evidence_sentence({"n": 1, "delta": 5.0, "wins": 0.0, "p": float("nan")}, model="cnn",
                                    baseline="ridge", unit="N", n_subjects=1, n_stances=1)
    assert "p = n/a" in none and "No conclusion" in none
