"""Shared fixtures. Real data live in ../shared/data beside the project root (or $GAITFORCE_SHARED_DATA);
tests that read them are marked ``realdata`` and skipped where the folder is absent."""

from __future__ import annotations

import os
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
