"""The live page draws data arriving: dashboard + runner + replay, checked in headless Chromium (skipped
where chromium / chromedriver are absent; scripts/run-tests.sh installs them)."""

from __future__ import annotations

import threading
import time
import uuid

import numpy as np
import pytest
from builders import make_bundle, make_ensemble_bundle
from conftest import needs_browser

from gaitforce.data import synthetic

pytestmark = [pytest.mark.slow, needs_browser]



def _painted(driver, canvas_id):
    """Count of canvas pixels in the stance colours (red right, blue left)."""
    return driver.execute_script("""
        const c = document.getElementById(arguments[0]);
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) {
            const r = d[i], g = d[i + 1], b = d[i + 2];
            if ((r > 150 && g < 90 && b < 80) || (b > 130 && r < 60 && g < 120)) n++;
        }
        return n;""", canvas_id)


@pytest.mark.parametrize("ensemble", [False, True], ids=["single", "ensemble"])
def test_page_draws_live_force_curves_and_latency(browser, tmp_path, ensemble):
    from gaitforce.learn.bundle import load_bundle
    from gaitforce.stream.dashboard import Dashboard
    from gaitforce.stream.runner import StreamRunner
    from gaitforce.stream.sources import ReplaySource, open_inlet

    bundle = load_bundle((make_ensemble_bundle if ensemble else make_bundle)(tmp_path / "bundle"))
    walk = synthetic.generate_trial(seed=0, subject=3, trial=1)
    name = f"gftest-dash-{uuid.uuid4().hex[:8]}"
    replay = ReplaySource(walk, name=name, speed=1.0, loops=3, start_delay=1.0).start()
    inlet, info = open_inlet(name, timeout=5)
    runner = StreamRunner(bundle, inlet, info, feed=True)
    dash = Dashboard(runner.feed).start()
    worker = threading.Thread(target=runner.run, kwargs={"until": replay.done.is_set, "idle_exit": 10}, daemon=True)
    try:
        browser.get(dash.url)
        worker.start()
        deadline = time.monotonic() + 20
        rows = drawn = painted = 0
        while time.monotonic() < deadline:
            rows = int(browser.execute_script("return window.gaitforce.rows"))
            drawn = int(browser.execute_script("return window.gaitforce.drawn"))
            painted = _painted(browser, "right") + _painted(browser, "left")
            if rows > 150 and painted > 200:
                break
            time.sleep(0.2)
        assert rows > 150, "the page received no rows"
        assert drawn > 0 and painted > 200, "no force curve was drawn"
        latency = browser.find_element("id", "p50").text
        assert latency != "-" and 0 < float(latency) < 1000
        assert browser.execute_script("return window.gaitforce.target") == "knee_medial"
        # the interval's channels are no target of their own; an ensemble's band is drawn, a single model has none
        options = browser.execute_script("return [...document.querySelectorAll('#target option')].map(o => o.text)")
        assert options == ["knee_medial"]
        assert bool(browser.execute_script("return window.gaitforce.band || 0")) == ensemble
    finally:
        runner.stop_event.set()
        worker.join(timeout=10)
        runner.close()
        replay.stop()
        dash.stop()
    assert np.isfinite(runner.summary()["frames"])
