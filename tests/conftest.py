import os

import numpy as np
import pytest

from uedsteer.sim_devices.physics import ReciprocalGrid

# One core for each test process (`make test` runs two workers on two cores): torch's and
# OpenBLAS's thread pools on top of that only make the threads wait for each other; the GP
# fits are too small to split. Set before any worker, or any process a test starts, imports
# torch; a value the caller set is kept.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def grid() -> ReciprocalGrid:
    return ReciprocalGrid()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
