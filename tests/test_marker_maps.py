"""Marker maps of other labs (issue 13): packaged maps, name normalisation, the fill rule, the choice printed and
recorded, out-of-distribution flags against the bundle's training feature ranges."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from builders import make_bundle

from gaitforce import cli
from gaitforce.data import features as F
from gaitforce.data import synthetic
from gaitforce.errors import MissingChannelError
from gaitforce.io.writers import write_mot_grf, write_trc
from gaitforce.learn.predict import OOD_MARGIN, feature_ranges, ood_line, out_of_range
from gaitforce.trial import Trial


def _trial(names, side="right", n=4, seed=0):
    pos = np.random.default_rng(seed).normal(size=(n, len(names), 3))
    return Trial(time=np.arange(n) / 100, markers=pos, marker_names=names, meta={"side": side}, source="mem.c3d")


def test_names_are_normalised_before_matching():
    assert F.normalise_name("R.ASIS") == F.normalise_name("R_ASIS") == F.normalise_name("r asis") == "rasis"
    assert F.normalise_name("Subject01:RKNE") == "rkne"
    assert F.normalise_name("L.Thigh.Upper") == F.normalise_name("L_Thigh_Upper") == "lthighupper"


def test_lower_case_space_separated_names_take_the_cleveland_map():
    # the long-form set of c3d.org sample28 (with a heel marker, as in its standing trial)
    names = ["r asis", "l asis", "sacrum", "r thigh", "r knee 1", "r knee 2", "r bar 2", "r mall", "r heel", "r met",
             "r hip", "r knee"]
    _, how, spec = F.resolve_slots(_trial(names), "auto")
    assert spec["name"] == "cleveland"
    assert how["asis_ipsi"] == "r asis" and how["asis_contra"] == "l asis" and how["psis_ipsi"] == "sacrum"
    assert how["knee_lat"] == "r knee 1" and how["knee_med"] == "r knee 2"  # not the virtual joint centre 'r knee'
    assert how["ankle_lat"] == "r mall" and how["heel"] == "r heel" and how["toe"] == "r met"
    assert sorted(s for s, h in how.items() if h.startswith("centroid")) == sorted(
        ["thigh_sup", "thigh_inf", "shank_sup", "shank_inf", "ankle_med", "foot_lat", "foot_med"])


def test_cast_ior_names():
    names = ["R_IAS", "L_IAS", "R_IPS", "L_IPS", "R_FTC", "R_FLE", "R_FME", "R_FAX", "R_TTC", "R_FAL", "R_TAM",
             "R_FCC", "R_FM1", "R_FM2", "R_FM5"]
    pos, how, spec = F.resolve_slots(_trial(names), "auto")
    assert spec["name"] == "cast-ior"
    assert how["knee_lat"] == "R_FLE" and how["knee_med"] == "R_FME" and how["ankle_med"] == "R_TAM"
    assert how["foot_med"] == "R_FM1" and how["foot_lat"] == "R_FM5" and how["toe"] == "R_FM2"
    filled = [s for s, h in how.items() if h.startswith("centroid")]
    assert filled == ["thigh_lat", "thigh_inf", "shank_inf"]
    k = F.SLOTS.index
    np.testing.assert_allclose(pos[:, k("shank_inf")], pos[:, [k("shank_sup"), k("shank_lat"), k("ankle_lat"),
                                                               k("ankle_med")]].mean(axis=1))


@pytest.mark.parametrize("names, matched", [
    # OpenSim gait2354 subject01 (left stance: L.* ipsilateral)
    (["R.ASIS", "L.ASIS", "V.Sacral", "L.Thigh.Upper", "L.Thigh.Front", "L.Thigh.Rear", "L.Shank.Upper",
      "L.Shank.Front", "L.Shank.Rear", "L.Heel", "L.Midfoot.Sup", "L.Midfoot.Lat", "L.Toe.Tip", "L.Toe.Lat",
      "L.Toe.Med"], 14),
    # Rajagopal 2015 markers_walk
    (["R.ASIS", "L.ASIS", "R.PSIS", "L.PSIS", "S2", "L.TH1", "L.TH2", "L.TH3", "L.TH4", "L.Knee", "L.SH1", "L.SH2",
      "L.SH3", "L.Ankle", "L.Heel", "L.MT5", "L.Toe"], 15),
    # OpenCap (r_/L_ prefixes, mixed case)
    (["r.ASIS", "L.ASIS", "r.PSIS", "L.PSIS", "L_knee", "L_shank_antsup", "L_sh2", "L_sh3", "L_ankle", "L_calc",
      "L_5meta", "L_toe", "L_thigh1", "L_thigh2", "L_thigh3"], 15),
])
def test_opensim_example_sets(names, matched):
    _, how, spec = F.resolve_slots(_trial(names, side="left"), "auto")
    assert spec["name"] == "opensim"
    assert sum(not h.startswith("centroid") for h in how.values()) == matched
    assert how["asis_ipsi"] == "L.ASIS" and how["asis_contra"] in ("R.ASIS", "r.ASIS")


def test_fill_rule_refuses_a_segment_of_one_marker_naming_the_missing_slots():
    names = ["RASI", "LASI", "RPSI", "LPSI", "RTHI", "RKNE", "RANK", "RHEE", "RTOE"]  # shank: the ankle marker only
    with pytest.raises(MissingChannelError) as err:
        F.resolve_slots(_trial(names), "plug-in-gait")
    msg = err.value.message
    assert "shank has 1 marker (RANK), 2 needed" in msg and err.value.source == "mem.c3d"
    assert "missing slots: thigh_sup (RGTR...), thigh_inf" in msg and "shank_sup (RTIB1...)" in msg
    assert "\n" not in msg and "--marker-map FILE.json" in msg


def test_fill_rule_refuses_more_than_nine_filled_slots():
    # two markers on every segment, no PSIS or sacrum: 2 + 3 + 3 + 2 = 10 slots would be filled
    names = ["RASI", "LASI", "RTHI", "RKNE", "RTIB", "RANK", "RHEE", "RTOE"]
    with pytest.raises(MissingChannelError, match="10 of 18 slots would be filled \\(at most 9\\)"):
        F.resolve_slots(_trial(names), "plug-in-gait")
    # with the sacrum: 8 filled, accepted, and the one-line description says what came from where
    _, how, spec = F.resolve_slots(_trial(names + ["SACR"]), "plug-in-gait")
    line = F.describe_slots(spec["name"], how)
    assert line.startswith("marker map plug-in-gait: 10 of 18 slots matched, 8 filled: ")
    assert "foot_lat, foot_med <- centroid(foot: heel, toe)" in line


def test_auto_choice_refuses_unknown_names_in_one_line():
    with pytest.raises(MissingChannelError, match="no packaged marker map fits .*PT00, PT01.*give --marker-map"):
        F.resolve_slots(_trial(["PT00", "PT01", "PT02"]), "auto")


def test_out_of_range_known_answers():
    ranges = {"a": (0.0, 1.0), "b": (-1.0, 1.0), "c": (0.0, 2.0)}
    x = {"a": np.r_[np.full(19, 0.5), 1.3],  # 1 frame in 20 beyond 1.25: 5 %, flagged
         "b": np.full(20, 1.4),  # within 1 + 0.25 x 2 = 1.5: not flagged
         "c": np.full(20, -2.0)}  # 2 range widths under: worst
    assert out_of_range(x, ranges) == ["c", "a"]
    assert out_of_range({"a": np.r_[np.full(39, 0.5), 1.3]}, ranges) == []  # 1 frame in 40: 2.5 %, not flagged
    assert OOD_MARGIN == 0.25
    line = ood_line("w.c3d", {"w.c3d#0": ["c", "a"], "w.c3d#1": []})
    assert line.startswith("w.c3d: OUT OF DISTRIBUTION: 1 of 2 stance(s)") and "#0: c, a" in line


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return make_bundle(tmp_path_factory.mktemp("b") / "ridge")


def _write_walk(folder, trial):
    folder.mkdir(parents=True, exist_ok=True)
    trc = write_trc(folder / "walk.trc", trial)
    write_mot_grf(folder / "walk_grf.mot", trial)
    return trc


def test_bundle_stores_training_ranges_and_maps(bundle):
    spec = json.loads((bundle / "bundle.json").read_text())
    ranges = feature_ranges(spec)
    assert set(ranges) == set(spec["input"]["columns"])
    lo, hi = ranges["grf_y"]
    assert 20 < lo < 100 and 500 < hi < 1500  # vertical GRF over stances (from the 20 N threshold), N
    assert "marker_maps_used" in spec["input"]


def test_predict_with_a_user_map_records_it_and_flags_shifted_markers(bundle, tmp_path, capsys):
    t = synthetic.generate_cohort(n_subjects=2, trials_per_subject=1, seed=0)[0]  # a walk the bundle trained on
    # the lab's own names: lower case with spaces, which no packaged map lists for the thigh cluster
    rename = {n: n[0].lower() + " " + n[1:].lower() for n in t.marker_names}
    renamed = t.replace(marker_names=[rename[n] for n in t.marker_names])
    user = {"name": "my-lab", "slots": {s: c for s, c in F.load_marker_map("plug-in-gait")["slots"].items()}}
    (tmp_path / "mine.json").write_text(json.dumps(user))
    ok = _write_walk(tmp_path / "ok", renamed)
    up = renamed.replace(markers=renamed.markers + np.array([0.0, 0.4, 0.0]))  # every marker 40 cm higher (Y-up)
    high = _write_walk(tmp_path / "high", up)
    capsys.readouterr()
    rc = cli.main(["predict", str(bundle), str(ok), str(high), "--out", str(tmp_path / "out"),
                   "--marker-map", str(tmp_path / "mine.json")])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "marker map my-lab: 18 of 18 slots matched, none filled" in err
    tables = {p.name: pd.read_csv(p, keep_default_na=False) for p in sorted((tmp_path / "out").glob("*.csv"))}
    ok_tables = [v for k, v in tables.items() if k.startswith("ok__")]
    high_tables = [v for k, v in tables.items() if k.startswith("high__")]
    assert ok_tables and len(ok_tables) == len(high_tables)
    for table in ok_tables:
        assert (table["marker_map"] == "my-lab").all() and (table["filled_slots"] == "").all()
        assert (table["ood_features"] == "").all()  # a walk like the training walks: no flag
    for table in high_tables:
        flagged = table["ood_features"].iloc[0].split(";")
        assert "knee_lat_y" in flagged and "heel_y" in flagged
        assert all(f.endswith("_y") for f in flagged)  # only heights moved: no force, CoP or horizontal flag
    assert err.count("OUT OF DISTRIBUTION") == 1 and "high" in err.split("OUT OF DISTRIBUTION")[0].splitlines()[-1]


def test_predict_marker_map_file_missing_is_one_line(bundle, tmp_path, capsys):
    rc = cli.main(["predict", str(bundle), str(tmp_path), "--out", str(tmp_path / "o"),
                   "--marker-map", str(tmp_path / "absent.json")])
    err = capsys.readouterr().err
    assert rc != 0 and "absent.json" in err and "no marker map file" in err and "Traceback" not in err



@pytest.fixture(scope="module")
def plate_bundle(tmp_path_factory):
    return make_bundle(tmp_path_factory.mktemp("fp") / "ridge", feature_set="force_plate")


def test_force_plate_bundle_predicts_a_grf_file_without_markers(plate_bundle, tmp_path, capsys):
    t = synthetic.generate_cohort(n_subjects=2, trials_per_subject=1, seed=0)[0]
    mot = write_mot_grf(tmp_path / "walk_grf.mot", t)  # plates only: no marker, no side in the file
    capsys.readouterr()
    rc = cli.main(["predict", str(plate_bundle), str(mot), "--out", str(tmp_path / "a")])
    err = capsys.readouterr().err
    assert rc == 2 and "foot on plate unknown" in err and "give --side right|left" in err and "Traceback" not in err
    rc = cli.main(["predict", str(plate_bundle), str(mot), "--out", str(tmp_path / "b"), "--side", "right"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "force-plate model, assumed: overground: progression along each stance's CoP travel; side from the " \
           "plate assignment or --side" in err
    table = pd.read_csv(tmp_path / "b" / "walk_grf_stance0.csv", keep_default_na=False)
    assert (table["side"] == "right").all() and (table["marker_map"] == "none").all()
    assert np.isfinite(table["knee_medial"]).all()
    rc = cli.main(["predict", str(plate_bundle), str(mot), "--out", str(tmp_path / "c"), "--side", "right",
                   "--progression=-x"])
    err = capsys.readouterr().err
    assert rc == 0 and "assumed: progression -x (given)" in err
    # walking +x read as -x turns the frame half round: the CoP runs backwards from heel strike, out of range
    flipped = pd.read_csv(tmp_path / "c" / "walk_grf_stance0.csv", keep_default_na=False)
    assert "cop_x" in flipped["ood_features"].iloc[0].split(";")
    assert "cop_x" not in table["ood_features"].iloc[0].split(";")


def test_cop_progression_reverses_on_a_treadmill():
    n = 50
    cop = np.zeros((n, 1, 3))
    cop[:, 0, 0] = np.linspace(0.3, -0.4, n)  # the belt carries the foot back 70 cm while the CoP rolls forward
    forces = np.zeros((n, 1, 3))
    forces[:, 0, 1] = 700.0
    t = Trial(time=np.arange(n) / 100, forces=forces, cop=cop, plate_names=("FP1",), source="tm.mot")
    np.testing.assert_allclose(F.cop_progression(t, treadmill=True), [1.0, 0.0, 0.0])
    np.testing.assert_allclose(F.cop_progression(t, treadmill=False), [-1.0, 0.0, 0.0])


# -- the corpus of other labs' files (../shared/data/c3d-corpus; skipped where absent) ----------------------
CORPUS_MAPS = {
    # file: (packaged map chosen for a right stance, slots filled) or the refusal's telling words
    "PiG_PiG_Motion3_noFF.c3d": ("plug-in-gait", 8),
    "c3d.org_sample09_PlugInC3D.c3d": ("plug-in-gait", 8),
    "c3d.org_sample10_type-2a.c3d": ("plug-in-gait", 8),  # Motion Analysis: VSAC, RSHA
    "others_ADemo1_rewrite_c3d_pc_float.c3d": ("cleveland", 6),  # R.Ant.Fem., R.Post.Tib. ...
    "c3d.org_sample28_standing.C3D": ("cleveland", 7),  # 'r asis', 'r knee 1', 'r heel' ...
    "c3d.org_sample01_Eb015pr.c3d": "pelvis has 0 markers",  # clusters only (RTH1-4, RSK1-4, RFT1-3, PV1-4)
    "c3d.org_sample04_sub_labels.c3d": "foot has 1 marker (RTOE)",  # RHEE is never seen in this file
    "c3d.org_sample15_FP1.C3D": "no packaged marker map fits",  # PT00 ... PT07
}


@pytest.mark.realdata
@pytest.mark.parametrize("name", sorted(CORPUS_MAPS))
def test_corpus_marker_maps(shared_data, name):
    from gaitforce.io import read

    path = shared_data / "c3d-corpus" / name
    if not path.exists():
        pytest.skip(f"{path} absent")
    trial = read(path)
    want = CORPUS_MAPS[name]
    if isinstance(want, tuple):
        _, how, spec = F.resolve_slots(trial, "auto", side="right")
        assert (spec["name"], sum(h.startswith("centroid") for h in how.values())) == want
    else:
        with pytest.raises(MissingChannelError, match=want.replace("(", "\\(").replace(")", "\\)")):
            F.resolve_slots(trial, "auto", side="right")
