"""Shared fixtures. Real recordings live in ../shared/data beside the project; tests that need
them skip with a reason when it is absent (a user's fresh clone). DS2CLI_DATA (also read as
DS2CLI_SHARED_DATA) names another folder of them. The core path (test_core_path.py) needs none."""
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("DS2CLI_DATA") or os.environ.get("DS2CLI_SHARED_DATA") or REPO.parent / "shared" / "data")


def _shared(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"real recordings not found at {path} (../shared/data is absent)")
    return path


@pytest.fixture
def fsdd_dir() -> Path:
    return _shared("fsdd")


@pytest.fixture
def arctic_dir() -> Path:
    return _shared("arctic-cathy")


@pytest.fixture
def noise_dir() -> Path:
    return _shared("noise")


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny tensors: with two threads on a loaded 2-core machine OpenMP spinning costs up to 30x.
    Module scope, so that a module's own model fixtures train at one thread too."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def speechocean_dir() -> Path:
    return _shared("speechocean762")
