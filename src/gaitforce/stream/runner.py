"""The streaming loop: LSL inlet -> :class:`OnlinePipeline` -> LSL outlet (+ CSV file, + dashboard feed).

It never blocks on the source: it pulls whatever samples are there (waiting at most ``poll`` s), processes
them in order and goes on; a silent source is waited for (the inlet reconnects by itself when an outlet with
the same source id comes back) until ``idle_exit`` s pass. Each result is pushed with the *source* sample's
timestamp, so a consumer's latency is its arrival time minus that stamp.
"""

from __future__ import annotations

import collections
import threading
import time
from pathlib import Path

import numpy as np

from gaitforce.errors import GaitforceError
from gaitforce.stream.layout import StreamLayout
from gaitforce.stream.online import FLAG_LATE, FLAGS, OnlinePipeline, OnlineSettings
from gaitforce.stream.sources import _pylsl

RESULT_TYPE = "Forces"


class LiveFeed:
    """Thread-safe hand-over of result rows to the dashboard (bounded: old rows drop if nobody reads)."""

    def __init__(self, names, units, *, maxlen: int = 20000):
        self.names, self.units = list(names), list(units)
        self._rows: collections.deque = collections.deque(maxlen=maxlen)
        self.finished = False

    def put(self, timestamp: float, row: np.ndarray) -> None:
        self._rows.append((timestamp, row.tolist()))

    def drain(self, limit: int = 2000) -> list:
        out = []
        while self._rows and len(out) < limit:
            out.append(self._rows.popleft())
        return out


class StreamRunner:
    """Run ``bundle`` on the frames of ``inlet`` (whose full ``info`` gives the channel layout)."""

    def __init__(self, bundle, inlet, info, *, out_name: str | None = None, record: str | Path | None = None,
                 settings: OnlineSettings | None = None, feed: bool = False, late_after: float = 0.1,
                 max_chunk: int = 256):
        pylsl = _pylsl()
        name = info.name()
        self.layout = StreamLayout.from_info(info, source=f"lsl:{name}")
        rate = info.nominal_srate()
        if not rate > 0:
            raise GaitforceError("the stream declares no nominal rate (irregular streams are not supported)",
                                 source=f"lsl:{name}")
        self.pipeline = OnlinePipeline(bundle, self.layout, rate=rate, settings=settings)
        self.inlet = inlet
        self.late_after = float(late_after)
        self._buf = np.empty((int(max_chunk), self.layout.n_channels), dtype=np.float64)
        names, units = self.pipeline.output_names, self.pipeline.output_units
        self.out_name = out_name or f"{name}-gaitforce"
        out_info = pylsl.StreamInfo(self.out_name, RESULT_TYPE, len(names), rate, pylsl.cf_double64,
                                    f"gaitforce-{self.out_name}")
        chans = out_info.desc().append_child("channels")
        for n, u in zip(names, units):
            c = chans.append_child("channel")
            c.append_child_value("label", n)
            c.append_child_value("unit", u)
        flags = out_info.desc().append_child("flags")
        for k, v in FLAGS.items():
            flags.append_child_value(k, str(v))
        out_info.desc().append_child_value("bundle", str(bundle.path))
        self.outlet = pylsl.StreamOutlet(out_info, chunk_size=1, max_buffered=60)
        self.feed = LiveFeed(names, units) if feed else None
        self._record_path = Path(record) if record else None
        self._lat = np.zeros(1 << 16)
        self.n_out = 0
        self.stop_event = threading.Event()

    def run(self, *, duration: float | None = None, idle_exit: float | None = None, poll: float = 0.005,
            until=None) -> dict:
        """Process frames until ``duration`` s, ``idle_exit`` s without a frame, :attr:`stop_event`, or
        ``until()`` returns true while idle. Returns the :meth:`summary`."""
        pylsl = _pylsl()
        clock = pylsl.local_clock
        pipe, outlet, feed, buf = self.pipeline, self.outlet, self.feed, self._buf
        fh = None
        if self._record_path is not None:
            try:
                self._record_path.parent.mkdir(parents=True, exist_ok=True)
                fh = open(self._record_path, "w", buffering=1 << 16)
            except OSError as err:
                raise GaitforceError(f"cannot write the record file ({err.strerror or err})",
                                     source=str(self._record_path)) from None
            fh.write(",".join(["timestamp", *pipe.output_names]) + "\n")
            fmt = ",".join(["%.6f"] + ["%.6g"] * len(pipe.output_names)) + "\n"
        t_start = last_frame = clock()
        lat = self._lat
        try:
            while not self.stop_event.is_set():
                now = clock()
                if duration is not None and now - t_start > duration:
                    break
                try:
                    samples, stamps = self.inlet.pull_chunk(timeout=poll, max_samples=len(buf), dest_obj=buf,
                                                            min_samples=1, as_numpy=True)
                except pylsl.LostError:
                    time.sleep(poll)
                    continue
                if len(stamps) == 0:
                    if idle_exit is not None and now - last_frame > idle_exit:
                        break
                    if until is not None and until() and now - last_frame > 0.2:
                        break
                    continue
                last_frame = now
                for i in range(len(stamps)):
                    ts = float(stamps[i])
                    row = pipe.process(samples[i], ts)
                    if row is None:
                        continue
                    done = clock()
                    if done - ts > self.late_after:
                        row[-2] = int(row[-2]) | FLAG_LATE
                    row[-1] = (done - ts) * 1e3
                    outlet.push_sample(row, ts)
                    lat[self.n_out % len(lat)] = row[-1]
                    self.n_out += 1
                    if fh is not None:
                        fh.write(fmt % (ts, *row))
                    if feed is not None:
                        feed.put(ts, row)
        finally:
            if fh is not None:
                fh.close()
            if feed is not None:
                feed.finished = True
        return self.summary()

    def close(self) -> None:
        """Close the inlet (before its source goes: no reconnection attempts) and the result outlet."""
        try:
            self.inlet.close_stream()
        except Exception:  # already closed or lost: nothing to release
            pass
        self.inlet = None
        self.outlet = None

    def summary(self) -> dict:
        p = self.pipeline
        lat = self._lat[:min(self.n_out, len(self._lat))]
        return {"frames": p.n_frames, "pushed": self.n_out, "stances": p.n_stances, "skipped_late": p.n_late,
                "dropped": p.n_dropped, "restarts": p.n_restarts,
                "out_of_range_frames": dict(sorted(p.ood_frames.items(), key=lambda kv: -kv[1])),
                "processing_latency_ms_p50": float(np.percentile(lat, 50)) if lat.size else None,
                "processing_latency_ms_p99": float(np.percentile(lat, 99)) if lat.size else None}
