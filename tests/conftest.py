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
