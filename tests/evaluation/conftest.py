"""Where the shared benchmark data is, for the tests that use it (skipped without it)."""

from pathlib import Path

import pytest


@pytest.fixture
def shared_root(request: pytest.FixtureRequest) -> Path:
    """../shared/data, from the project's ``shared_data`` fixture when there is one."""
    try:
        root = Path(request.getfixturevalue("shared_data"))
    except pytest.FixtureLookupError:
        root = Path(__file__).resolve().parents[3] / "shared" / "data"
    if not root.is_dir():
        pytest.skip("../shared/data not present")
    return root


@pytest.fixture
def nab_root(shared_root: Path) -> Path:
    if not (shared_root / "NAB" / "labels" / "combined_windows.json").is_file():
        pytest.skip("../shared/data/NAB not present")
    return shared_root / "NAB"


@pytest.fixture
def skab_root(shared_root: Path) -> Path:
    if not (shared_root / "SKAB" / "data").is_dir():
        pytest.skip("../shared/data/SKAB not present")
    return shared_root / "SKAB"
