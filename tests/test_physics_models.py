"""The model registry of the physics labeller: gait14dof22musc and Rajagopal 2015 through one pipeline.

Pure tests check the registry, the knee-sign conventions and the landmark scaling against each model's geometry;
the OpenSim tests check those geometry constants against the model files themselves, the prepared Rajagopal model
(locks, reserves, muscles) and, on GC5, that Rajagopal driven by the reference's own IK reproduces the reference's
static optimisation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gaitforce.errors import GaitforceError
from gaitforce.physics import LabelSettings
from gaitforce.physics.model import MODELS, spec


def test_every_model_names_its_groups_from_its_own_muscles():
    for ms in MODELS.values():
        assert set(ms.groups) == {"glut_max", "glut_med", "quadriceps", "hamstrings"}
        for members in ms.groups.values():
            assert set(members) <= set(ms.muscles)
        assert set(ms.locked_coordinates) <= set(ms.free_coordinates)  # a locked coordinate is never muscle-driven
    raj = spec("rajagopal2015")
    # the paper's EMG muscles exist one by one in Rajagopal, not in the lumped model
    for emg in ("semimem", "bflh", "vasmed", "vaslat", "recfem", "gasmed", "gaslat", "tfl", "tibant", "perlong",
                "soleus", "addmagDist", "glmax1", "glmed1"):
        assert emg in raj.muscles
    assert len(raj.muscles) == 40 and len(spec().muscles) == 11
    assert spec().name == "gait14dof22musc"


def test_unknown_model_is_one_clear_error():
    with pytest.raises(GaitforceError, match="unknown model 'arnold2010'; known: gait14dof22musc, rajagopal2015"):
        spec("arnold2010")
    with pytest.raises(ValueError, match="model must be one of"):
        LabelSettings(model="arnold2010")


def test_knee_sign_flips_only_between_conventions():
    from gaitforce.physics.given import RAJAGOPAL_SIGNS, convention_signs

    assert convention_signs("rajagopal2015", "gait14dof22musc") == RAJAGOPAL_SIGNS == {"knee_angle_r": -1.0,
                                                                                      "knee_angle_l": -1.0}
    assert convention_signs("rajagopal2015", "rajagopal2015") == {}
    assert convention_signs("gait14dof22musc", "gait14dof22musc") == {}


def test_cache_key_follows_the_model():
    from gaitforce.physics.label import cache_key
    from gaitforce.trial import Subject, Trial

    t = Trial(time=np.arange(4) / 100, markers=np.ones((4, 1, 3)), marker_names=("RASI",),
              subject=Subject(id="s", mass=70.0), meta={"side": "right"})
    a, b = cache_key(t, LabelSettings(model="gait14dof22musc")), cache_key(t, LabelSettings(model="rajagopal2015"))
    assert a != b and b == cache_key(t, LabelSettings())  # the default model (issue 15: the held-out choice)


def test_landmark_scaling_uses_the_model_geometry():
    """One static trial, two models: the scale factors are the same measured lengths over each model's own
    lengths, so their ratios are the models' length ratios; the ankle landmark sits at the model's ankle."""
    from gaitforce.data.synthetic import generate_trial
    from gaitforce.physics.landmarks import _pelvis_width, calibrate

    static = generate_trial(seed=3).to_y_up()
    g, r = spec("gait14dof22musc").geometry, spec("rajagopal2015").geometry
    cal_g, cal_r = calibrate(static, g), calibrate(static, r)
    assert calibrate(static).scales == cal_g.scales  # the default is the default model's geometry
    assert cal_r.scales["femur_r"] / cal_g.scales["femur_r"] == pytest.approx(g.femur_length / r.femur_length)
    assert cal_r.scales["tibia_l"] / cal_g.scales["tibia_l"] == pytest.approx(g.tibia_length / r.tibia_length)
    assert cal_r.scales["pelvis"] / cal_g.scales["pelvis"] == pytest.approx(
        _pelvis_width(g.hip_centre[2]) / _pelvis_width(r.hip_centre[2]))
    assert _pelvis_width(0.0835) == pytest.approx(0.23091, abs=1e-5)  # (83.5 - 7.3) / 0.33 mm
    ankle_marker = next(loc for name, (body, loc) in cal_r.markers.items() if body == "tibia_r")
    s = cal_r.scales["tibia_r"]
    assert ankle_marker[0] == pytest.approx(-0.01 * s) and ankle_marker[1] == pytest.approx(-0.40 * s)


# -- with OpenSim and the fetched models ---------------------------------------------------------------------
@pytest.mark.opensim
@pytest.mark.parametrize("name", list(MODELS))
def test_geometry_constants_are_the_model_files(fetched_models, name):
    osim = pytest.importorskip("opensim")
    from gaitforce.physics.model import generic_model

    model = generic_model(name)
    state = model.initSystem()
    bodies = model.getBodySet()

    def origin(body, frame):
        return np.array(bodies.get(body).findStationLocationInAnotherFrame(state, osim.Vec3(0, 0, 0),
                                                                           bodies.get(frame)).to_numpy())

    geo = spec(name).geometry
    np.testing.assert_allclose(origin("femur_r", "pelvis"), geo.hip_centre, atol=1e-5)
    assert np.linalg.norm(origin("tibia_r", "femur_r")) == pytest.approx(geo.femur_length, abs=1e-3)
    np.testing.assert_allclose(origin("talus_r", "tibia_r"), geo.ankle_in_tibia, atol=1e-5)
    assert np.linalg.norm(geo.ankle_in_tibia) == pytest.approx(geo.tibia_length, abs=1e-5)
    assert model.getMarkerSet().getSize() == 0  # the pipeline places its own markers, named as the trial's
    forces = model.getForceSet()
    kinds = {forces.get(i).getConcreteClassName() for i in range(forces.getSize())}
    assert "CoordinateActuator" not in kinds and "HuntCrossleyForce" not in kinds


@pytest.mark.opensim
def test_rajagopal_prepared_for_static_optimisation(fetched_models):
    from gaitforce.physics.pipeline import finish_model, scaled_generic_model

    settings = LabelSettings(model="rajagopal2015")
    model = finish_model(scaled_generic_model(None, 80.0, settings), settings)
    state = model.initSystem()
    assert model.getTotalMass(state) == pytest.approx(80.0)
    coords = model.getCoordinateSet()
    for name in ("lumbar_extension", "arm_flex_r", "elbow_flex_l"):
        assert coords.get(name).get_locked()  # no marker drives them in the marker route
    assert not coords.get("knee_angle_r").get_locked()
    acts = {model.getActuators().get(i).getName() for i in range(model.getActuators().getSize())}
    assert "reserve_knee_angle_r" in acts and "residual_pelvis_ty" in acts
    assert not any("beta" in a for a in acts)  # the patella follows the knee by a constraint: no actuator
    muscles = model.getMuscles()
    assert muscles.getSize() == 80
    assert {muscles.get(i).getConcreteClassName() for i in range(80)} == {"DeGrooteFregly2016Muscle"}
    assert all(muscles.get(i).get_ignore_tendon_compliance() for i in range(80))


@pytest.mark.opensim
@pytest.mark.slow
@pytest.mark.realdata
def test_rajagopal_from_the_reference_ik_tracks_the_reference_so(gc_dir, tmp_path, fetched_models):
    """GC5's own Rajagopal IK through our ID/SO/JR on our Rajagopal model: the left leg's soleus, gluteus maximus,
    gluteus medius and quadriceps follow the independent Rajagopal SO (r > 0.85 over the trial), the arms the
    file lacks stay locked, and the knee keeps Rajagopal's sign (flexion positive, no flip)."""
    import dataclasses

    from gaitforce.io.sto import read_sto_table
    from gaitforce.io.trc import read_trc
    from gaitforce.physics.given import convention_signs, run_given_kinematics
    from gaitforce.physics.landmarks import find_landmarks
    from gaitforce.physics.pipeline import assign_plates

    gc5, stem = gc_dir / "gc5-ps-opensim", "PS_ngait_og_ss1"
    loads = read_trc(gc5 / f"{stem}.trc", grf=gc5 / f"{stem}_kinetics.mot").to_y_up()
    loads = loads.replace(subject=dataclasses.replace(loads.subject, mass=75.0, height=1.80), note="test subject")
    plates = assign_plates(loads, find_landmarks(loads.marker_names))
    kin, _ = read_sto_table(gc5 / f"{stem}_kinematics.mot")
    kin = kin[kin["time"] <= 0.45]  # the loading half of the left stance keeps the test short
    settings = LabelSettings(model="rajagopal2015")
    tables, _ = run_given_kinematics(kin, loads, plates, tmp_path, settings,
                                     signs=convention_signs("rajagopal2015", "rajagopal2015"))
    ref, _ = read_sto_table(gc5 / f"{stem}_SO_force.sto")
    so = tables["so"]
    groups = {"soleus": ["soleus"], "glmax": ["glmax1", "glmax2", "glmax3"], "glmed": ["glmed1", "glmed2", "glmed3"],
              "quadriceps": ["recfem", "vasint", "vaslat", "vasmed"]}
    for members in groups.values():
        a = sum(so[f"{m}_l"].to_numpy() for m in members)
        b = np.interp(so["time"], ref["time"], sum(ref[f"{m}_l"].to_numpy() for m in members))
        assert np.corrcoef(a, b)[0, 1] > 0.85, members
    assert tables["ik"]["knee_angle_l"].max() > 0.3  # flexion positive in Rajagopal, not flipped
    assert (tables["ik"]["arm_flex_r"] == 0).all()
    from gaitforce.physics.label import targets_from_tables

    targets = targets_from_tables(tables, "l", settings)
    assert {"muscle_vasmed", "muscle_gaslat", "muscle_tfl", "quadriceps", "knee_medial"} <= set(targets.columns)
    np.testing.assert_allclose(targets["quadriceps"], sum(targets[f"muscle_{m}"] for m in groups["quadriceps"]))


# -- one-leg recordings (the Grand Challenge .mat files) ------------------------------------------------------
def _one_leg(trial, side="l"):
    """``trial`` without the markers of leg ``side`` (names starting with L / l)."""
    keep = [n for n in trial.marker_names if not n.upper().startswith(side.upper()) or n.upper()[1:4] in ("ASI", "PSI")]
    return trial.select_markers(keep)


def test_one_leg_calibration_scales_both_legs_from_the_tracked_one():
    from gaitforce.data.synthetic import generate_trial
    from gaitforce.errors import MissingChannelError
    from gaitforce.physics.landmarks import calibrate

    both = generate_trial(seed=5).to_y_up()
    right = _one_leg(both, "l")
    cal = calibrate(right)
    assert cal.legs == ("r",) and calibrate(both).legs == ("r", "l")
    # lengths from the right leg only, applied to both legs; no marker on the untracked leg's bodies
    assert cal.scales["femur_l"] == cal.scales["femur_r"] and cal.scales["tibia_l"] == cal.scales["tibia_r"]
    assert cal.measures["femur_length"] == pytest.approx(cal.scales["femur_r"] * 0.3960)
    assert not any(body.endswith("_l") for body, _ in cal.markers.values())
    assert cal.measures["knee_width_l"] == cal.measures["knee_width_r"]
    # a leg is all or nothing: without the right toe, no leg is complete
    no_toe = right.select_markers([n for n in right.marker_names if "TOE" not in n.upper()])
    with pytest.raises(MissingChannelError, match="all of one leg at least"):
        calibrate(no_toe)


def test_plates_go_only_to_a_tracked_foot():
    from gaitforce.data.synthetic import generate_trial
    from gaitforce.physics.landmarks import find_landmarks
    from gaitforce.physics.pipeline import assign_plates

    both = generate_trial(seed=5).to_y_up()
    right = _one_leg(both, "l")
    two, one = assign_plates(both, find_landmarks(both.marker_names)), assign_plates(right, find_landmarks(right.marker_names))
    assert set(two.values()) == {"r", "l"}  # the synthetic walk loads both feet
    assert {i: s for i, s in two.items() if s == "r"} == one  # the right foot's plates as before, no other
    # with both feet tracked, a loaded plate far from both is refused, not dropped
    from gaitforce.errors import GaitforceError

    shifted = both.replace(cop=both.cop + np.array([2.0, 0.0, 0.0]))
    with pytest.raises(GaitforceError, match="from the nearest foot"):
        assign_plates(shifted, find_landmarks(shifted.marker_names))


@pytest.mark.opensim
@pytest.mark.slow
@pytest.mark.realdata
def test_grand_challenge_mat_stance_labels_from_its_one_leg(gc_dir, tmp_path, fetched_models):
    """DM GC6 og1 from the competitions .mat alone (right leg + pelvis, no static trial): the labeller runs with
    the left leg locked, and its right knee force follows the implant's (total within 15 % at the peak, medial
    r > 0.75): the same figures as from DM's raw two-leg recording with a static trial (docs/physics.md)."""
    from gaitforce.io.grand_challenge import read_gc_mat
    from gaitforce.physics import label_trial
    from gaitforce.physics.pipeline import read_sto

    mat = read_gc_mat(gc_dir / "competitions" / "DM__GC6__DM_ngait_og1.mat").to_y_up()
    a, b = mat.meta["stance_frames"]
    stance = mat.slice_frames(a, b)
    measured = {k: np.asarray(stance.signal(f"knee_{k}")) for k in ("medial", "total")}
    out = label_trial(stance, settings=LabelSettings(model="gait14dof22musc"), work_dir=tmp_path)
    total, medial = np.asarray(out.signal("knee_total")), np.asarray(out.signal("knee_medial"))
    assert total.max() == pytest.approx(measured["total"].max(), rel=0.15)
    assert np.corrcoef(medial, measured["medial"])[0, 1] > 0.75
    ik = read_sto(tmp_path / "ik.mot")
    assert np.ptp(ik["knee_angle_l"]) == 0 and np.ptp(ik["knee_angle_r"]) > 20  # degrees: left locked, right walks


def test_cached_targets_include_those_that_replace_a_signal(tmp_path, monkeypatch):
    """A Grand Challenge stance carries its measured knee_medial; the physics knee_medial replaces it in the
    labelled Trial and must still reach the cache (it was dropped as 'not new' before pipeline version 3)."""
    import gaitforce.physics.label as label
    from gaitforce.trial import Subject, Trial

    trial = Trial(time=np.arange(4) / 100, markers=np.ones((4, 1, 3)), marker_names=("RASI",),
                  subject=Subject(id="s", mass=70.0), meta={"side": "right"}).with_signals(
        knee_medial=(np.full(4, 900.0), "N"), emg_vasmed=(np.ones(4), "a.u."))

    def fake_label_trial(t, *, settings, static, work_dir):
        Path(work_dir).mkdir(parents=True)  # as OpenSim's files would
        targets = {"knee_medial": (np.full(4, 1500.0), "N"), "quadriceps": (np.full(4, 300.0), "N")}
        out = t.with_signals(note="fake", **targets)
        return out.replace(meta={**t.meta, "physics_targets": list(targets)})

    monkeypatch.setattr(label, "label_trial", fake_label_trial)
    cache = tmp_path / "x.parquet"
    result = label._label_task(label._pack(trial), None, LabelSettings(model="gait14dof22musc").to_dict(), str(tmp_path / "w"), str(cache))
    assert result["ok"], result
    table = pd.read_parquet(cache)
    assert list(table.columns) == ["frame", "time", "knee_medial", "quadriceps"]  # no emg, the physics value
    np.testing.assert_allclose(table["knee_medial"], 1500.0)


def test_handsfield_volume_rule_known_values():
    from gaitforce.physics.model import muscle_volume_cm3, strength_factor

    # Handsfield et al. 2014: V = 47.05 m h + 1289.6 cm^3
    assert muscle_volume_cm3(75.0, 1.70) == pytest.approx(47.05 * 127.5 + 1289.6)  # 7288.4
    assert strength_factor(75.0, 1.70, 75.0, 1.70) == pytest.approx(1.0)
    assert strength_factor(60.0, 1.60, 75.0, 1.80) == pytest.approx((47.05 * 96 + 1289.6) / (47.05 * 135 + 1289.6))


@pytest.mark.opensim
@pytest.mark.parametrize("name", list(MODELS))
def test_strength_scaled_model_fmax_follows_handsfield(fetched_models, name):
    """A 60 kg, 1.55 m subject scaled to 0.9 of the generic size: every muscle's Fmax = generic Fmax x volume
    ratio (Handsfield 2014) x generic / scaled optimal fibre length; 'generic' leaves Fmax as in the file."""
    from gaitforce.physics.model import generic_model, muscle_parameters
    from gaitforce.physics.pipeline import scaled_generic_model

    base = generic_model(name)
    state = base.initSystem()
    gen, gen_mass = muscle_parameters(base), base.getTotalMass(state)
    plain = muscle_parameters(scaled_generic_model(None, 60.0, LabelSettings(model=name), uniform=0.9))
    strong = muscle_parameters(scaled_generic_model(None, 60.0, LabelSettings(model=name, strength="handsfield2014"),
                                                    uniform=0.9, height=1.55))
    ratio = (47.05 * 60.0 * 1.55 + 1289.6) / (47.05 * gen_mass * spec(name).height + 1289.6)
    assert 0.6 < ratio < 0.85
    for muscle, (f0, l0) in gen.items():
        assert plain[muscle][0] == pytest.approx(f0)  # OpenSim's scaling leaves the forces alone
        assert strong[muscle][1] == pytest.approx(plain[muscle][1])  # fibre lengths scaled with the paths
        assert strong[muscle][0] == pytest.approx(f0 * ratio * l0 / strong[muscle][1], rel=1e-9)
    vasti = "vasti_r" if name == "gait14dof22musc" else "vasmed_r"
    assert strong[vasti][0] == pytest.approx(gen[vasti][0] * ratio / 0.9, rel=0.02)  # uniform 0.9: l_opt x 0.9
