"""Shared fixtures. Real data live in ../shared/data beside the project root (or $GAITFORCE_SHARED_DATA);
tests that read them are marked ``realdata`` and skipped where the folder is absent."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("GAITFORCE_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"real data folder {SHARED} not present")
    return SHARED


@pytest.fixture(scope="session")
def gc_dir(shared_data) -> Path:
    return shared_data / "grand-challenge"


@pytest.fixture
def fetched_model():
    """Skip (not fail, not download) where OpenSim or the fetched model is absent: scripts/fetch-model.sh."""
    pytest.importorskip("opensim")
    from gaitforce.errors import GaitforceError
    from gaitforce.physics.model import model_file

    try:
        return model_file(download=False)
    except GaitforceError as err:
        pytest.skip(str(err))


@pytest.fixture
def fetched_models():
    """Both models' files ({name: path}); skips like :func:`fetched_model` where one is absent."""
    pytest.importorskip("opensim")
    from gaitforce.errors import GaitforceError
    from gaitforce.physics.model import MODELS, model_file

    try:
        return {name: model_file(name, download=False) for name in MODELS}
    except GaitforceError as err:
        pytest.skip(str(err))


#: Debian's chromium + chromedriver (scripts/run-tests.sh installs them where apt works); browser tests skip without.
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
needs_browser = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="chromium and chromedriver not installed")


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium through Selenium, no network calls of its own, a fresh profile."""
    webdriver = pytest.importorskip("selenium.webdriver")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="gf-chromium-")
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                f"--user-data-dir={profile}", "--window-size=1200,900"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=DRIVER), options=opts)
    driver.set_page_load_timeout(20)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)
