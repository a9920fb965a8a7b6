import numpy as np
import pytest
from scipy import signal as sps

from gaitforce import Event, Trial
from gaitforce.errors import GaitforceError, MissingChannelError
from gaitforce.signal.emg import emg_envelope, rms_envelope
from gaitforce.signal.filters import CausalLowpass, lowpass, zero_lag_sos
from gaitforce.signal.gaps import fill_gaps
from gaitforce.signal.mirror import (
    align_progression,
    mirror,
    mirror_left,
    side_of_name,
    swap_side_name,
)
from gaitforce.signal.stances import Stance, detect_stances, extract_stances

RATE = 200.0


def sine_trial(freq, *, n=2000, rate=RATE, amp=0.01, offset=0.5, phase=0.0):
    t = np.arange(n) / rate
    x = offset + amp * np.sin(2 * np.pi * freq * t + phase)
    markers = np.zeros((n, 1, 3))
    markers[:, 0, 0] = x
    return Trial(time=t, markers=markers, marker_names=["M"])


# --- lowpass ------------------------------------------------------------------------------------------
def test_zero_lag_gain_is_minus_3db_at_cutoff():
    for order, cutoff in [(4, 10.0), (2, 6.0), (6, 20.0)]:
        sos = zero_lag_sos(cutoff=cutoff, order=order, rate=RATE)
        _, h = sps.sosfreqz(sos, worN=[cutoff], fs=RATE)
        two_pass = np.abs(h[0]) ** 2
        assert 20 * np.log10(two_pass) == pytest.approx(-3.0103, abs=1e-3)
        poles = sps.sos2zpk(sos)[1]
        assert np.sum(np.abs(poles) > 1e-12) == order // 2  # designed at half the order, doubled by the 2nd pass


def test_lowpass_measured_gain_at_cutoff_and_stopband():
    # filter a steady sine at the cutoff and read the amplitude in the middle of the trial
    out = lowpass(sine_trial(10.0), cutoff=10.0, order=4)
    x = out.markers[500:1500, 0, 0] - 0.5
    assert np.max(np.abs(x)) / 0.01 == pytest.approx(1 / np.sqrt(2), abs=0.01)
    high = lowpass(sine_trial(40.0), cutoff=10.0, order=4).markers[500:1500, 0, 0] - 0.5
    # effective 4th order: about -24 dB per octave above the cutoff -> 2 octaves ~ -48 dB
    assert np.max(np.abs(high)) / 0.01 < 10 ** (-40 / 20)


def test_lowpass_zero_phase_and_dc():
    trial = sine_trial(1.0, phase=0.3)
    out = lowpass(trial, cutoff=10.0)
    # a sine far below the cutoff keeps amplitude and phase: equal to the input sample by sample
    assert np.allclose(out.markers[100:-100, 0, 0], trial.markers[100:-100, 0, 0], atol=2e-5)
    # zero lag: the cross-correlation peaks at lag 0
    a = trial.markers[:, 0, 0] - 0.5
    b = out.markers[:, 0, 0] - 0.5
    lags = np.arange(-5, 6)
    xc = [np.dot(a[10:-10], np.roll(b, k)[10:-10]) for k in lags]
    assert lags[int(np.argmax(xc))] == 0
    # DC preserved exactly (ends included)
    const = sine_trial(1.0, amp=0.0, offset=0.7)
    assert np.allclose(lowpass(const).markers[:, 0, 0], 0.7, rtol=0, atol=1e-12)


def test_lowpass_keeps_nan_and_filters_runs_apart():
    trial = sine_trial(1.0)
    markers = np.array(trial.markers)
    markers[900:950] = np.nan
    gappy = lowpass(trial.replace(markers=markers))
    assert np.isnan(gappy.markers[900:950]).all()
    assert np.isfinite(gappy.markers[:900]).all() and np.isfinite(gappy.markers[950:]).all()
    # each run filtered on its own: the first run equals filtering that run alone
    alone = lowpass(Trial(time=trial.time[:900], markers=markers[:900], marker_names=["M"]))
    assert np.allclose(gappy.markers[:900], alone.markers)


def test_lowpass_cop_only_where_loaded_and_emg_untouched():
    n = 400
    t = np.arange(n) / RATE
    forces = np.zeros((n, 1, 3))
    forces[100:300, 0, 1] = 700.0
    cop = np.full((n, 1, 3), np.nan)
    rng = np.random.default_rng(0)
    cop[100:300, 0, :] = 0.3 + 0.01 * rng.standard_normal((200, 3))
    sig = np.sin(2 * np.pi * 30 * t)
    trial = Trial(time=t, forces=forces, cop=cop, plate_names=["FP1"],
                  signals={"emg_x": sig, "angle": sig}, units={"emg_x": "1", "angle": "rad"})
    out = lowpass(trial, cutoff=6.0)
    assert np.isnan(out.cop[:100]).all() and np.isnan(out.cop[300:]).all()
    assert np.std(out.cop[120:280, 0, 0]) < 0.5 * np.std(cop[120:280, 0, 0])
    assert np.array_equal(out.signals["emg_x"], sig)
    assert np.max(np.abs(out.signals["angle"][50:-50])) < 0.01
    assert "lowpass" in out.history[-1]


def test_lowpass_bad_options():
    trial = sine_trial(1.0)
    with pytest.raises(GaitforceError, match="even"):
        lowpass(trial, order=3)
    with pytest.raises(GaitforceError, match="Nyquist"):
        lowpass(trial, cutoff=150.0)


# --- causal -------------------------------------------------------------------------------------------
def test_causal_equals_sosfilt_block_by_block():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((500, 3)) + np.array([5.0, -2.0, 0.0])
    f = CausalLowpass(3, rate=RATE, cutoff=10.0, order=4)
    sos = sps.butter(4, 10.0, fs=RATE, output="sos")
    zi = sps.sosfilt_zi(sos)[:, :, None] * x[0][None, None, :]
    want, _ = sps.sosfilt(sos, x, axis=0, zi=zi)
    got = np.concatenate([f.step(x[0])[None], f.process(x[1:7]), *[f.step(r)[None] for r in x[7:20]],
                          f.process(x[20:300]), f.process(x[300:])])
    assert np.allclose(got, want, atol=1e-12)
    # initialised on the first sample: a constant stream has no transient
    f.reset()
    assert np.allclose(f.process(np.full((50, 3), 4.2)), 4.2)


def test_causal_nan_holds_last_output_and_flags():
    f = CausalLowpass(2, rate=RATE, cutoff=10.0)
    y0 = f.step([1.0, np.nan])
    assert y0[0] == pytest.approx(1.0) and np.isnan(y0[1])
    assert list(f.held) == [False, True]
    y1 = f.step([2.0, 3.0])
    y2 = f.step([np.nan, 3.0])
    assert y2[0] == y1[0] and list(f.held) == [True, False]
    assert y2[1] == pytest.approx(3.0)  # channel 1 initialised on its first finite sample
    block = f.process([[np.nan, 3.0], [2.0, 3.0]])
    assert f.held.tolist() == [[True, False], [False, False]]
    assert block[0, 0] == y2[0]


def test_causal_process_with_gaps_equals_step_by_step():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((300, 4)) + 3.0
    x[:5, 2] = np.nan  # channel 2 starts late
    x[100:110, 0] = np.nan
    x[200, :] = np.nan
    a, b = CausalLowpass(4, rate=RATE, cutoff=15.0), CausalLowpass(4, rate=RATE, cutoff=15.0)
    stepped = np.array([a.step(r) for r in x])
    blocks = np.concatenate([b.process(x[:3]), b.process(x[3:150]), b.process(x[150:])])
    assert np.allclose(blocks, stepped, atol=1e-12, equal_nan=True)
    assert np.isnan(stepped[:5, 2]).all() and np.isfinite(stepped[5:]).all()
    assert np.all(stepped[100:110, 0] == stepped[99, 0])  # held through the gap


# --- gaps ---------------------------------------------------------------------------------------------
def test_fill_gaps_exact_on_cubic_and_long_gaps_left():
    n = 200
    t = np.arange(n) / 100.0
    cubic = 0.1 + 0.2 * t - 0.3 * t**2 + 0.05 * t**3
    markers = np.stack([np.stack([cubic, 2 * cubic, -cubic], 1)] * 2, 1)
    markers[50:58, 0, :] = np.nan  # 8 frames = 0.08 s <= 0.1 s: filled
    markers[100:125, 0, 1] = np.nan  # 0.25 s: left
    markers[:3, 1, :] = np.nan  # at the edge: left
    trial = Trial(time=t, markers=markers, marker_names=["A", "B"])
    out = fill_gaps(trial, max_gap=0.1)
    assert np.allclose(out.markers[50:58, 0, 0], cubic[50:58], atol=1e-12)
    assert np.isnan(out.markers[100:125, 0, 1]).all()
    assert np.isnan(out.markers[:3, 1]).all()
    assert "filled 1 gaps (8 frames)" in out.history[-1]
    assert "left 1 longer gaps and 1 gaps at the trial edges" in out.history[-1]


# --- stances ------------------------------------------------------------------------------------------
def double_hump(n):
    """Vertical GRF of a stance of n frames: two humps (~1.1 BW) and a valley, zero at both ends."""
    s = np.linspace(0, 1, n)
    return 700 * (np.sin(np.pi * s) + 0.25 * np.sin(3 * np.pi * s))


def walking_trial(*, up="y", marker_names=("RHEE", "LHEE"), rate=100.0):
    """3 s, two plates: right foot on FP1 frames 40:100 (at x=0.5), left foot on FP2 frames 90:150 (x=1.2)."""
    n = int(3 * rate)
    t = np.arange(n) / rate
    vi = 1 if up == "y" else 2
    lat = 2 if up == "y" else 1
    right_lat = 0.1 if up == "y" else -0.1  # OpenSim z points right; a Z-up lab's y points left
    forces = np.zeros((n, 2, 3))
    cop = np.full((n, 2, 3), np.nan)
    free = np.zeros((n, 2, 3))
    for p, (a, b, x, sgn) in enumerate([(40, 100, 0.5, 1), (90, 150, 1.2, -1)]):
        forces[a:b, p, vi] = double_hump(b - a)
        forces[a:b, p, 0] = np.linspace(-100, 100, b - a)
        forces[a:b, p, lat] = 30.0 * sgn
        cop[a:b, p, 0] = x + np.linspace(-0.1, 0.1, b - a)
        cop[a:b, p, vi] = 0.0
        cop[a:b, p, lat] = sgn * right_lat
        free[a:b, p, vi] = 5.0 * sgn
    markers = np.zeros((n, 2, 3))
    markers[:, 0, 0] = 0.5 - 0.1  # right heel stays near FP1
    markers[:, 0, lat] = right_lat
    markers[:, 1, 0] = 1.2 - 0.1
    markers[:, 1, lat] = -right_lat
    markers[:, :, vi] = 0.05
    return Trial(time=t, markers=markers, marker_names=list(marker_names), forces=forces, cop=cop,
                 free_moment=free, plate_names=["FP1", "FP2"], up_axis=up, source="walk.c3d")


@pytest.mark.parametrize("up", ["y", "z"])
def test_detect_stances_known_onsets_and_sides(up):
    trial = walking_trial(up=up)
    stances = detect_stances(trial, threshold=20.0)
    assert [(s.plate, s.side, s.plate_name) for s in stances] == [(0, "right", "FP1"), (1, "left", "FP2")]
    fv = double_hump(60)
    above = np.flatnonzero(fv > 20.0)
    assert stances[0].start == 40 + above[0] and stances[0].stop == 40 + above[-1] + 1
    assert stances[1].start == 90 + above[0] and stances[1].stop == 90 + above[-1] + 1


def test_detect_stances_rejects_cut_and_short_with_reasons():
    trial = walking_trial()
    forces = np.array(trial.forces)
    forces[:10, 0, 1] = 500.0  # loaded at the first frame
    forces[200:215, 1, 1] = 500.0  # 0.15 s: too short
    forces[-5:, 1, 1] = 500.0  # loaded at the last frame
    rejected = []
    stances = detect_stances(trial.replace(forces=forces), rejected=rejected)
    assert len(stances) == 2
    reasons = sorted(r.reason.split(" (")[0] for r in rejected)
    assert reasons == ["cut by the end of the recording", "cut by the start of the recording", "stance too short"]
    assert all(isinstance(r, Stance) and not r.accepted for r in rejected)


def test_stance_starting_at_onset_on_first_frame_is_kept():
    # a file trimmed at heel strike: first frame just above the threshold (as the Grand Challenge files)
    trial = walking_trial()
    forces = np.array(trial.forces)[35:]
    forces[0, 0, 1] = 25.0
    forces[1:5, 0, 1] = 0.0
    forces[:5, 0, 1] = [25.0, 60.0, 110.0, 160.0, 200.0]
    t = trial.replace(time=trial.time[35:], markers=trial.markers[35:], forces=forces, cop=trial.cop[35:],
                      free_moment=trial.free_moment[35:])
    rejected = []
    first = extract_stances(t, rejected=rejected)[0]
    assert first.meta["frame_offset"] == 0 and rejected == []
    assert first.events[0].name == "heel_strike" and first.events[0].time == t.time[0]
    # the same with 45 N (> 2 x threshold) at the first frame: the recording began inside the stance
    forces[0, 0, 1] = 45.0
    rejected = []
    assert len(detect_stances(t.replace(forces=forces), rejected=rejected)) == 1
    assert rejected[0].reason.startswith("cut by the start of the recording (45 N")
    assert len(detect_stances(t.replace(forces=forces), edge_force=50.0)) == 2


def test_detect_stances_merges_flicker_below_threshold():
    trial = walking_trial()
    forces = np.array(trial.forces)
    forces[70, 0, 1] = 10.0  # one frame dip below threshold inside the stance
    assert len(detect_stances(trial.replace(forces=forces), max_dropout=0.02)) == 2
    assert len(detect_stances(trial.replace(forces=forces), max_dropout=0.0)) == 3


def test_detect_stances_no_plate_and_side_fallbacks():
    trial = walking_trial()
    with pytest.raises(MissingChannelError, match="no force plate"):
        detect_stances(Trial(time=trial.time, source="x.trc"))
    bare = trial.select_markers([])
    assert {s.side for s in detect_stances(bare)} == {"unknown"}
    rejected = []
    assert extract_stances(bare, rejected=rejected) == []
    assert [r.reason.split(":")[0] for r in rejected] == ["foot on plate unknown"] * 2
    meta = bare.replace(meta={"plate_sides": {"FP1": "left", "FP2": "right"}})
    assert [(s.side, s.side_from) for s in detect_stances(meta)] == [("left", "meta"), ("right", "meta")]
    ev = bare.replace(events=[Event("heel_strike", 0.39, "right", plate=0)])
    assert [s.side for s in detect_stances(ev)] == ["right", "unknown"]


def test_extract_stances_single_plate_meta_events():
    trial = walking_trial()
    parts = extract_stances(trial)
    assert len(parts) == 2
    right, left = parts
    assert right.plate_names == ("FP1",) and right.forces.shape[1] == 1
    assert np.array_equal(right.forces[:, 0], trial.forces[right.meta["frame_offset"] + np.arange(right.n_frames), 0])
    assert (left.meta["side"], left.meta["plate"], left.meta["stance_index"]) == ("left", "FP2", 1)
    names = [(e.name, e.side) for e in right.events]
    assert names == [("heel_strike", "right"), ("toe_off", "right")]
    hs, to = right.events
    assert right.time[0] - 0.01 <= hs.time <= right.time[0]
    assert right.time[-1] <= to.time <= right.time[-1] + 0.01


# --- side names, mirror, alignment ----------------------------------------------------------------------
def test_side_names():
    cases = {"RHEE": ("right", "LHEE"), "LASI": ("left", "RASI"), "calcn_r": ("right", "calcn_l"),
             "R_Heel": ("right", "L_Heel"), "LeftToe": ("left", "RightToe"), "knee_L": ("left", "knee_R"),
             "RHeel": ("right", "LHeel"), "LAsis": ("left", "RAsis"), "Lumbar": (None, "Lumbar"),
             "RF": (None, "RF"), "vasmed": (None, "vasmed"), "Sacrum": (None, "Sacrum")}
    for name, (side, other) in cases.items():
        assert side_of_name(name) == side, name
        assert swap_side_name(name) == other, name


def assert_same_trial(a, b):
    assert a.marker_names == b.marker_names and a.emg_names == b.emg_names
    for f in ("markers", "forces", "free_moment"):
        assert np.array_equal(getattr(a, f), getattr(b, f)), f
    assert np.array_equal(a.cop, b.cop, equal_nan=True)
    assert a.events == b.events and a.meta["side"] == b.meta["side"]
    assert set(a.signals) == set(b.signals)


def test_mirror_twice_is_identity_and_pseudovector_rule():
    left = extract_stances(walking_trial())[1]
    m = mirror(left)
    assert m.meta["side"] == "right" and m.marker_names == ("LHEE", "RHEE")
    assert all(e.side == "right" for e in m.events)
    # positions and forces: z flips; free moment (axial vector): x and y flip, z stays
    assert np.array_equal(m.forces[..., 2], -left.forces[..., 2])
    assert np.array_equal(m.forces[..., :2], left.forces[..., :2])
    assert np.array_equal(m.free_moment[..., 1], -left.free_moment[..., 1])
    # the free moment about the vertical of a left foot is the mirror image of the right foot's
    right = extract_stances(walking_trial())[0]
    assert np.allclose(m.free_moment[:, 0, 1], right.free_moment[:, 0, 1])
    assert np.allclose(m.forces[:, 0, 2], right.forces[:, 0, 2])
    assert_same_trial(mirror(m), left)


def test_mirror_of_moment_follows_cross_product():
    # a moment r x F must mirror like r and F mirror: check -S (r x F) == (S r) x (S F) for the stated rule
    rng = np.random.default_rng(3)
    r, f = rng.standard_normal((2, 3))
    s = np.array([1.0, 1.0, -1.0])
    assert np.allclose(-s * np.cross(r, f), np.cross(s * r, s * f))
    t = Trial(time=[0, 0.01], plate_names=["P"], free_moment=np.tile(np.cross(r, f), (2, 1, 1)),
              meta={"side": "left"})
    assert np.allclose(mirror_left(t).free_moment[0, 0], np.cross(s * r, s * f))


def test_mirror_left_passes_right_and_needs_side():
    right, left = extract_stances(walking_trial())
    assert mirror_left(right) is right
    assert mirror_left(left).meta["side"] == "right"
    with pytest.raises(GaitforceError, match="side"):
        mirror_left(walking_trial())


def test_align_progression_rotates_about_vertical():
    trial = walking_trial()
    n = trial.n_frames
    # walking along -z (45 deg variant below): make markers move 1 m along -z
    markers = np.array(trial.markers)
    markers[:, :, 2] += np.linspace(0, -1.0, n)[:, None]
    walking = trial.replace(markers=markers)
    out = align_progression(walking)
    d = out.markers[-1].mean(axis=0) - out.markers[0].mean(axis=0)
    assert d[0] == pytest.approx(1.0) and abs(d[2]) < 1e-12 and abs(d[1]) < 1e-12
    assert out.meta["progression_angle_deg"] == pytest.approx(-90.0)
    # vertical unchanged, lengths unchanged, origin fixed
    assert np.allclose(out.forces[..., 1], walking.forces[..., 1])
    assert np.allclose(np.linalg.norm(out.markers, axis=2), np.linalg.norm(walking.markers, axis=2))
    # z-up lab, progression along +y
    zt = walking_trial(up="z")
    zm = np.array(zt.markers)
    zm[:, :, 1] += np.linspace(0, 2.0, n)[:, None]
    zout = align_progression(zt.replace(markers=zm))
    dz = zout.markers[-1].mean(axis=0) - zout.markers[0].mean(axis=0)
    assert dz[0] == pytest.approx(2.0) and abs(dz[1]) < 1e-12
    # a proper rotation (not a reflection): the vertical free moment, an axial vector, keeps its sign
    assert np.allclose(zout.free_moment[..., 2], zt.free_moment[..., 2])
    assert np.allclose(out.free_moment[..., 1], walking.free_moment[..., 1])
    # walking along -z (Y up), the right side was +x: it becomes +z (right) after alignment
    probe = walking.replace(markers=np.array(walking.markers) + np.array([1.0, 0, 0]))
    assert np.allclose(align_progression(probe).markers - out.markers, [0, 0, 1.0])
    with pytest.raises(GaitforceError, match="progression"):
        align_progression(Trial(time=[0, 0.01], markers=np.zeros((2, 1, 3)), marker_names=["M"]))


def test_align_progression_falls_back_to_cop():
    trial = walking_trial().select_markers([])  # CoP moves from x 0.4 to 1.3
    cop = np.array(trial.cop)
    cop[..., [0, 2]] = cop[..., [2, 0]]  # now it moves along +z
    out = align_progression(trial.replace(cop=cop))
    # first loaded CoP (FP1, x 0.1, z ~0.4) -> last (FP2, x -0.1, z ~1.3); ends within a frame of the stance edges
    assert out.meta["progression_angle_deg"] == pytest.approx(np.degrees(np.arctan2(0.9, -0.2)), abs=0.5)


# --- EMG ----------------------------------------------------------------------------------------------
def test_rms_of_sine_is_amplitude_over_sqrt2():
    fs, amp = 1000.0, 0.002
    t = np.arange(3000) / fs
    x = 0.001 + amp * np.sin(2 * np.pi * 100 * t)  # offset removed first; 51-sample window ~ 5 periods
    env = rms_envelope(x[:, None], 51)[:, 0]
    assert np.allclose(env[100:-100], amp / np.sqrt(2), rtol=0.01)


def emg_trial(mvc_amp=0.002):
    fs = 1000.0
    te = np.arange(2000) / fs
    burst = np.where((te > 0.5) & (te < 1.0), mvc_amp, mvc_amp / 4)
    emg = np.stack([burst * np.sin(2 * np.pi * 80 * te), 0.5 * burst * np.sin(2 * np.pi * 80 * te)], 1)
    t = np.arange(0, 2.0, 0.01)
    return Trial(time=t, emg=emg, emg_time=te, emg_names=["vasmed", "RTA"])


def test_emg_envelope_normalised_on_kinematic_frames():
    trial = emg_trial()
    out = emg_envelope(trial, window=0.05)
    for name in ("emg_vasmed", "emg_RTA"):
        e = out.signals[name]
        assert out.units[name] == "1" and e.shape == (trial.n_frames,)
        assert np.nanmax(e) == pytest.approx(1.0, abs=0.005)  # max taken at the EMG rate, before resampling
        assert np.nanmedian(e[60:90]) == pytest.approx(1.0, abs=0.02)
        assert np.nanmedian(e[120:180]) == pytest.approx(0.25, abs=0.02)
    mvc = emg_envelope(trial, mvc={"vasmed": 0.002 / np.sqrt(2) * 2, "RTA": 0.002 / np.sqrt(2)})
    assert np.nanmedian(mvc.signals["emg_vasmed"][60:90]) == pytest.approx(0.5, abs=0.02)
    assert np.nanmedian(mvc.signals["emg_RTA"][60:90]) == pytest.approx(0.5, abs=0.02)
    with pytest.raises(MissingChannelError, match="MVC"):
        emg_envelope(trial, mvc={"vasmed": 1.0})
    with pytest.raises(MissingChannelError, match="no EMG"):
        emg_envelope(Trial(time=[0, 0.01]))


# --- real data ----------------------------------------------------------------------------------------
@pytest.mark.realdata
def test_real_c3d_stances_sides_and_events(gc_dir):
    from gaitforce.io import read

    jw = lowpass(fill_gaps(read(gc_dir / "jw-c3d" / "jw_ngait_og1.c3d")))
    parts = extract_stances(jw)
    # three plates stepped on in the order FP2, FP1, FP3, feet alternating, side found from the foot markers
    assert [(p.meta["plate"], p.meta["side"], p.meta["side_from"]) for p in parts] == [
        ("FP2", "right", "markers"), ("FP1", "left", "markers"), ("FP3", "right", "markers")]
    assert all(0.6 < p.duration < 0.8 for p in parts)  # walking stance at ~1.2 m/s
    # PS (GC5): one clean left stance on FP1; the lab's own heel-strike event agrees within 2 frames
    ps = read(gc_dir / "gc5-ps-opensim" / "PS_ngait_og_ss1.c3d")
    rejected = []
    (stance,) = extract_stances(ps, rejected=rejected)
    assert stance.meta["side"] == "left" and stance.meta["plate"] == "FP1"
    assert sorted(r.reason.split(" (")[0] for r in rejected) == [
        "cut by the end of the recording", "cut by the start of the recording"]
    lab_hs = min(e.time for e in ps.events if e.name == "heel_strike")
    ours = [e.time for e in stance.events if e.name == "heel_strike"][0]
    assert abs(ours - lab_hs) < 2 / ps.rate
    # aligned to +x and mirrored into the right-limb frame: the stance foot lies right (+z) of the sacrum
    aligned = align_progression(stance)
    left_foot = aligned.marker("LHeel")[:, 2].mean() - aligned.marker("Sacral")[:, 2].mean()
    assert left_foot < -0.03
    right = mirror_left(aligned)
    foot = right.marker("RHeel")[:, 2].mean() - right.marker("Sacral")[:, 2].mean()
    assert foot > 0.03


@pytest.mark.realdata
def test_real_grand_challenge_stances_all_kept(gc_dir):
    from gaitforce.io import read

    files = sorted((gc_dir / "competitions").glob("*.mat"))
    assert len(files) == 29
    for f in files:
        trial = read(f)
        rejected = []
        (stance,) = extract_stances(trial, rejected=rejected)  # one right stance, starting at or after frame 0
        assert stance.meta["side"] == "right" and rejected == [], f.name
        assert 0.6 < stance.duration < 0.85, f.name
        assert stance.meta["frame_offset"] <= 2, f.name


def test_emg_nan_rule_and_offset_from_finite_samples():
    fs = 1000.0
    t = np.arange(2000) / fs
    x = 0.5 + 0.002 * np.sin(2 * np.pi * 100 * t)  # large offset: must be removed using finite samples only
    x[800:1000] = np.nan  # 200 ms lost
    env = rms_envelope(x[:, None], 51)[:, 0]
    assert np.isnan(env[830:970]).all()  # windows more than half NaN
    assert np.allclose(env[100:700], 0.002 / np.sqrt(2), rtol=0.01)
    assert np.allclose(env[1100:1900], 0.002 / np.sqrt(2), rtol=0.01)
