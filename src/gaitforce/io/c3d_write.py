"""Writing a :class:`Trial` as a C3D file (markers, plates as type-2 analog channels, EMG, events, subject)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from gaitforce.errors import InputFileError
from gaitforce.io.c3d_params import _one_line
from gaitforce.trial import Trial


# -- writing --------------------------------------------------------------------------------------------------
def write_c3d(path: str | os.PathLike, trial: Trial) -> Path:
    """Write markers (mm), force plates (type 2, the force on the plate in N / N mm), EMG (V), events and the
    subject's mass/height to a Z-up C3D that :func:`read_c3d` reads back to the same trial (up to float32
    precision and the frame-window average, which is exact for data linear within a frame).

    Each plate is written as a rectangle in the floor centred on its mean loaded CoP, large enough to hold every
    CoP. The analog rate is the EMG rate rounded to a whole multiple of the frame rate (or the frame rate without
    EMG); plate data are linearly interpolated onto it. Time is kept when it starts on a whole frame.
    """
    import ezc3d

    path = Path(path)
    t = trial.to_z_up()
    rate = t.rate
    n = t.n_frames
    per_frame = max(1, int(round(t.emg_rate / rate))) if t.emg_names and t.emg_rate else 1
    a_rate = rate * per_frame
    first = int(round(t.time[0] * rate))
    if abs(first / rate - t.time[0]) > 1e-6 or first < 0:
        first = 0  # time does not start on a whole frame: written from frame 0
    c = ezc3d.c3d()
    c["header"]["points"]["first_frame"] = first
    c["parameters"]["POINT"]["RATE"]["value"] = [rate]
    c["parameters"]["POINT"]["UNITS"]["value"] = ["mm"]
    c["parameters"]["POINT"]["LABELS"]["value"] = tuple(t.marker_names)
    pts = np.zeros((4, len(t.marker_names), n))
    xyz = t.markers.transpose(2, 1, 0) * 1000.0
    seen = np.isfinite(xyz).all(axis=0)
    pts[:3] = np.where(seen, xyz, 0.0)
    pts[3] = 1.0
    c["data"]["points"] = pts
    if len(t.marker_names):
        c["data"]["meta_points"]["residuals"] = np.where(seen, 0.0, -1.0)[None]

    a_time = t.time[0] + np.arange(n * per_frame) / a_rate
    channels, labels, units = [], [], []
    corners, chan_idx = [], []
    for p, name in enumerate(t.plate_names):
        wrench, corner = _plate_channels(t, p)
        chan_idx.append([len(labels) + k + 1 for k in range(6)])
        for k, axis in enumerate(("Fx", "Fy", "Fz", "Mx", "My", "Mz")):
            channels.append(np.interp(a_time, t.time, wrench[:, k]))
            labels.append(f"{axis}{p + 1}")
            units.append("N" if k < 3 else "Nmm")
        corners.append(corner)
    for k, name in enumerate(t.emg_names):
        channels.append(np.interp(a_time, t.emg_time, t.emg[:, k]))
        labels.append(name)
        units.append("V")
    if channels:
        c["parameters"]["ANALOG"]["RATE"]["value"] = [a_rate]
        c["parameters"]["ANALOG"]["LABELS"]["value"] = tuple(labels)
        c["parameters"]["ANALOG"]["UNITS"]["value"] = tuple(units)
        c["data"]["analogs"] = np.asarray(channels)[None]
    if t.plate_names:
        p = len(t.plate_names)
        _add_int_parameter(c, "FORCE_PLATFORM", "USED", [p])
        _add_int_parameter(c, "FORCE_PLATFORM", "TYPE", [2] * p)
        _add_int_parameter(c, "FORCE_PLATFORM", "ZERO", [1, 0])
        c.add_parameter("FORCE_PLATFORM", "CORNERS", np.asarray(corners).transpose(2, 1, 0))
        c.add_parameter("FORCE_PLATFORM", "ORIGIN", np.zeros((3, p)))
        _add_int_parameter(c, "FORCE_PLATFORM", "CHANNEL", np.asarray(chan_idx).T)
    for e in t.events:
        label = {"heel_strike": "Foot Strike", "toe_off": "Foot Off"}.get(e.name, e.name)
        minutes = float(np.floor(e.time / 60.0))
        c.add_event(time=[minutes, e.time - 60.0 * minutes], context=e.side.capitalize(), label=label)
    c.add_parameter("SUBJECTS", "NAMES", [t.subject.id])
    if t.subject.mass is not None:
        c.add_parameter("PROCESSING", "Bodymass", [float(t.subject.mass)])
    if t.subject.height is not None:
        c.add_parameter("PROCESSING", "Height", [float(t.subject.height) * 1000.0])
    try:
        c.write(str(path))
    except Exception as err:
        raise InputFileError(f"cannot write C3D: {_one_line(err)}", source=path) from None
    return path


def _add_int_parameter(c, group: str, name: str, value) -> None:
    """An integer parameter (ezc3d's ``add_parameter`` stores numbers as floats; readers need INT here)."""
    value = np.asarray(value, dtype=np.int64)
    c.add_parameter(group, name, value.astype(np.float64))
    c["parameters"][group][name]["value"] = value
    c["parameters"][group][name]["type"] = 2


def _plate_channels(t: Trial, p: int):
    """Type-2 channels (T, 6) of plate ``p`` of a Z-up trial (force on the plate, N and N mm, plate axes: x = lab
    x, y = -lab y, z = down) and its 4 corners (4, 3) in mm."""
    grf = np.nan_to_num(t.forces[:, p, :])
    cop = t.cop[:, p, :]
    loaded = np.isfinite(cop).all(axis=1)
    centre = np.nanmean(cop[loaded], axis=0) if loaded.any() else np.zeros(3)
    half = np.array([0.3, 0.2])
    if loaded.any():
        half = np.maximum(half, np.abs(cop[loaded, :2] - centre[:2]).max(axis=0) + 0.05)
    r = np.where(loaded[:, None], cop - centre, 0.0)
    action_f = -grf
    action_m = np.cross(r, action_f) - np.nan_to_num(t.free_moment[:, p, :])
    to_plate = np.diag([1.0, -1.0, -1.0])  # lab -> plate axes (a rotation of 180 degrees about x)
    wrench = np.hstack([action_f @ to_plate.T, (action_m @ to_plate.T) * 1000.0])
    a, b = half
    corners = centre + np.array([[a, -b, 0.0], [-a, -b, 0.0], [-a, b, 0.0], [a, b, 0.0]])
    return wrench, corners * 1000.0
