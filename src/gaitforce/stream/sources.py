"""Where frames come from: an LSL inlet found by stream name, or :class:`ReplaySource`, which plays a trial
file into an LSL outlet at its capture rate (or faster) so everything runs without a lab. Loopback only."""

from __future__ import annotations

import os
import sys
import threading
import time
from importlib import resources

import numpy as np

from gaitforce.errors import GaitforceError, InputFileError
from gaitforce.stream.layout import StreamLayout
from gaitforce.trial import Trial

STREAM_TYPE = "Mocap"


def _pylsl():
    """pylsl, with liblsl's console log at warnings and errors (``static/lsl_api.cfg``) unless the user points
    ``LSLAPICFG`` elsewhere (liblsl reads it once, when first loaded)."""
    if "pylsl" not in sys.modules:
        cfg = resources.files("gaitforce.stream").joinpath("static", "lsl_api.cfg")
        os.environ.setdefault("LSLAPICFG", str(cfg))
    try:
        import pylsl
    except (ImportError, RuntimeError) as err:  # RuntimeError: liblsl not found
        raise GaitforceError(f"streaming needs pylsl with liblsl ({err})") from None
    return pylsl


def mocap_info(name: str, layout: StreamLayout, *, rate: float, source_id: str):
    """The ``pylsl.StreamInfo`` of a mocap stream with ``layout`` described in its metadata."""
    pylsl = _pylsl()
    info = pylsl.StreamInfo(name, STREAM_TYPE, layout.n_channels, float(rate), pylsl.cf_double64, source_id)
    layout.describe(info)
    return info


def open_inlet(name: str, *, timeout: float = 5.0, max_buflen: int = 10):
    """(inlet, full StreamInfo) of the first LSL stream called ``name``; one clear error if none appears."""
    pylsl = _pylsl()
    found = pylsl.resolve_byprop("name", name, minimum=1, timeout=timeout)
    if not found:
        raise InputFileError(f"no LSL stream named {name!r} found within {timeout:g} s", source=f"lsl:{name}")
    inlet = pylsl.StreamInlet(found[0], max_buflen=max_buflen, recover=True)
    try:
        info = inlet.info(timeout=timeout)
        inlet.open_stream(timeout=timeout)  # subscribe now: samples pushed from here on are buffered
    except pylsl.TimeoutError:
        raise InputFileError("the stream's metadata or data did not arrive", source=f"lsl:{name}") from None
    return inlet, info


class ReplaySource:
    """Play ``trial`` into an LSL outlet named ``name`` from a background thread.

    ``speed`` 1.0 is the capture rate, 2.0 twice as fast, ``0`` as fast as possible. ``stamp='schedule'``
    (default for a timed replay) stamps each sample with the ``pylsl.local_clock()`` time it was due, as a
    mocap system stamps its capture time: a late push (a busy machine) shows as latency, not as a dropped
    frame. ``stamp='push'`` (and always at speed 0) stamps the moment of the push.
    ``loops`` plays the trial that many times with ``loop_gap`` s between (default 0.6 s, longer than the
    pipeline's restart gap: each loop is a fresh start). :attr:`done` is set when playing ends.
    """

    def __init__(self, trial: Trial, *, name: str, source_id: str | None = None, speed: float = 1.0,
                 loops: int = 1, start_delay: float = 0.2, drop: np.ndarray | None = None,
                 stamp: str = "schedule", loop_gap: float = 0.6):
        if stamp not in ("schedule", "push"):
            raise GaitforceError(f"replay stamp must be 'schedule' or 'push', not {stamp!r}")
        self.stamp = stamp
        self.loop_gap = float(loop_gap)
        if trial.n_frames < 2:
            raise InputFileError("a replay needs at least 2 frames", source=trial.source)
        if speed < 0:
            raise GaitforceError(f"replay speed must be >= 0, got {speed}")
        self.trial = trial
        self.layout = StreamLayout.for_trial(trial)
        self.samples = self.layout.trial_samples(trial)
        self.rate = trial.rate
        self.name = name
        self.source_id = source_id or f"gaitforce-replay-{name}"
        self.speed = float(speed)
        self.loops = int(loops)
        self.start_delay = float(start_delay)
        self.drop = np.zeros(len(self.samples), bool) if drop is None else np.asarray(drop, bool)
        self.pushed = 0
        self.push_times: list[float] = []
        self.done = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.outlet = None

    def start(self) -> "ReplaySource":
        pylsl = _pylsl()
        info = mocap_info(self.name, self.layout, rate=self.rate, source_id=self.source_id)
        self.outlet = pylsl.StreamOutlet(info, chunk_size=1, max_buffered=60)
        self._thread = threading.Thread(target=self._run, name=f"replay-{self.name}", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        pylsl = _pylsl()
        clock = pylsl.local_clock
        try:
            self._wait_for_consumer()
            period = 0.0 if self.speed == 0 else 1.0 / (self.rate * self.speed)
            t_next = clock()
            for _ in range(self.loops):
                for i, row in enumerate(self.samples):
                    if self._stop.is_set():
                        return
                    if period:
                        t_next += period
                        wait = t_next - clock()
                        if wait > 0:
                            time.sleep(wait)
                    if self.drop[i]:
                        continue
                    self.outlet.push_sample(row, t_next if period and self.stamp == "schedule" else clock())
                    self.pushed += 1
                if period:
                    t_next += self.loop_gap  # a pause between loops (> restart gap): the stream "restarts"
        finally:
            self.done.set()

    def _wait_for_consumer(self) -> None:
        deadline = time.monotonic() + 10.0
        while not self.outlet.have_consumers() and time.monotonic() < deadline and not self._stop.is_set():
            time.sleep(0.01)
        time.sleep(self.start_delay)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.outlet = None  # closes the outlet
