"""Streaming: the hot-path filter, the channel layout, online == offline features (stated tolerances),
robustness (occlusion, drops, late samples, restarts, mismatched channels), LSL end to end and the CLI."""

from __future__ import annotations

import uuid

import numpy as np
import pandas as pd
import pytest
from builders import MAP, make_bundle

from gaitforce import cli
from gaitforce.data import features, ingest, synthetic
from gaitforce.errors import MissingChannelError
from gaitforce.learn.bundle import load_bundle
from gaitforce.signal.filters import CausalLowpass
from gaitforce.stream.filter import StreamFilter
from gaitforce.stream.layout import Channel, StreamLayout
from gaitforce.stream.online import (
    FLAG_DROPPED,
    FLAG_LATE,
    FLAG_NO_PREDICTION,
    FLAG_OCCLUDED,
    FLAG_RESTART,
    OnlinePipeline,
    OnlineSettings,
)


@pytest.fixture(scope="session")
def bundle_dir(tmp_path_factory):
    return make_bundle(tmp_path_factory.mktemp("stream") / "bundle")


@pytest.fixture(scope="session")
def bundle(bundle_dir):
    return load_bundle(bundle_dir)


@pytest.fixture(scope="session")
def walk():
    return synthetic.generate_trial(seed=0, subject=3, trial=1)


def run_offline(pipe, trial, samples=None, stamps=None):
    samples = StreamLayout.trial_samples(trial) if samples is None else samples
    stamps = trial.time if stamps is None else stamps
    out = []
    for x, t in zip(samples, stamps):
        row = pipe.process(x, t)
        out.append(None if row is None else row.copy())
    return out


# -- filter and layout --------------------------------------------------------------------------------------
def test_stream_filter_equals_causal_lowpass_with_nan_rules():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 40)).cumsum(axis=0)
    x[50:60, 3] = np.nan  # a gap: held, state untouched
    x[:20, 7] = np.nan  # starts late: initialised at its first finite sample
    x[100] = np.nan
    ref = CausalLowpass(40, rate=100.0, cutoff=8.0, order=4).process(x)
    f = StreamFilter(40, rate=100.0, cutoff=8.0, order=4)
    out = np.array([f.step(row).copy() for row in x])
    assert np.array_equal(np.isnan(out), np.isnan(ref))
    np.testing.assert_allclose(out, ref, atol=1e-9, equal_nan=True)
    f.restart([3])
    assert np.isnan(f.last[3]) and np.isfinite(f.step(np.full(40, 5.0))[3])
    assert f.last[3] == pytest.approx(5.0)  # a restarted channel starts at its first sample, no transient


def test_layout_round_trips_through_lsl_metadata_with_units_and_up_axis(walk):
    pylsl = pytest.importorskip("pylsl")
    lay = StreamLayout.for_trial(walk)
    info = pylsl.StreamInfo("x", "Mocap", lay.n_channels, 100.0, pylsl.cf_double64, "sid")
    lay.describe(info)
    back = StreamLayout.from_info(info)
    assert back.marker_names == walk.marker_names and back.plate_names == walk.plate_names
    m, f, c, t = back.split(StreamLayout.trial_samples(walk)[40])
    np.testing.assert_array_equal(m, walk.markers[40])
    np.testing.assert_array_equal(f, walk.forces[40])
    # a Z-up lab in millimetres gives the same Y-up metres
    z = walk.to_z_up()
    chans = [Channel(ch.label, ch.type, "mm" if ch.type in ("Position", "CoP") else ch.unit, ch.object,
                     ch.component) for ch in StreamLayout.for_trial(z).channels]
    lay_mm = StreamLayout(chans, up_axis="z")
    raw = StreamLayout.trial_samples(z)[40] * np.where([c.unit == "mm" for c in chans], 1000.0, 1.0)
    m2, f2, c2, _ = lay_mm.split(raw)
    np.testing.assert_allclose(m2, walk.markers[40], atol=1e-12)
    np.testing.assert_allclose(f2, walk.forces[40], atol=1e-9)


# -- online == offline ------------------------------------------------------------------------------------
def _offline_with_times(trial, settings):
    off = ingest.trial_frames(trial, settings=settings)
    off["t"] = np.nan
    for s in ingest.trial_stances(trial, settings):
        if s.accepted:
            rows = off.stance_id == s.id
            off.loc[rows, "t"] = trial.time[s.start + off.loc[rows, "frame"].to_numpy()]
    return off


@pytest.mark.parametrize("subject", [0, 3])
def test_online_features_equal_offline_features_within_the_stated_mismatch(bundle, subject):
    """Filter off on both sides: same stance frames; vertical coordinates and vertical GRF equal (they do not
    depend on the progression heading); horizontal ones within the heading mismatch (median < 5 mm)."""
    trial = synthetic.generate_trial(seed=0, subject=subject, trial=1)
    settings = ingest.IngestSettings(marker_map=MAP, lowpass_cutoff=None)
    off = _offline_with_times(trial, settings)
    pipe = OnlinePipeline(bundle, StreamLayout.for_trial(trial), rate=trial.rate,
                          settings=OnlineSettings.from_bundle(bundle, lowpass_cutoff=None))
    pipe.features_log = []
    run_offline(pipe, trial)
    cols = features.feature_columns()[:60]
    on = pd.DataFrame([{"t": t, "side": s, **dict(zip(cols, f[:60]))} for t, s, f, *_ in pipe.features_log])
    both = off.merge(on, on=["t", "side"], suffixes=("", "_on"))
    assert len(both) == len(off) == len(on) and set(off.side) == {"right", "left"}
    # origin fixed at >= 80 N as offline: frames from then on are compared
    late = both.groupby("stance_id").cumcount() >= 3
    b = both[late]
    vert = [c for c in cols if c.endswith("_y")]
    np.testing.assert_allclose(b[[c + "_on" for c in vert]].to_numpy(), b[vert].to_numpy(), atol=1e-6)
    horiz = [c for c in cols[:54] if not c.endswith("_y")]
    d = np.abs(b[[c + "_on" for c in horiz]].to_numpy() - b[horiz].to_numpy())
    assert np.median(d) < 0.005 and d.max() < 0.10


@pytest.mark.parametrize("subject", [0, 3])
def test_causal_ingest_matches_online_features_with_the_filter_on(bundle, subject):
    """Filter ON (10 Hz, order 4) on both sides. With ``lowpass_causal`` the offline dataset is filtered as the
    stream filters and cut where the stream cuts, so vertical coordinates agree to 1e-6 m, as they do with the
    filter off; the zero-lag dataset differs from the online frames by the filter's lag (centimetres)."""
    trial = synthetic.generate_trial(seed=0, subject=subject, trial=1)
    cols = features.feature_columns()[:60]
    vert = [c for c in cols if c.endswith("_y")]
    pipe = OnlinePipeline(bundle, StreamLayout.for_trial(trial), rate=trial.rate,
                          settings=OnlineSettings.from_bundle(bundle, lowpass_cutoff=10.0))
    pipe.features_log = []
    run_offline(pipe, trial)
    on = pd.DataFrame([{"t": t, "side": s, **dict(zip(cols, f[:60]))} for t, s, f, *_ in pipe.features_log])
    diffs = {}
    for causal in (True, False):
        settings = ingest.IngestSettings(marker_map=MAP, lowpass_cutoff=10.0, lowpass_causal=causal)
        both = _offline_with_times(trial, settings).merge(on, on=["t", "side"], suffixes=("", "_on"))
        b = both[both.groupby("stance_id").cumcount() >= 3]
        diffs[causal] = np.abs(b[[c + "_on" for c in vert]].to_numpy() - b[vert].to_numpy())
        if causal:
            assert len(both) == len(on)  # the same stance frames as the stream's
    assert diffs[True].max() < 1e-6
    assert diffs[False].max() > 0.01  # the lag the causal dataset removes


def test_causal_lowpass_is_the_stream_filter_and_lags():
    """preprocess.lowpass_causal equals CausalLowpass run frame by frame (markers), restarts the CoP at each
    loaded run, and delays a 1 Hz sine by about the filter's group delay (~42 ms at 10 Hz, order 4)."""
    from gaitforce.signal.filters import (
        COP_LOAD_THRESHOLD,
        CausalLowpass,
        lowpass,
        lowpass_causal,
    )
    from gaitforce.trial import Trial

    rate, n = 100.0, 300
    t = np.arange(n) / rate
    x = np.sin(2 * np.pi * 1.0 * t)
    markers = np.stack([x, 1 + 0 * x, 0 * x], axis=1)[:, None, :]
    fy = np.where((t > 0.5) & (t < 1.2) | (t > 1.7) & (t < 2.4), 700.0, 0.0)
    forces = np.stack([0 * t, fy, 0 * t], axis=1)[:, None, :]
    cop = np.stack([np.where(fy > 0, 0.3 + 0.2 * t, np.nan), 0 * t, 0 * t], axis=1)[:, None, :]
    trial = Trial(time=t, markers=markers, marker_names=("M",), forces=forces, cop=cop,
                  free_moment=np.zeros((n, 1, 3)), plate_names=("FP1",), up_axis="y")
    out = lowpass_causal(trial, cutoff=10.0, order=4)
    f = CausalLowpass(3, rate=rate, cutoff=10.0, order=4)
    np.testing.assert_allclose(out.markers[:, 0], np.stack([f.step(r) for r in markers[:, 0]]), atol=1e-12)
    # CoP: each loaded run starts from its own first value (no carry-over from the previous step's CoP)
    for a in (np.argmax(t > 0.5), np.argmax(t > 1.7)):
        assert out.cop[a, 0, 0] == pytest.approx(cop[a, 0, 0], abs=1e-9)
    assert np.isnan(out.cop[fy <= COP_LOAD_THRESHOLD, 0, 0]).all()
    # lag of the causal output against the zero-lag one, by cross-correlation over the second half
    zero = lowpass(trial, cutoff=10.0, order=4).markers[:, 0, 0]
    lags = np.arange(0, 10)
    k = lags[np.argmin([np.sum((out.markers[150 + L:, 0, 0] - zero[150:n - L]) ** 2) for L in lags])]
    assert 3 <= k <= 5  # frames at 100 Hz: 30-50 ms


def test_causal_setting_round_trips_and_allows_odd_orders():
    s = ingest.IngestSettings(lowpass_causal=True, lowpass_order=3)
    assert ingest.IngestSettings.from_dict(s.to_dict()) == s
    with pytest.raises(Exception, match="even"):
        ingest.IngestSettings(lowpass_order=3)


def test_online_predictions_follow_the_bundle_on_the_same_features(bundle, walk):
    pipe = OnlinePipeline(bundle, StreamLayout.for_trial(walk), rate=walk.rate)
    pipe.features_log = []
    rows = run_offline(pipe, walk)
    x = np.array([f for _, _, f, *_ in pipe.features_log])[:, [features.feature_columns().index(c) for c in bundle.columns]]
    want = bundle.predict_features(x)[:, 0]
    got = [r[0] if s == "right" else r[1] for r, (t, s, *_) in zip(
        [rows[list(walk.time).index(t)] for t, *_ in pipe.features_log], pipe.features_log)]
    np.testing.assert_allclose(got, want, rtol=1e-5)
    swing = [r for r in rows if np.isnan(r[2]) and np.isnan(r[3])]
    assert swing and all(np.isnan(r[:2]).all() for r in swing)  # no force without a stance


def test_ensemble_bundle_streams_its_interval_from_the_same_call(walk, tmp_path):
    """A calibrated ensemble bundle: the stream emits <target>_lo/_hi per limb (before flags), equal to the
    bundle's offline interval on the same features; limbs in swing have no band either."""
    from builders import make_ensemble_bundle

    ens = load_bundle(make_ensemble_bundle(tmp_path / "ens", q=2.0))
    pipe = OnlinePipeline(ens, StreamLayout.for_trial(walk), rate=walk.rate)
    names = pipe.output_names
    assert names == ["knee_medial_right", "knee_medial_left", "stance_time_right", "stance_time_left",
                     "knee_medial_lo_right", "knee_medial_hi_right", "knee_medial_lo_left", "knee_medial_hi_left",
                     "flags", "latency_ms"]
    assert len(pipe.output_units) == len(names) and pipe.output_units[4] == "N"
    pipe.features_log = []
    rows = run_offline(pipe, walk)
    x = np.array([f for _, _, f, *_ in pipe.features_log])[:, [features.feature_columns().index(c) for c in ens.columns]]
    mean, lo, hi = ens.predict_interval_features(x)
    at = {t: rows[list(walk.time).index(t)] for t, *_ in pipe.features_log}
    for i, (t, side, *_) in enumerate(pipe.features_log):
        r = at[t]
        o = 0 if side == "right" else 1
        np.testing.assert_allclose(r[o], mean[i, 0], rtol=1e-5)
        np.testing.assert_allclose(r[[4 + 2 * o, 5 + 2 * o]], [lo[i, 0], hi[i, 0]], rtol=1e-5, atol=1e-3)
        assert r[4 + 2 * o] < r[o] < r[5 + 2 * o]
    swing = [r for r in rows if np.isnan(r[2]) and np.isnan(r[3])]
    assert swing and all(np.isnan(r[4:8]).all() for r in swing)


# -- robustness ---------------------------------------------------------------------------------------------
def test_occlusion_drops_late_samples_and_restarts_are_flagged_not_fatal(bundle, walk):
    lay = StreamLayout.for_trial(walk)
    x = StreamLayout.trial_samples(walk)
    stamps = walk.time.copy()
    knee = walk.marker_names.index("RKNE")
    x[60:70, 3 * knee:3 * knee + 3] = np.nan  # occluded in the right stance
    keep = np.ones(len(x), bool)
    keep[100:103] = False  # three frames dropped
    stamps_late = list(stamps[keep])
    samples = list(x[keep])
    samples.insert(50, samples[49])  # a duplicate/late sample (same stamp as the one before)
    stamps_late.insert(50, stamps_late[49])
    pipe = OnlinePipeline(bundle, lay, rate=walk.rate)
    rows = run_offline(pipe, walk, samples, stamps_late)
    assert rows[50] is None and pipe.n_late == 1
    flags = np.array([int(r[-2]) for r in rows if r is not None])
    assert np.count_nonzero(flags & FLAG_OCCLUDED) == 10
    occluded = [r for r in rows if r is not None and int(r[-2]) & FLAG_OCCLUDED]
    assert all(np.isfinite(r[0]) or np.isnan(r[2]) for r in occluded)  # held values still predict in stance
    assert pipe.n_dropped == 3 and np.count_nonzero(flags & FLAG_DROPPED) == 1
    # the source stops for 2 s and restarts mid-stance: reset, flagged, the cut stance is not predicted
    pipe2 = OnlinePipeline(bundle, lay, rate=walk.rate)
    plate = int(np.argmax(walk.forces[:, :, 1].max(axis=0) > 100))
    cut = int(np.argmax(walk.forces[:, plate, 1] > 100)) + 10  # inside that plate's stance
    stamps2 = np.where(np.arange(len(x)) >= cut, walk.time + 2.0, walk.time)
    rows2 = run_offline(pipe2, walk, StreamLayout.trial_samples(walk), stamps2)
    assert int(rows2[cut][-2]) & FLAG_RESTART and pipe2.n_restarts == 1
    ends = cut + int(np.argmax(walk.forces[cut:, plate, 1] <= 20.0))
    others = [r for r in rows2[cut:ends]]
    side = pipe.layout and ("right" if np.isfinite(rows[cut - 5][2]) else "left")
    j = 0 if side == "right" else 1
    assert all(np.isnan(r[j]) and np.isnan(r[2 + j]) for r in others)  # the cut stance is not predicted
    assert any(np.isfinite(r[:2]).any() for r in rows2[ends:])  # the next heel strike is


def test_filter_off_holds_an_occluded_marker_as_the_filter_does(bundle, walk):
    """lowpass_cutoff=None keeps the stated occlusion rule: a marker (or force) that goes NaN holds its last
    value, the frame is flagged and still predicted, with the same output as a stream whose gap was filled by
    hand with the held value."""
    knee = walk.marker_names.index("RKNE")
    x = StreamLayout.trial_samples(walk)
    x[60:70, 3 * knee:3 * knee + 3] = np.nan
    held = x.copy()
    held[60:70, 3 * knee:3 * knee + 3] = held[59, 3 * knee:3 * knee + 3]
    settings = OnlineSettings.from_bundle(bundle, lowpass_cutoff=None)
    lay = StreamLayout.for_trial(walk)
    rows = run_offline(OnlinePipeline(bundle, lay, rate=walk.rate, settings=settings), walk, x)
    ref = run_offline(OnlinePipeline(bundle, lay, rate=walk.rate, settings=settings), walk, held)
    flags = np.array([int(r[-2]) for r in rows])
    assert np.flatnonzero(flags & FLAG_OCCLUDED).tolist() == list(range(60, 70))
    stance = [i for i in range(60, 70) if np.isfinite(ref[i][:2]).any()]
    assert stance  # the occlusion falls in a stance
    for i in range(len(rows)):
        np.testing.assert_allclose(rows[i][:-2], ref[i][:-2], rtol=0, atol=1e-9)


def test_a_marker_never_seen_gives_no_prediction_flagged(bundle, walk):
    x = StreamLayout.trial_samples(walk)
    heel = walk.marker_names.index("RHEE")
    x[:, 3 * heel:3 * heel + 3] = np.nan
    pipe = OnlinePipeline(bundle, StreamLayout.for_trial(walk), rate=walk.rate)
    rows = [r for r in run_offline(pipe, walk, x) if r is not None]
    right = [r for r in rows if np.isfinite(r[2])]
    assert right and all(np.isnan(r[0]) and int(r[-2]) & FLAG_NO_PREDICTION for r in right)
    assert any(np.isfinite(r[1]) for r in rows)  # the left limb still predicts


def test_channels_that_do_not_match_the_bundle_fail_once_at_start(bundle, walk):
    lay = StreamLayout.for_trial(walk)
    no_pelvis = [c for c in lay.channels if not (c.type == "Position" and c.object[1:] in ("ASI", "PSI"))]
    with pytest.raises(MissingChannelError, match="stream channels do not match the bundle.*pelvis"):
        OnlinePipeline(bundle, StreamLayout(no_pelvis), rate=100.0)
    markers_only = [c for c in lay.channels if c.type == "Position"]
    with pytest.raises(MissingChannelError, match="no force plate"):
        OnlinePipeline(bundle, StreamLayout(markers_only), rate=100.0)


# -- LSL end to end ---------------------------------------------------------------------------------------
def _name(tag):
    return f"gftest-{tag}-{uuid.uuid4().hex[:8]}"


def test_replay_through_lsl_gives_every_frame_with_its_source_stamp(bundle, walk, tmp_path):
    pylsl = pytest.importorskip("pylsl")
    from gaitforce.stream.runner import StreamRunner
    from gaitforce.stream.sources import ReplaySource, open_inlet

    name = _name("e2e")
    replay = ReplaySource(walk, name=name, speed=0, stamp="push").start()
    inlet, info = open_inlet(name, timeout=5)
    runner = StreamRunner(bundle, inlet, info, out_name=name + "-out", record=tmp_path / "out.csv")
    found = pylsl.resolve_byprop("name", name + "-out", timeout=5)
    consumer = pylsl.StreamInlet(found[0], max_buflen=30)
    consumer.open_stream(timeout=5)
    try:
        summary = runner.run(until=replay.done.is_set, idle_exit=5)
        got, stamps = consumer.pull_chunk(timeout=1.0, max_samples=10000, as_numpy=True)
    finally:
        runner.close()
        replay.stop()
    assert summary["frames"] == walk.n_frames == summary["pushed"]
    assert len(stamps) == walk.n_frames
    table = pd.read_csv(tmp_path / "out.csv")
    np.testing.assert_allclose(table["timestamp"], stamps, atol=1e-6)
    # the results equal the same pipeline run without LSL on the same samples
    ref = run_offline(OnlinePipeline(bundle, StreamLayout.for_trial(walk), rate=walk.rate), walk, stamps=stamps)
    # the late flag says the consumer fell behind the wall clock: it depends on the machine's load, not the data
    late = float(FLAG_LATE)
    got_, ref_ = got[:, :-1].copy(), np.array(ref)[:, :-1].copy()
    got_[:, -1] = np.where(np.isfinite(got_[:, -1]), got_[:, -1].astype(int) & ~int(late), got_[:, -1])
    ref_[:, -1] = np.where(np.isfinite(ref_[:, -1]), ref_[:, -1].astype(int) & ~int(late), ref_[:, -1])
    np.testing.assert_allclose(got_, ref_, rtol=1e-6, equal_nan=True)
    assert (got[:, -1] > 0).all()  # latency_ms filled


def test_cli_replays_a_file_and_reports_a_mismatching_stream_in_one_line(bundle_dir, tmp_path, capsys):
    from gaitforce.stream.sources import ReplaySource

    trial = synthetic.generate_trial(seed=0, subject=5, trial=2)
    synthetic.write_cohort(tmp_path, [trial], fmt="c3d")
    rc = cli.main(["stream", str(bundle_dir), "--replay", str(tmp_path / "syn06_walk03.c3d"), "--speed", "4",
                   "--record", str(tmp_path / "r.csv")])
    assert rc == 0
    assert len(pd.read_csv(tmp_path / "r.csv")) == trial.n_frames
    # a live stream whose markers do not fit the bundle's marker map
    odd = trial.replace(marker_names=tuple(f"M{i}" for i in range(len(trial.marker_names))))
    name = _name("odd")
    replay = ReplaySource(odd, name=name).start()
    try:
        rc = cli.main(["stream", str(bundle_dir), "--lsl", name, "--idle-exit", "1"])
    finally:
        replay.stop()
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert any(line.startswith(f"gaitforce: error: lsl:{name}: ") and "marker map" in line for line in err)
    # a record file that cannot be written: one line naming it, no traceback
    (tmp_path / "afile").write_text("")
    bad = tmp_path / "afile" / "r.csv"
    rc = cli.main(["stream", str(bundle_dir), "--replay", str(tmp_path / "syn06_walk03.c3d"), "--speed", "0",
                   "--record", str(bad)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err[-1].startswith(f"gaitforce: error: {bad}: ")


def test_stream_names_the_lag_of_a_zero_lag_bundle_once():
    """The CLI's note: a bundle trained on zero-lag features, streamed through the causal 10 Hz filter, lags by
    the filter's group delay (~2.6 / (2 pi 10 Hz) = 41 ms for order 4); a causal-trained bundle gets no note."""
    from gaitforce.cli.stream import lag_note

    note = lag_note({"lowpass_cutoff": 10.0, "lowpass_order": 4}, 10.0)
    assert "~41 ms" in note or "~42 ms" in note
    assert "--causal-filter" in note
    assert lag_note({"lowpass_cutoff": 10.0, "lowpass_order": 4, "lowpass_causal": True}, 10.0) is None
    assert lag_note({"lowpass_cutoff": 10.0}, None) is None  # filter off online: no lag to name
    assert "~21 ms" in lag_note({"lowpass_cutoff": 20.0, "lowpass_order": 4}, 20.0)  # halves with twice the cutoff


def test_cli_stream_records_the_band_of_an_ensemble_bundle(tmp_path):
    """End to end through LSL: the recorded rows of an ensemble bundle carry lo <= force <= hi per limb."""
    from builders import make_ensemble_bundle

    b = make_ensemble_bundle(tmp_path / "ens", q=2.0)
    trial = synthetic.generate_trial(seed=0, subject=5, trial=2)
    synthetic.write_cohort(tmp_path, [trial], fmt="c3d")
    assert cli.main(["stream", str(b), "--replay", str(tmp_path / "syn06_walk03.c3d"), "--speed", "0",
                     "--record", str(tmp_path / "r.csv")]) == 0
    rec = pd.read_csv(tmp_path / "r.csv")
    assert len(rec) == trial.n_frames
    for side in ("right", "left"):
        f, lo, hi = rec[f"knee_medial_{side}"], rec[f"knee_medial_lo_{side}"], rec[f"knee_medial_hi_{side}"]
        on = f.notna()
        assert on.sum() > 20 and (lo[on] < f[on]).all() and (f[on] < hi[on]).all()
        assert lo[~on].isna().all() and hi[~on].isna().all()
