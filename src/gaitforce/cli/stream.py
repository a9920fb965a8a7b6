"""``gaitforce stream BUNDLE (--replay FILE | --lsl NAME)``: per-frame forces live, on Lab Streaming Layer.

Frames come from an LSL mocap stream (``--lsl NAME``: markers and force plates named in the stream's metadata,
see ``gaitforce.stream.layout``) or from a file played into a local LSL stream at its capture rate
(``--replay FILE``, ``--speed 0`` as fast as possible). Each frame is filtered causally, stances are found
online, and the bundle's predictions for each limb in stance go to an LSL outlet (``--out-name``; channels
``<target>_right|left``, ``stance_time_*``, ``flags``, ``latency_ms``; each sample carries its source frame's
timestamp), to a CSV file (``--record``) and to a live page (``--dashboard``, http://127.0.0.1:PORT/). A replay
ends by itself; a live stream runs until ``--duration`` or ``--idle-exit`` or Ctrl-C. A model trained with
body-weight normalisation needs the subject's mass: ``--mass KG`` (a replay file's recorded mass otherwise)."""

from __future__ import annotations

import json
import sys
import time


def register(subparsers) -> None:
    p = subparsers.add_parser("stream", help="stream per-frame forces live on Lab Streaming Layer",
                              description=__doc__.split("\n\n", 1)[1])
    p.add_argument("bundle", metavar="BUNDLE", help="model bundle folder")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--replay", metavar="FILE", help="play this trial file (.c3d, .trc [+ _grf.mot]) into LSL")
    src.add_argument("--lsl", metavar="NAME", help="name of the LSL mocap stream to read")
    p.add_argument("--speed", type=float, default=1.0, help="replay speed (1 = capture rate, 0 = as fast as possible)")
    p.add_argument("--loops", type=int, default=1, help="play the replay file this many times (default 1)")
    p.add_argument("--out-name", metavar="NAME", help="name of the LSL result stream (default <source>-gaitforce)")
    p.add_argument("--record", metavar="CSV", help="also write every result row to this CSV file")
    p.add_argument("--dashboard", action="store_true", help="serve the live page on 127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="dashboard port (default: a free one)")
    p.add_argument("--hold", type=float, default=0.0, help="keep the dashboard up this many s after the end")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument("--idle-exit", type=float, help="stop after this many seconds without a frame")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the LSL stream (default 5)")
    p.add_argument("--lowpass-cutoff", type=float, help="override the bundle's filter cutoff (Hz; 0 = off)")
    p.add_argument("--marker-map", metavar="NAME|FILE.json",
                   help="marker map for the stream's marker names instead of the bundle's (packaged name or JSON)")
    p.add_argument("--mass", type=float, default=None, metavar="KG",
                   help="subject mass, needed by a model trained with body-weight normalisation")
    p.set_defaults(func=run)


def lag_note(ingest_settings: dict, cutoff) -> str | None:
    """One line when the bundle learned zero-lag filtered features but the stream filters causally (the online
    features then lag the training ones by the filter's group delay); None when they match."""
    if not cutoff or ingest_settings.get("lowpass_causal") or not ingest_settings.get("lowpass_cutoff"):
        return None
    order = int(ingest_settings.get("lowpass_order", 4))
    delay_ms = 1000 * _group_delay_s(float(cutoff), order)
    return (f"the bundle was trained on zero-lag filtered features; online (causal {cutoff:g} Hz) they lag by "
            f"~{delay_ms:.0f} ms: train on a dataset ingested with --causal-filter to remove this")


def _group_delay_s(cutoff: float, order: int) -> float:
    """Low-frequency group delay (s) of a causal Butterworth of ``order`` with its -3 dB point at ``cutoff``."""
    import numpy as np
    from scipy import signal

    rate = max(50 * cutoff, 1000.0)
    b, a = signal.butter(order, cutoff, fs=rate)
    w, gd = signal.group_delay((b, a), w=[0.1 * cutoff], fs=rate)
    return float(np.asarray(gd)[0]) / rate


def run(args) -> int:
    import os

    from gaitforce.learn.predict import check_mass
    from gaitforce.errors import GaitforceError
    from gaitforce.io import read
    from gaitforce.learn.bundle import body_weight_of_mass, load_bundle
    from gaitforce.learn.predict import OOD_MARGIN
    from gaitforce.stream.online import OnlineSettings
    from gaitforce.stream.runner import StreamRunner
    from gaitforce.stream.sources import ReplaySource, open_inlet

    mass = check_mass(args.mass)
    bundle = load_bundle(args.bundle, intra_op_num_threads=1)
    trial = read(args.replay) if args.replay else None
    if bundle.needs_body_weight:
        if mass is None and trial is not None:
            mass = trial.subject.mass
        if mass is None:
            raise GaitforceError("the model was trained on body-weight-normalised data: give the subject's --mass KG",
                                 source=args.bundle)
        bundle = bundle.with_body_weight(body_weight_of_mass(mass).item())
    elif mass is not None:
        print("gaitforce: note: --mass is not used: the model takes no body weight", file=sys.stderr)
    overrides = {}
    if args.lowpass_cutoff is not None:
        overrides["lowpass_cutoff"] = args.lowpass_cutoff or None
    if args.marker_map:
        from gaitforce.data.features import load_marker_map

        if args.marker_map != "auto":
            load_marker_map(args.marker_map)  # a missing or malformed map: one line before streaming
        overrides["marker_map"] = args.marker_map
    settings = OnlineSettings.from_bundle(bundle, **overrides)
    lag = lag_note(bundle.ingest_settings or {}, settings.lowpass_cutoff)
    if lag:
        print(f"gaitforce: note: {lag}", file=sys.stderr)
    replay = None
    if args.replay:
        name = f"gaitforce-replay-{os.getpid()}"
        replay = ReplaySource(trial, name=name, speed=args.speed, loops=args.loops)
        replay.start()
        source_name = name
    else:
        source_name = args.lsl
    dash = runner = None
    try:
        inlet, info = open_inlet(source_name, timeout=args.timeout)
        runner = StreamRunner(bundle, inlet, info, out_name=args.out_name, record=args.record, settings=settings,
                              feed=args.dashboard)
        if args.dashboard:
            from gaitforce.stream.dashboard import Dashboard

            dash = Dashboard(runner.feed, port=args.port).start()
            print(f"dashboard: {dash.url}", flush=True)
        for line in runner.pipeline.slot_lines:
            print(f"gaitforce: note: {line}", file=sys.stderr)
        print(f"streaming {source_name} ({runner.layout.n_channels} channels, {info.nominal_srate():g} Hz) "
              f"-> LSL {runner.out_name}", flush=True)
        summary = runner.run(duration=args.duration, idle_exit=args.idle_exit,
                             until=(replay.done.is_set if replay else None))
        if dash is not None and args.hold > 0:
            time.sleep(args.hold)
    except KeyboardInterrupt:
        print("gaitforce: interrupted", file=sys.stderr)
        return 130
    finally:
        if runner is not None:
            runner.close()
        if replay is not None:
            replay.stop()
        if dash is not None:
            dash.stop()
    if summary["frames"] == 0:
        raise GaitforceError("no frame arrived from the stream", source=f"lsl:{source_name}")
    ood = summary.get("out_of_range_frames") or {}
    if ood:
        print(f"gaitforce: note: OUT OF DISTRIBUTION: features beyond the training range by more than "
              f"{OOD_MARGIN:.0%} of it (frames): " + ", ".join(f"{k} ({v})" for k, v in list(ood.items())[:8])
              + (" ..." if len(ood) > 8 else ""), file=sys.stderr)
    print(json.dumps(summary))
    return 0
