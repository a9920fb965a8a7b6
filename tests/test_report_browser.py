"""The HTML report opens in a browser on its own: headless Chromium loads index.html, every embedded figure
decodes (naturalWidth > 0) and the screenshot is not blank (skipped where chromium / chromedriver are absent;
scripts/run-tests.sh installs them)."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
from conftest import needs_browser
from test_report import fake_results

from gaitforce.evaluate import report

pytestmark = [pytest.mark.slow, needs_browser]



def test_html_report_loads_its_figures_in_chromium(browser, tmp_path):
    per, preds = fake_results()
    per["mass"] = 70.0
    ridge = preds.assign(knee_medial_pred=preds["knee_medial_ref"] * 1.1)
    index = report.write_report(tmp_path / "rep", per_trial=per, predictions=preds, settings={}, title="Browser",
                                model="paper-cnn", others={"ridge": ridge}, reference="in vivo implant")
    page = index.with_suffix(".html")
    # self-contained: the page alone (moved away from its PNGs) still shows every figure
    alone = tmp_path / "alone.html"
    shutil.copy(page, alone)
    browser.get(alone.as_uri())
    widths = browser.execute_script(
        "return Array.from(document.images).map(i => i.complete ? i.naturalWidth : -1)")
    assert len(widths) == 3 and all(w > 300 for w in widths), widths
    assert browser.find_element("tag name", "h1").text == "Browser"
    assert len(browser.find_elements("css selector", "table tbody tr")) == 1  # one target, one summary row
    from PIL import Image

    shot = np.asarray(Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("L"), dtype=float)
    assert shot.shape[0] > 500 and shot.shape[1] > 800
    assert shot.std() > 10, "the screenshot is blank"
    assert (shot < 128).mean() > 0.005  # some dark ink (text, table lines) on the page
    browser.execute_script("document.images[0].scrollIntoView()")
    fig = np.asarray(Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("RGB"), dtype=int)
    red = (fig[..., 0] > 180) & (fig[..., 1] < 90) & (fig[..., 2] < 90)
    assert red.sum() > 100, "the figure's model curve (red) is not on screen"
    browser.save_screenshot(str(tmp_path / "figure.png"))  # kept by pytest's tmp_path for a look
